"""Presenting a TOTP secret for enrolment: an inline SVG QR code and the base32 text."""

from __future__ import annotations

from base64 import b32encode

import qrcode
import qrcode.image.svg
from django.utils.safestring import SafeString, mark_safe
from django_otp.plugins.otp_totp.models import TOTPDevice


def secret_base32(device: TOTPDevice) -> str:
    """The secret as authenticator apps take it by hand, in groups of four."""
    text = b32encode(device.bin_key).decode("ascii").rstrip("=")
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def qr_svg(device: TOTPDevice) -> SafeString:
    """The otpauth:// URI as an inline SVG QR code (drawn here, never by a web service)."""
    image = qrcode.make(
        device.config_url,
        image_factory=qrcode.image.svg.SvgPathImage,
        box_size=10,
        error_correction=qrcode.constants.ERROR_CORRECT_M,
    )
    svg = image.to_string(encoding="unicode")
    svg = svg[svg.index("<svg") :]  # drop any XML declaration
    label = 'role="img" aria-label="QR code for your authenticator app" '
    # Only library-generated markup of our own URI, so it is safe to inline.
    return mark_safe(svg.replace("<svg ", f"<svg {label}", 1))  # noqa: S308
