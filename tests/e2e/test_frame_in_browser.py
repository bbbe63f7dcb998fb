import pytest

from tests.e2e.conftest import sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_viewer_signs_in_and_sees_the_frame(page, live_server, viewer):
    sign_in(page, live_server, viewer)
    page.wait_for_url(f"{live_server.url}/")
    assert page.locator("header .who").inner_text().count("Viewer") == 1
