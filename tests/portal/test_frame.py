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


def _nav(client, user) -> list[str]:
    import re

    client.force_login(user)
    html = client.get(reverse("home")).content.decode()
    nav = html.split('<nav class="nav" aria-label="Main">', 1)[1].split("</nav>", 1)[0]
    return re.findall(r">([^<]+)</a>", nav)


def test_the_navigation_follows_the_role(client, operator, admin, viewer, outsider):
    operator_nav = _nav(client, operator)
    assert "Prime users" in operator_nav and "Settlement" in operator_nav
    assert "Staff" not in operator_nav and "Prime connection" not in operator_nav

    admin_nav = _nav(client, admin)
    assert "Staff" in admin_nav and "Prime connection" in admin_nav

    assert "Staff" not in _nav(client, viewer)
    assert _nav(client, outsider) == []


def test_the_current_section_is_marked_in_the_navigation(client, admin):
    client.force_login(admin)

    html = client.get(reverse("staff:list")).content.decode()

    assert f'<a href="{reverse("staff:list")}" aria-current="page">Staff</a>' in html


def test_htmx_comes_from_the_package_and_nothing_from_elsewhere(client, viewer):
    client.force_login(viewer)

    html = client.get(reverse("home")).content.decode()

    assert "django_htmx/htmx-2.min.js" in html
    assert 'name="htmx-config"' in html and '"[2345].."' in html
    assert "https://" not in html and "http://" not in html.replace("http://www.w3.org", "")


def test_an_outsider_sees_that_they_need_a_role(client, outsider):
    client.force_login(outsider)

    response = client.get(reverse("home"))

    assert b"Your account has no portal role" in response.content


def test_the_frame_answers_in_a_fixed_number_of_queries(
    client, viewer, django_assert_max_num_queries
):
    client.force_login(viewer)
    client.get(reverse("home"))

    with django_assert_max_num_queries(12):
        client.get(reverse("home"))
