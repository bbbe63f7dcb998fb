"""The audit page's filter form (also parses export_audit's options)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from django import forms
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from portal.audit.filters import AuditFilter
from portal.audit.models import AuditAction, Outcome, TargetType

# A search term needs 3 letters or digits in a row: shorter ones (or mostly punctuation)
# give PostgreSQL's trigram index nothing to narrow with, and would scan the whole trail.
MIN_SEARCH = 3
_SEARCHABLE = re.compile(rf"[^\W_]{{{MIN_SEARCH}}}")
MAX_SEQ = 2**63 - 1
_TIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"]


def _any(label: str, choices: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [("", label), *choices]


@lru_cache(maxsize=16)
def _options(choices: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str, str], ...]:
    """Each choice's value and its <option>, not selected and selected."""
    return tuple(
        (
            value,
            format_html('<option value="{}">{}</option>', value, label),
            format_html('<option value="{}" selected>{}</option>', value, label),
        )
        for value, label in choices
    )


class _SharedFields(dict[str, forms.Field]):
    """A form's fields that every instance shares instead of deep-copying them.

    `BaseForm.__init__` deep-copies `base_fields` so an instance may alter its own fields;
    for the audit filter (on every request of the audit page, 54 actions among its choices)
    the copy was most of the form's cost. Nothing alters these fields after the class is
    made (no form changes its `fields`), so a shallow copy of the dict is enough.
    """

    def __deepcopy__(self, memo: dict[int, object]) -> dict[str, forms.Field]:
        return dict(self)


class AuditFilterForm(forms.Form):
    q = forms.CharField(
        label="Search",
        required=False,
        max_length=100,
        strip=True,
        help_text=f"Part of a target id or an actor name ({MIN_SEARCH}+ letters or digits).",
    )
    actor = forms.CharField(label="Actor", required=False, max_length=150, strip=True)
    action = forms.ChoiceField(
        label="Action", required=False, choices=_any("Any action", AuditAction.choices)
    )
    target_type = forms.ChoiceField(
        label="Target", required=False, choices=_any("Any target", TargetType.choices)
    )
    target_id = forms.CharField(label="Target id", required=False, max_length=128, strip=True)
    outcome = forms.ChoiceField(
        label="Outcome", required=False, choices=_any("Any outcome", Outcome.choices)
    )
    since = forms.DateTimeField(
        label="From (UTC)",
        required=False,
        input_formats=_TIME_FORMATS,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    until = forms.DateTimeField(
        label="Before (UTC)",
        required=False,
        input_formats=_TIME_FORMATS,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    # Page cursors (an event's seq); the paginator also ignores one that points nowhere.
    older = forms.IntegerField(
        required=False, min_value=0, max_value=MAX_SEQ, widget=forms.HiddenInput
    )
    newer = forms.IntegerField(
        required=False, min_value=0, max_value=MAX_SEQ, widget=forms.HiddenInput
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since >= until:
            self.add_error("until", "Must be later than From.")
        return data

    @property
    def search_too_short(self) -> bool:
        """A search term was typed but is too short to be applied yet."""
        q = (self.cleaned_data.get("q") or "") if hasattr(self, "cleaned_data") else ""
        return bool(q) and not _SEARCHABLE.search(q)

    def options_html(self, name: str) -> SafeString:
        """The <option>s of the choice field `name`, its bound value selected: what
        `{% select_options form.name %}` draws, from options escaped once per process."""
        current = self[name].value()
        choices = _options(tuple(self.fields[name].choices))  # type: ignore[attr-defined]
        drawn = (chosen if value == current else plain for value, plain, chosen in choices)
        return mark_safe("".join(drawn))  # noqa: S308 (each option escaped by format_html)

    def filters(self) -> AuditFilter:
        """The validated filters (call after is_valid())."""
        data = self.cleaned_data
        q = data.get("q") or ""
        return AuditFilter(
            actor=data.get("actor") or "",
            action=data.get("action") or "",
            target_type=data.get("target_type") or "",
            target_id=data.get("target_id") or "",
            outcome=data.get("outcome") or "",
            since=data.get("since"),
            until=data.get("until"),
            q=q if _SEARCHABLE.search(q) else "",
        )


AuditFilterForm.base_fields = _SharedFields(AuditFilterForm.base_fields)
