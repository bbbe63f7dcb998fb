"""Settlement forms: what a person may type, checked before any service runs."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from django import forms
from django.utils import timezone

from portal.settlement import messages
from portal.settlement.models import AssetKind, BatchStatus


class _NoColonForm(forms.Form):
    """The portal's labels carry no colon."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class BatchCreateForm(_NoColonForm):
    asset_kind = forms.ChoiceField(
        choices=AssetKind.choices, initial=AssetKind.CURRENCY, label="Asset kind"
    )


class BatchFilterForm(_NoColonForm):
    status = forms.ChoiceField(
        choices=[("", "Any status"), *BatchStatus.choices], required=False, label="Status"
    )
    created_from = forms.DateField(
        required=False, label="Created from", widget=forms.DateInput(attrs={"type": "date"})
    )
    created_until = forms.DateField(
        required=False,
        label="Created up to and including",
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("created_from"), cleaned.get("created_until")
        if start and end and start > end:
            raise forms.ValidationError("The start date is after the end date.")
        return cleaned

    def filters(self) -> dict[str, Any]:
        """Keyword arguments for `selectors.batch_list` (aware datetimes, end exclusive)."""
        if not self.is_valid():
            return {}
        start, end = self.cleaned_data.get("created_from"), self.cleaned_data.get("created_until")
        zone = timezone.get_current_timezone()
        return {
            "status": self.cleaned_data.get("status") or None,
            "created_from": datetime.combine(start, time.min, zone) if start else None,
            "created_until": (
                datetime.combine(end, time.min, zone) + timedelta(days=1) if end else None
            ),
        }


class RejectForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        strip=True,
        label="Reason",
        error_messages={"required": messages.REASON_REQUIRED},
    )
