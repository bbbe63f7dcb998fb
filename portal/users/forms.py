"""Forms for Prime API users. Every field is bounded, so no input can make a view fail."""

from __future__ import annotations

from django import forms

from portal.users.models import PrimeRole, PrimeUserStatus

NAME_MAX = 64  # Kraken's limit, docs/prime-choices.md


def clean_prime_name(value: str) -> str:
    """Kraken's rule: 1-64 printable characters after trimming."""
    name = (value or "").strip()
    if not name:
        raise forms.ValidationError("Give the user a name.")
    if len(name) > NAME_MAX:
        raise forms.ValidationError(f"Kraken allows at most {NAME_MAX} characters in a name.")
    if not name.isprintable():
        raise forms.ValidationError(
            "Use printable characters only (no tabs, line breaks or control characters)."
        )
    return name


class UserFilterForm(forms.Form):
    """Search and filters of the users list; bad values are simply ignored."""

    q = forms.CharField(required=False, max_length=100, label="Search")
    role = forms.ChoiceField(
        required=False, choices=[("", "Any role"), *PrimeRole.choices], label="Role"
    )
    status = forms.ChoiceField(
        required=False, choices=[("", "Any status"), *PrimeUserStatus.choices], label="Status"
    )
    after = forms.CharField(required=False, max_length=400)
    before = forms.CharField(required=False, max_length=400)

    def values(self) -> dict[str, str]:
        """The valid filters; an invalid field counts as not given."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        return {
            name: data.get(name, "") or ""
            for name in ("q", "role", "status", "after", "before")
            if name not in self.errors
        }


class LabelsFields(forms.Form):
    owner_label = forms.CharField(required=False, max_length=100, label="Owner")
    desk_label = forms.CharField(required=False, max_length=100, label="Desk")
    notes = forms.CharField(
        required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3}), label="Notes"
    )


class PrimeUserCreateForm(LabelsFields):
    name = forms.CharField(max_length=1000, label="Name", strip=False)
    role = forms.ChoiceField(choices=PrimeRole.choices, label="Role")

    field_order = ["name", "role", "owner_label", "desk_label", "notes"]

    def clean_name(self) -> str:
        return clean_prime_name(self.cleaned_data["name"])


class RenameForm(forms.Form):
    name = forms.CharField(max_length=1000, label="New name", strip=False)

    def clean_name(self) -> str:
        return clean_prime_name(self.cleaned_data["name"])


class StatusForm(forms.Form):
    status = forms.ChoiceField(choices=PrimeUserStatus.choices)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=PrimeRole.choices, label="New role")
    # The role the preview was computed from; confirming refuses if it has changed since.
    expected_role = forms.CharField(required=False, max_length=16, widget=forms.HiddenInput)


class LabelsForm(LabelsFields):
    pass


class ReviewForm(forms.Form):
    """ "Reviewed" on a user changed outside the portal: which differences the person saw."""

    # The changed_outside_at the page showed; a newer difference must be looked at first.
    seen = forms.CharField(max_length=64)
    where = forms.ChoiceField(required=False, choices=[("", "detail"), ("row", "list row")])
