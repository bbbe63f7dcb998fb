import pytest
from django.contrib import messages
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import reverse
from django_htmx.middleware import HtmxMiddleware

from portal.web import HtmxMessagesMiddleware, client_ip

HTMX = {"HX-Request": "true"}


@pytest.mark.parametrize(
    ("hops", "remote", "forwarded", "expected"),
    [
        (0, "10.0.0.1", "203.0.113.9", "10.0.0.1"),  # header ignored without trusted proxies
        (1, "10.0.0.1", "203.0.113.9", "203.0.113.9"),
        (1, "10.0.0.1", "1.1.1.1, 203.0.113.9", "203.0.113.9"),  # forged left entry ignored
        (2, "10.0.0.1", "1.1.1.1, 203.0.113.9, 10.0.0.2", "203.0.113.9"),
        (2, "10.0.0.1", "203.0.113.9", "10.0.0.1"),  # fewer hops than proxies: the peer
        (1, "10.0.0.1", "not-an-address", None),
        (0, "::1", "", "::1"),
    ],
)
def test_client_ip_counts_trusted_proxies_from_the_right(
    settings, hops, remote, forwarded, expected
):
    settings.PORTAL_TRUSTED_PROXY_COUNT = hops
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)

    assert client_ip(request) == expected


def _htmx_pipeline(view):
    """HtmxMiddleware, then the messages middleware, around a view (as in settings)."""
    return HtmxMiddleware(HtmxMessagesMiddleware(view))


@pytest.mark.django_db
def test_messages_ride_out_of_band_on_htmx_responses(client, viewer):
    from django.contrib.messages.storage.session import SessionStorage
    from django.contrib.sessions.backends.db import SessionStore

    def view(request):
        messages.success(request, "Saved the thing.")
        return HttpResponse("<tr><td>row</td></tr>")

    request = RequestFactory().post("/", headers=HTMX)
    request.session = SessionStore()
    request._messages = SessionStorage(request)

    response = _htmx_pipeline(view)(request)

    html = response.content.decode()
    assert html.startswith("<tr><td>row</td></tr>")
    # Wrapped in <template> so the fragment parses even after table rows.
    assert (
        '<template><div id="messages" class="messages" aria-live="polite" hx-swap-oob="true">'
        in html
    )
    assert "Saved the thing." in html


@pytest.mark.django_db
def test_a_204_leaves_pending_messages_for_a_later_answer(viewer):
    from django.contrib.messages.storage.session import SessionStorage
    from django.contrib.sessions.backends.db import SessionStore

    request = RequestFactory().get("/", headers=HTMX)
    request.session = SessionStore()
    request._messages = SessionStorage(request)
    messages.info(request, "Batch approved.")

    response = _htmx_pipeline(lambda request: HttpResponse(status=204))(request)

    assert response.content == b""  # htmx swaps nothing on a 204: nothing may ride on it
    assert [m.message for m in messages.get_messages(request)] == ["Batch approved."]


@pytest.mark.django_db
def test_plain_requests_keep_messages_for_the_page(client, viewer):
    from django.contrib.messages.storage.session import SessionStorage
    from django.contrib.sessions.backends.db import SessionStore

    def view(request):
        messages.success(request, "Saved the thing.")
        return HttpResponse("<p>page</p>")

    request = RequestFactory().post("/")
    request.session = SessionStore()
    request._messages = SessionStorage(request)

    response = _htmx_pipeline(view)(request)

    assert response.content == b"<p>page</p>"
    assert [m.message for m in messages.get_messages(request)] == ["Saved the thing."]


@pytest.mark.django_db
def test_messages_wait_for_the_next_page_after_an_htmx_redirect(client, admin, viewer):
    from django_htmx.http import HttpResponseClientRedirect

    from tests.staff.otp import verified_login

    verified_login(client, admin)
    # A real round trip: a success message set before a client redirect is not consumed.
    response = client.post(
        reverse("staff:roles", args=[viewer.pk]), {"role": "Operator", "action": "grant"}
    )
    assert response.status_code == 302
    page = client.get(reverse("staff:list"))
    assert b"Granted Operator to vic.viewer." in page.content
    assert HttpResponseClientRedirect("/").status_code == 200


@pytest.mark.django_db
def test_an_htmx_request_without_a_session_is_sent_to_sign_in(client):
    response = client.get(
        reverse("home"), headers={**HTMX, "HX-Current-URL": "http://testserver/staff/?x=1"}
    )

    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/staff/login/?next=%2Fstaff%2F%3Fx%3D1"


@pytest.mark.django_db
def test_a_missing_page_is_a_404_in_the_frame(client, viewer):
    client.force_login(viewer)

    page = client.get("/no/such/page/")
    htmx = client.get("/no/such/page/", headers=HTMX)

    assert page.status_code == 404
    assert b"There is nothing at this address." in page.content
    assert htmx.status_code == 404
    assert htmx.headers["HX-Reswap"] == "none"
    assert b'hx-swap-oob="true"' in htmx.content


@pytest.mark.django_db
def test_a_403_for_htmx_keeps_earlier_messages_in_the_same_message_area(rf, viewer):
    from django.contrib.messages.storage.session import SessionStorage
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.exceptions import PermissionDenied

    from portal.web import permission_denied

    request = rf.post("/", headers=HTMX)
    HtmxMiddleware(lambda r: HttpResponse())(request)
    request.session = SessionStore()
    request._messages = SessionStorage(request)
    request.user = viewer
    messages.info(request, "Earlier news.")

    response = permission_denied(request, PermissionDenied("You need permission to X."))

    html = response.content.decode()
    assert html.count('id="messages"') == 1
    assert "Earlier news." in html and "You need permission to X." in html


def _through_htmx(request):
    HtmxMiddleware(lambda r: HttpResponse())(request)
    return request


def test_a_history_restore_gets_the_whole_page(rf):
    from portal.web import wants_fragment

    assert wants_fragment(_through_htmx(rf.get("/", headers=HTMX)))
    restore = rf.get("/", headers={**HTMX, "HX-History-Restore-Request": "true"})
    assert not wants_fragment(_through_htmx(restore))
    assert not wants_fragment(_through_htmx(rf.get("/")))


def test_one_redirect_answers_htmx_and_plain_posts(rf):
    from portal.web import redirect_to

    plain = redirect_to(_through_htmx(rf.post("/")), "users:list")
    htmx = redirect_to(_through_htmx(rf.post("/", headers=HTMX)), "users:list")

    assert plain.status_code == 302 and plain["Location"] == reverse("users:list")
    assert htmx.status_code == 200 and htmx["HX-Redirect"] == reverse("users:list")
    assert "Location" not in htmx
    assert "HX-Request" in htmx["Vary"]


def test_no_store_keeps_other_cache_directives():
    from django.utils.cache import patch_cache_control

    from portal.web import no_store

    response = no_store(HttpResponse())
    assert response["Cache-Control"] == "no-store"
    private = HttpResponse()
    patch_cache_control(private, private=True)
    assert set(no_store(private)["Cache-Control"].split(", ")) == {"private", "no-store"}


@pytest.mark.django_db
def test_page_or_fragment_varies_on_htmx_and_can_stop_polling(rf, viewer):
    from portal.web import render_htmx

    request = _through_htmx(rf.get("/", headers=HTMX))
    request.user = viewer

    response = render_htmx(request, "settlement/batch_list.html", "batch-table", stop_polling=True)

    assert response.status_code == 286
    assert {"HX-Request", "HX-History-Restore-Request"} <= set(response["Vary"].split(", "))
