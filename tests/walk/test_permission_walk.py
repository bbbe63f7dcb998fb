"""Every URL, every role, and an anonymous visitor: each gets the answer it should."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, include, path, reverse
from django.urls.resolvers import RegexPattern

import tests.walk
from tests.conftest import PASSWORD, make_staff
from tests.walk.cases import OUTSIDER, ROLES, Case

IGNORED_NAMESPACES = {"admin"}
SIGNS_OUT = {"staff:logout"}


def _all_cases() -> list[Case]:
    cases: list[Case] = []
    for info in pkgutil.iter_modules(tests.walk.__path__):
        if info.name.startswith("expect_"):
            module = importlib.import_module(f"tests.walk.{info.name}")
            cases.extend(module.CASES)
    return cases


def _url_names(resolver=None, prefix: str = "") -> set[str]:
    resolver = resolver or get_resolver()
    names: set[str] = set()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            ns = entry.namespace
            if ns in IGNORED_NAMESPACES:
                continue
            names |= _url_names(entry, f"{prefix}{ns}:" if ns else prefix)
        elif isinstance(entry, URLPattern) and entry.name:
            names.add(prefix + entry.name)
    return names


CASES = _all_cases()
PERSONAS = ("anonymous", OUTSIDER, *ROLES)


def _missing_entries(cases: list[Case], resolver=None) -> list[str]:
    """URL names the resolver serves that no Case covers."""
    covered = {case.url_name for case in cases}
    return sorted(_url_names(resolver) - covered)


def test_every_url_has_an_entry_in_the_walk():
    missing = _missing_entries(CASES)
    assert not missing, f"URLs without a permission-walk entry: {missing}"


def test_the_coverage_check_reports_a_url_without_an_entry():
    import portal.urls

    def _view(request):  # pragma: no cover - never called
        raise AssertionError

    extra = [
        *portal.urls.urlpatterns,
        path("throwaway/", _view, name="throwaway"),
        path("more/", include(([path("x/", _view, name="thing")], "extra"))),
    ]
    resolver = URLResolver(RegexPattern(r"^/"), extra)
    newly_missing = set(_missing_entries(CASES, resolver)) - set(_missing_entries(CASES))
    assert newly_missing == {"extra:thing", "throwaway"}


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_each_persona_gets_the_expected_answer(case, persona, client, prime_settings, db):
    if persona != "anonymous":
        roles = () if persona == OUTSIDER else (persona,)
        user = make_staff(f"walk-{persona.lower()}", *roles)
        client.force_login(user)
    kwargs = case.kwargs(prime_settings) if case.kwargs else {}
    url = reverse(case.url_name, kwargs=kwargs)
    headers = {"HX-Request": "true"} if case.htmx else {}
    call = client.post if case.method == "POST" else client.get
    response = call(url, data=case.data or {}, headers=headers)

    login = reverse("staff:login")
    if persona == "anonymous":
        if case.public:
            assert response.status_code < 500
            assert response.status_code != 403
        else:
            assert response.status_code in (302, 401), response.status_code
            if response.status_code == 302:
                assert response.headers["Location"].startswith(login)
        return
    if case.url_name in SIGNS_OUT and persona in case.allowed:
        # Signing out is the one answer that rightly lands on the sign-in page.
        assert response.status_code == 302
        assert response.headers["Location"].startswith(login)
        assert "_auth_user_id" not in client.session
        return
    if persona in case.allowed:
        assert response.status_code < 500, (response.status_code, response.content[:300])
        assert response.status_code != 403, response.content[:300]
        assert response.status_code != 404 or 404 in case.also_ok
        if response.status_code == 302:
            assert not response.headers["Location"].startswith(login)
    else:
        assert response.status_code == 403, (response.status_code, response.content[:300])


def test_the_password_used_by_personas_is_set():
    assert PASSWORD
