"""Editing a key's portal-only label after issue: service, in-row htmx editor, audit."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.audit.models import AuditAction, AuditEvent, Outcome
from portal.keys import services
from portal.keys.models import ApiKey
from portal.keys.services import key_issue
from tests.users.conftest import HX

pytestmark = pytest.mark.django_db


@pytest.fixture
def key(prime_user, operator):
    return key_issue(user=prime_user, actor=operator, label="pricing").key


def _events():
    return list(AuditEvent.objects.filter(action=AuditAction.KEY_LABEL_CHANGED).order_by("seq"))


def _url(key):
    return reverse("keys:label", args=[key.prime_key_id])


# --- service ---------------------------------------------------------------------------------


def test_it_saves_the_label_and_audits_before_and_after_without_calling_kraken(
    key, operator, write_log
):
    services.key_update_label(key=key, actor=operator, label="market data, desk B")

    assert ApiKey.objects.get(pk=key.pk).label == "market data, desk B"
    (event,) = _events()
    assert event.actor_id == operator.pk
    assert event.target_type == "key" and event.target_id == key.prime_key_id
    assert event.outcome == Outcome.SUCCEEDED
    assert event.before == {"label": "pricing"}
    assert event.after == {"label": "market data, desk B"}
    assert write_log.writes() == []  # the label lives in the portal only


def test_the_same_label_again_is_not_audited(key, operator):
    services.key_update_label(key=key, actor=operator, label="pricing")

    assert _events() == []


# --- views -----------------------------------------------------------------------------------


def test_the_keys_page_offers_edit_label_to_an_operator_only(op_client, viewer_client, key):
    page = reverse("keys:list", args=[key.user.prime_id])

    mine = op_client.get(page).content.decode()
    theirs = viewer_client.get(page).content.decode()

    assert f'hx-get="{_url(key)}"' in mine and f'href="{_url(key)}"' in mine
    assert _url(key) not in theirs


def test_the_editor_opens_in_the_row(op_client, key):
    response = op_client.get(_url(key), headers=HX)

    body = response.content.decode()
    assert response.status_code == 200
    assert body.strip().startswith(f'<tbody id="key-{key.prime_key_id}"')
    assert "<html" not in body
    assert 'name="label"' in body and 'value="pricing"' in body
    full = op_client.get(_url(key))
    assert "<html" in full.content.decode() and 'class="label-editor"' in full.content.decode()


def test_saving_with_htmx_re_renders_the_row_with_the_new_label(op_client, key):
    response = op_client.post(_url(key), {"label": "hedging"}, headers=HX)

    body = response.content.decode()
    assert response.status_code == 200
    assert body.strip().startswith(f'<tbody id="key-{key.prime_key_id}"')
    assert '<div class="key-label">hedging</div>' in body
    assert 'class="label-editor"' not in body  # the editor closed
    assert f"Label of key {key.prime_key_id} saved." in body  # out-of-band message
    (event,) = _events()
    assert event.after == {"label": "hedging"}


def test_saving_without_javascript_redirects_to_the_keys_page(op_client, key):
    response = op_client.post(_url(key), {"label": ""})

    assert response.status_code == 302
    assert response.headers["Location"] == reverse("keys:list", args=[key.user.prime_id])
    assert ApiKey.objects.get(pk=key.pk).label == ""
    assert _events()[0].after == {"label": ""}


@pytest.mark.parametrize("label", ["x" * 101, "two\nlines", "\x00"])
def test_a_bad_label_is_a_422_with_the_editor(op_client, key, label):
    response = op_client.post(_url(key), {"label": label}, headers=HX)

    assert response.status_code == 422
    assert 'class="label-editor"' in response.content.decode()
    assert ApiKey.objects.get(pk=key.pk).label == "pricing"
    assert _events() == []


def test_a_viewer_cannot_change_a_label(viewer_client, key):
    response = viewer_client.post(_url(key), {"label": "mine now"}, headers=HX)

    assert response.status_code == 403
    assert ApiKey.objects.get(pk=key.pk).label == "pricing"
    assert AuditEvent.objects.filter(action=AuditAction.PERMISSION_REFUSED).count() == 1
