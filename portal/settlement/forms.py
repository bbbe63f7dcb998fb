"""Settlement forms: what a person may type, checked before any service runs."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
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
        return {
            "status": self.cleaned_data.get("status") or None,
            "created_from": _day_start(start) if start else None,
            # Up to and including `end`: before the start of the next day.
            "created_until": _day_start(end, days_later=1) if end else None,
        }


def _day_start(day: date, *, days_later: int = 0) -> datetime | None:
    """Midnight (local time) `days_later` days after `day`; None past either end of the
    calendar, where there is nothing to bound (9999-12-31 "up to and including")."""
    try:
        moment = datetime.combine(day + timedelta(days=days_later), time.min)
        aware = timezone.make_aware(moment, timezone.get_current_timezone())
        aware.astimezone(UTC)  # the database compares in UTC
    except OverflowError:
        return None
    return aware


class RejectForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        strip=True,
        label="Reason",
        error_messages={"required": messages.REASON_REQUIRED},
    )


class ApproveLegsForm(forms.Form):
    """A selection of leg requests to approve with one authenticator code."""

    change = forms.TypedMultipleChoiceField(coerce=int, choices=(), required=True)
    code = forms.CharField(required=False, max_length=10)

    def __init__(self, *args: Any, choices: list[int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["change"].choices = [(pk, str(pk)) for pk in choices]  # type: ignore[attr-defined]
