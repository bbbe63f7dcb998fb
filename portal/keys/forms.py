"""Forms for keys: issue, allow-list (preview → confirm) and revoke."""

from __future__ import annotations

import secrets
from typing import Any

from django import forms
from django.core import signing

from portal.keys.allowlist import MAX_ENTRIES, ParsedAllowlist, parse_allowlist
from portal.keys.models import ApiKey
from portal.users.models import PrimeUser

ALLOWLIST_MAX_CHARS = 20_000
_TOKEN_SALT = "portal.keys.issue-form"
TOKEN_MAX_AGE_SECONDS = 2 * 60 * 60


def new_issue_token(user: PrimeUser) -> str:
    """A signed one-time token for one issue form of one user."""
    return signing.dumps({"u": user.prime_id, "n": secrets.token_urlsafe(16)}, salt=_TOKEN_SALT)


def read_issue_token(token: str, user: PrimeUser) -> str | None:
    """The token's nonce if it is ours, fresh and for this user; else None."""
    try:
        data = signing.loads(token, salt=_TOKEN_SALT, max_age=TOKEN_MAX_AGE_SECONDS)
    except (signing.BadSignature, ValueError, TypeError, UnicodeError):
        return None
    if not isinstance(data, dict) or data.get("u") != user.prime_id:
        return None
    nonce = data.get("n")
    return nonce if isinstance(nonce, str) and 0 < len(nonce) <= 64 else None


class AllowlistField(forms.CharField):
    """A textarea of entries, one per line, parsed into a normalised list."""

    widget = forms.Textarea(attrs={"rows": 5, "spellcheck": "false", "autocomplete": "off"})

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", ALLOWLIST_MAX_CHARS)
        kwargs.setdefault("required", False)
        kwargs.setdefault("strip", False)
        kwargs.setdefault(
            "help_text",
            "One IPv4/IPv6 address or CIDR block per line, at most "
            f"{MAX_ENTRIES}. 0.0.0.0/0 and ::/0 are not accepted.",
        )
        super().__init__(**kwargs)

    def clean(self, value: object) -> ParsedAllowlist:
        text = super().clean(value)
        parsed = parse_allowlist(text or "")
        if not parsed.ok:
            raise forms.ValidationError(list(parsed.errors))
        return parsed


class IssueForm(forms.Form):
    label = forms.CharField(required=False, max_length=100, label="Label (what the key is for)")
    whitelisted_ips = AllowlistField(label="Allow-list (optional)")
    token = forms.CharField(max_length=500, widget=forms.HiddenInput)

    def __init__(self, *args: Any, user: PrimeUser, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        if not self.is_bound:
            self.initial["token"] = new_issue_token(user)

    def clean_token(self) -> str:
        nonce = read_issue_token(self.cleaned_data["token"], self.user)
        if nonce is None:
            raise forms.ValidationError(
                "This form has expired or was not made for this user. Reload the page."
            )
        return nonce

    @property
    def entries(self) -> list[str]:
        parsed: ParsedAllowlist = self.cleaned_data["whitelisted_ips"]
        return list(parsed.entries)


class LabelForm(forms.Form):
    label = forms.CharField(required=False, max_length=100, label="Label (what the key is for)")

    def clean_label(self) -> str:
        label = self.cleaned_data["label"]
        if any(ord(c) < 32 for c in label):
            raise forms.ValidationError("A label is one line of text.")
        return label


class AllowlistForm(forms.Form):
    """Step one (preview) uses `entries`; step two (save) also checks the confirmations."""

    entries = AllowlistField(label="Allow-list")
    # The allow-list the preview was made against, one per line.
    base = forms.CharField(required=False, max_length=ALLOWLIST_MAX_CHARS, widget=forms.HiddenInput)
    confirm_anywhere = forms.BooleanField(
        required=False, label="Yes: this key may be used from any address."
    )

    def parsed(self) -> ParsedAllowlist:
        return self.cleaned_data["entries"]

    def base_entries(self) -> list[str]:
        return [line for line in (self.cleaned_data.get("base") or "").splitlines() if line]


class RevokeForm(forms.Form):
    public_key = forms.CharField(
        max_length=500, label="Type the key's public key to confirm", strip=True
    )
    reason = forms.CharField(
        max_length=500,
        label="Why is it being revoked?",
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args: Any, key: ApiKey, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key = key

    def clean_public_key(self) -> str:
        typed = self.cleaned_data["public_key"]
        if not secrets.compare_digest(typed.encode(), self.key.public_key.encode()):
            raise forms.ValidationError("That is not this key's public key.")
        return typed

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("Say why the key is being revoked.")
        return reason
