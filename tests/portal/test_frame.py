import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_it_sends_anonymous_visitors_to_sign_in(client):
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response.headers["Location"].startswith(reverse("staff:login"))


def test_the_sign_in_page_is_open(client):
    response = client.get(reverse("staff:login"))
    assert response.status_code == 200
    assert b"Sign in" in response.content


def test_a_viewer_sees_the_frame_with_their_role(client, viewer):
    client.force_login(viewer)
    response = client.get(reverse("home"))
    assert response.status_code == 200
    assert b"Viewer" in response.content
    assert b'hx-headers=\'{"X-CSRFToken"' in response.content
