"""The audit page drawn by Jinja2 is what Django's forms and templates drew."""

from __future__ import annotations

import hashlib
import unicodedata

import pytest
from django.conf import settings
from django.core.cache import cache
from django.template import Context, Template
from django.test import Client
from django.urls import reverse
from django.utils.text import Truncator

from portal.audit.forms import AuditFilterForm
from portal.fragments import template_fingerprint
from portal.staff.models import Staff
from portal.trail import views
from tests.audit.conftest import record

LIST = reverse("audit:list")
HTMX = {"HX-Request": "true"}
SELECTS = ("action", "outcome", "target_type")


@pytest.fixture
def viewing(client: Client, viewer: Staff) -> Client:
    client.force_login(viewer)
    return client


def _select_options(form: AuditFilterForm, name: str) -> str:
    """The <option>s as the shared `{% select_options %}` tag draws them."""
    template = Template("{% load row_urls %}{% select_options field %}")
    return template.render(Context({"field": form[name]}))


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"action": "key_revoked", "outcome": "failed", "target_type": "key"},
        {"action": "", "since": ""},
        {"since": "2026-01-01T00:00", "until": "2026-12-31"},
        {"since": "2026-12-31", "until": "2026-01-01"},  # until before since: 422
        {"since": "yesterday-ish", "action": "nope"},  # not a time, not a choice: 422
        {"q": "<b>\"x'</b>", "actor": "a&b", "target_id": "<id>"},
    ],
)
def test_the_filter_form_is_what_django_forms_draw(
    viewing: Client, db: None, params: dict[str, str]
) -> None:
    record(3)
    body = viewing.get(LIST, params).content.decode()
    form = AuditFilterForm(params)
    form.is_valid()
    for name in ("since", "until"):
        assert str(form[name]) in body
    for name in SELECTS:
        drawn = f'<select name="{name}" id="id_{name}">{_select_options(form, name)}</select>'
        assert drawn in body
        assert form.options_html(name) == _select_options(form, name)
    for name in ("q", "actor", "target_id"):
        value = Template("{{ v|default:'' }}").render(Context({"v": form[name].value()}))
        assert f'name="{name}" id="id_{name}" value="{value}"' in body


def test_the_actor_field_suggests_staff_and_system_actors(
    viewing: Client, admin: Staff, operator: Staff
) -> None:
    body = viewing.get(LIST).content.decode()
    for name in (admin.username, operator.username, "system:prime_poll", "anonymous"):
        assert f'<option value="{name}">' in body


def test_rows_from_the_cache_are_the_rows_drawn(viewing: Client, db: None) -> None:
    record(60, message="é" * 90)
    cache.clear()
    drawn = viewing.get(LIST, headers=HTMX).content
    cached = viewing.get(LIST, headers=HTMX).content
    assert drawn == cached
    assert ("é" * 79 + "…").encode() in drawn


@pytest.mark.parametrize(
    "text",
    ["", "short", "x" * 80, "x" * 81, "e\u0301" * 50, "e\u0301" * 81, "a" * 79 + "e\u0301" * 3],
)
def test_messages_are_shortened_as_truncator_does(text: str) -> None:
    assert views._shortened(text, 80) == Truncator(text).chars(80)
    assert unicodedata.is_normalized("NFC", views._shortened(text, 80))


def test_a_jinja_templates_fingerprint_is_of_its_source() -> None:
    path = settings.BASE_DIR / "templates" / "audit" / "_rows.jinja"
    source = path.read_text(encoding="utf-8")
    expected = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()[:12]
    assert template_fingerprint("audit/_rows.jinja") == expected
    assert template_fingerprint("audit/_results.jinja") != expected


def test_filter_forms_share_their_fields_but_not_their_state() -> None:
    crossed = AuditFilterForm({"since": "2026-12-31", "until": "2026-01-01", "action": "nope"})
    fine = AuditFilterForm({"since": "2026-01-01", "until": "2026-12-31", "action": "key_issued"})
    assert not crossed.is_valid() and fine.is_valid()
    assert "aria-invalid" in str(crossed["until"])
    assert "aria-invalid" not in str(fine["until"])
    assert fine.errors == {} and set(crossed.errors) == {"until", "action"}
    assert 'value="key_issued" selected' in fine.options_html("action")
    assert "selected" not in crossed.options_html("action")
    assert crossed.fields["action"] is fine.fields["action"]  # shared, never altered
    assert AuditFilterForm().fields == AuditFilterForm.base_fields
