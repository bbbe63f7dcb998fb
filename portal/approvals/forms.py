"""Forms of the approvals pages: a vote (with the step-up code) and a policy change."""

from __future__ import annotations

from django import forms

from portal.approvals.models import ChangeKind, VoteDecision


class VoteForm(forms.Form):
    decision = forms.ChoiceField(choices=VoteDecision.choices, widget=forms.HiddenInput)
    code = forms.CharField(
        label="Authenticator code",
        required=False,
        max_length=10,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "size": 8}
        ),
        help_text="Asked again at approval unless you confirmed one in the last few minutes.",
    )
    comment = forms.CharField(label="Comment", required=False, max_length=500)


class PolicyChangeForm(forms.Form):
    kind = forms.ChoiceField(choices=ChangeKind.choices, widget=forms.HiddenInput)
    needs_approval = forms.BooleanField(label="Needs approval", required=False)
    approvers = forms.TypedChoiceField(
        label="Approvers", choices=((1, "1"), (2, "2")), coerce=int, initial=1
    )
    require_step_up_every_time = forms.BooleanField(label="Code every time", required=False)
    reason = forms.CharField(label="Reason", required=False, max_length=500)


class ApproveSelectedForm(forms.Form):
    """A selection of waiting requests (``change`` repeated) and one step-up code."""

    code = forms.CharField(required=False, max_length=10)

    def chosen(self) -> list[int]:
        values = self.data.getlist("change") if hasattr(self.data, "getlist") else []
        return [int(v) for v in values if str(v).isdigit() and len(str(v)) < 12]
