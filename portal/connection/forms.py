"""The Prime connection form: the secret is write-only and never rendered back."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django import forms

from portal.connection.models import StoredConnection
from primeapi.signing import decode_secret


class ConnectionForm(forms.Form):
    api_url = forms.CharField(
        label="Prime API address",
        max_length=300,
        initial="https://api.kraken.com",
        help_text="Kraken's address, or the local sandbox's (e.g. http://127.0.0.1:8765).",
    )
    api_key = forms.CharField(label="API key", max_length=200)
    api_secret = forms.CharField(
        label="API secret",
        required=False,
        max_length=500,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only: stored encrypted and never shown again.",
    )

    def __init__(self, *args: Any, stored: StoredConnection | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stored = stored
        if stored is not None:
            self.fields[
                "api_secret"
            ].help_text = "Write-only. Leave empty to keep the stored secret (same key only)."

    def clean_api_url(self) -> str:
        url = self.cleaned_data["api_url"].strip().rstrip("/")
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError:
            parts, host = None, None
        if parts is None or parts.scheme not in ("http", "https") or not host:
            raise forms.ValidationError("Enter an http(s) address such as https://api.kraken.com.")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise forms.ValidationError("Enter the address only, without credentials or query.")
        return url

    def clean_api_key(self) -> str:
        key = self.cleaned_data["api_key"].strip()
        if not key or any(c.isspace() for c in key) or not key.isprintable():
            raise forms.ValidationError("Enter the public API key exactly as Kraken issued it.")
        return key

    def clean_api_secret(self) -> str:
        secret = self.cleaned_data.get("api_secret", "").strip()
        if secret:
            try:
                decode_secret(secret)
            except ValueError:
                raise forms.ValidationError(
                    "This is not a Kraken API secret (base64). Copy it again exactly as issued."
                ) from None
        return secret

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        key = data.get("api_key")
        keeps_stored = self.stored is not None and self.stored.api_key == key
        if key and not data.get("api_secret") and not keeps_stored:
            self.add_error("api_secret", "Enter the API secret that belongs to this key.")
        return data
