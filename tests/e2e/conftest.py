"""Browser tests: Debian's Chromium driven by Playwright against Django's live server."""

from __future__ import annotations

import os

import pytest

from tests.conftest import PASSWORD

CHROMIUM = os.environ.get("PORTAL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session (Debian's package, never a download)."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/bootstrap (apt-get install chromium).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser):
    """Factory for pages in fresh browser contexts (one context = one person)."""
    contexts = []

    def make(**context_kwargs):
        context_kwargs.setdefault("viewport", {"width": 1366, "height": 900})
        context = browser.new_context(**context_kwargs)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page):
    return new_page()


def sign_in(page, live_server, user, password: str = PASSWORD, *, device=None) -> None:
    """Sign in through the real form; with `device`, also type its current two-factor code."""
    page.goto(f"{live_server.url}/staff/login/")
    page.fill("input[name=username]", user.get_username())
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    if device is not None:
        enter_code(page, device)


def enter_code(page, device) -> None:
    """Type the code the person's authenticator app shows now into the two-factor step."""
    from tests.staff.otp import totp_code

    page.wait_for_url("**/staff/two-factor/**")
    page.fill("input[name=token]", totp_code(device))
    page.click("form button[type=submit].primary")
    page.wait_for_url(lambda url: "/staff/two-factor/" not in url)
