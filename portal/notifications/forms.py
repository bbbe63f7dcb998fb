"""The preferences form (one row per kind of event) and an Admin's webhook form."""

from __future__ import annotations

from typing import Any

from django import forms

from portal.notifications.models import EventType, WebhookEndpoint


class PreferencesForm(forms.Form):
    """`email_<event>` and `webhook_<event>` for every kind of event."""

    def __init__(self, *args: Any, current: dict[str, tuple[bool, int | None]], **kwargs: Any):
        super().__init__(*args, **kwargs)
        webhooks = WebhookEndpoint.objects.filter(enabled=True)
        for value, label in EventType.choices:
            email, webhook = current[value]
            self.fields[f"email_{value}"] = forms.BooleanField(
                required=False, initial=email, label=f"{label}: email"
            )
            self.fields[f"webhook_{value}"] = forms.ModelChoiceField(
                queryset=webhooks,
                required=False,
                initial=webhook,
                empty_label="no webhook",
                label=f"{label}: webhook",
            )

    def rows(self) -> list[tuple[str, forms.BoundField, forms.BoundField]]:
        return [
            (label, self[f"email_{value}"], self[f"webhook_{value}"])
            for value, label in EventType.choices
        ]


class WebhookForm(forms.ModelForm):
    """Name, address and signing secret; the secret is write-only (blank keeps the stored one)."""

    url = forms.URLField(max_length=500, assume_scheme="https", label="Address")
    secret = forms.CharField(
        required=False,
        strip=True,
        max_length=200,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="The receiver checks the HMAC-SHA256 signature with it. Never shown again.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["name", "url", "enabled"]

    def clean_url(self) -> str:
        url: str = self.cleaned_data["url"]
        if not url.lower().startswith(("https://", "http://")):
            raise forms.ValidationError("Give an http:// or https:// address.")
        return url

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.instance.pk is None and not data.get("secret"):
            self.add_error("secret", "A new webhook needs a signing secret.")
        elif data.get("secret") and len(data["secret"]) < 16:
            self.add_error("secret", "Use at least 16 characters.")
        return data
