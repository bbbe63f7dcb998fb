"""The audit page: filters, free text, keyset pages, htmx fragments, the detail diff."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.template import Context, Template
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.actors import SystemActor
from portal.audit.models import AuditAction, AuditEvent, Outcome, TargetType
from portal.audit.selectors import PER_PAGE
from portal.audit.services import audit_record
from portal.trail.links import history_url
from tests.audit.conftest import record, tamper

LIST = reverse("audit:list")


def seqs(response) -> list[int]:
    return [e.seq for e in response.context["page"].rows]


def pager_url(response, label: str) -> str:
    """The pager link with this label ("Newest", "Newer", "Older"), or "" when not shown."""
    found = re.search(r'<a href="([^"]+)"[^>]*>[^<]*' + label, response.content.decode())
    return html.unescape(found.group(1)) if found else ""


@pytest.fixture
def viewing(client, viewer):
    client.force_login(viewer)
    return client


def all_seqs() -> list[int]:
    return list(AuditEvent.objects.order_by("-seq").values_list("seq", flat=True))


def picked(events, *indexes: int) -> list[int]:
    return [events[i].seq for i in indexes]


def test_viewers_see_the_newest_events_first(viewing, varied_events):
    response = viewing.get(LIST)
    assert response.status_code == 200
    assert seqs(response) == all_seqs()
    assert seqs(response)[:8] == [e.seq for e in reversed(varied_events)]
    assert b"Audit trail" in response.content


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"actor": "ada.admin"}, [6, 0]),
        ({"actor": "system:prime_poll"}, [4]),
        ({"action": "key_issued"}, [2]),
        ({"target_type": "key", "target_id": "KEYAAAAAAAAA1"}, [3, 2]),
        ({"target_type": "leg"}, [7, 5]),
        ({"target_type": "batch", "target_id": "B_ABCDEFGH"}, [4]),
        ({"target_type": "prime_user", "target_id": "USR0000000001"}, [1]),
        ({"target_id": "KEYAAAAAAAAA1"}, [3, 2]),
        ({"outcome": "failed"}, [3]),
        ({"outcome": "unknown"}, [7]),
        ({"outcome": "refused"}, [6]),
        ({"actor": "otto.operator", "outcome": "succeeded"}, [5, 2, 1]),
    ],
)
def test_each_filter_narrows_the_list(viewing, varied_events, params, expected):
    assert seqs(viewing.get(LIST, params)) == picked(varied_events, *expected)


def test_free_text_searches_target_ids_and_actors(viewing, varied_events):
    found = seqs(viewing.get(LIST, {"q": "abcdefgh"}))  # case-insensitive, partial
    assert found == picked(varied_events, 7, 5, 4)
    assert seqs(viewing.get(LIST, {"q": "OTTO"})) == picked(varied_events, 7, 5, 3, 2, 1)
    assert seqs(viewing.get(LIST, {"q": "nothing-like-this"})) == []
    assert seqs(viewing.get(LIST, {"q": "100%_"})) == []  # wildcards are literal
    assert seqs(viewing.get(LIST, {"q": "h:btc"})) == picked(varied_events, 5)


@pytest.mark.parametrize("term", ["ot", "a.b", "#!~", "_-_"])
def test_a_search_without_three_letters_or_digits_in_a_row_waits(viewing, varied_events, term):
    response = viewing.get(LIST, {"q": term})
    assert seqs(response) == all_seqs()
    assert b"Search needs 3 letters or digits in a row." in response.content


def test_a_time_range_keeps_from_inclusive_and_before_exclusive(viewing, varied_events):
    third, sixth = varied_events[2], varied_events[5]
    params = {
        "since": third.occurred_at.strftime("%Y-%m-%dT%H:%M"),
        "until": sixth.occurred_at.strftime("%Y-%m-%dT%H:%M"),
    }
    assert seqs(viewing.get(LIST, params)) == picked(varied_events, 4, 3, 2)
    later = (varied_events[-1].occurred_at + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert seqs(viewing.get(LIST, {"since": later})) == []
    until = third.occurred_at.strftime("%Y-%m-%dT%H:%M")
    assert seqs(viewing.get(LIST, {"until": until}))[:2] == picked(varied_events, 1, 0)


def test_filters_combine_with_the_time_range(viewing, varied_events):
    since = varied_events[3].occurred_at.strftime("%Y-%m-%dT%H:%M")
    found = seqs(viewing.get(LIST, {"since": since, "actor": "otto.operator"}))
    assert found == picked(varied_events, 7, 5, 3)


def test_keyset_pages_walk_older_and_back_newer(viewing, db):
    record(PER_PAGE * 2 + 5)
    everything = all_seqs()
    first = viewing.get(LIST)
    assert seqs(first) == everything[:PER_PAGE]
    assert pager_url(first, "Older") and not pager_url(first, "Newer")
    second = viewing.get(pager_url(first, "Older"))
    assert seqs(second) == everything[PER_PAGE : 2 * PER_PAGE]
    third = viewing.get(pager_url(second, "Older"))
    assert seqs(third) == everything[2 * PER_PAGE :]
    assert not pager_url(third, "Older")
    back = viewing.get(pager_url(third, "Newer"))
    assert seqs(back) == seqs(second)
    back_again = viewing.get(pager_url(back, "Newer"))
    assert seqs(back_again) == seqs(first)
    assert not pager_url(back_again, "Newer")


def test_pages_keep_the_filter(viewing, db):
    oldest = record(3, target_id="SAME").seq
    record(PER_PAGE, target_id="SAME")
    record(10, target_id="OTHER")
    first = viewing.get(LIST, {"target_id": "SAME"})
    assert "target_id=SAME" in pager_url(first, "Older")
    second = viewing.get(pager_url(first, "Older"))
    assert seqs(second) == [oldest, oldest - 1, oldest - 2]


def test_htmx_gets_only_the_results_fragment(viewing, varied_events):
    response = viewing.get(LIST, {"outcome": "failed"}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="audit-results">')
    assert "<html" not in body and 'id="audit-filters"' not in body
    assert "KEYAAAAAAAAA1" in body
    assert "HX-Request" in response.headers["Vary"]


def test_the_full_page_has_the_form_and_links_that_work_without_javascript(viewing, db):
    record(PER_PAGE + 1)
    body = viewing.get(LIST).content.decode()
    cursor = all_seqs()[PER_PAGE - 1]
    assert 'id="audit-filters"' in body and 'method="get"' in body
    assert f'href="/audit/?older={cursor}"' in body and f'hx-get="/audit/?older={cursor}"' in body
    assert 'href="/audit/export/?format=csv"' in body


def test_bad_filters_answer_422_with_the_errors(viewing, db):
    response = viewing.get(LIST, {"since": "yesterday-ish", "older": "x"})
    assert response.status_code == 422
    assert b"Check the filters" in response.content
    crossed = viewing.get(LIST, {"since": "2026-02-01T00:00", "until": "2026-01-01T00:00"})
    assert crossed.status_code == 422
    assert b"Must be later than From" in crossed.content


def test_the_page_costs_the_same_queries_for_10_and_500_events(viewing, db):
    def count_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert viewing.get(LIST).status_code == 200
            assert viewing.get(LIST, {"actor": "system:command_line", "since": "2020-01-01T00:00"})
        return len(queries)

    record(10)
    few = count_queries()
    record(490)
    assert count_queries() == few


def test_the_detail_shows_the_diff_kraken_and_the_hashes(viewing, db):
    event = audit_record(
        actor=SystemActor.POLLER,
        action=AuditAction.KEY_ALLOWLIST_CHANGED,
        target_type=TargetType.KEY,
        target_id="KEY9",
        outcome=Outcome.FAILED,
        before={"ips": ["10.0.0.1"], "label": "desk", "owner": {"name": "ann", "team": "fx"}},
        after={"ips": ["10.0.0.1", "10.0.0.2"], "label": "desk", "owner": {"name": "bob"}},
        prime_endpoint="UpdatePrimeApiUserKey",
        prime_response={"error": ["EGeneral:Invalid arguments"], "api_secret": "x" * 20},
    )
    response = viewing.get(reverse("audit:detail", args=[event.seq]))
    assert response.status_code == 200
    kinds = {c.path: c.kind for c in response.context["changes"]}
    assert kinds == {
        "ips[0]": "unchanged",
        "ips[1]": "added",
        "label": "unchanged",
        "owner.name": "changed",
        "owner.team": "removed",
    }
    body = response.content.decode()
    assert "EGeneral:Invalid arguments" in body and "[redacted]" in body
    assert event.hash in body and event.prev_hash in body
    assert "hash matches the stored content" in body
    assert f"#{event.seq - 1}" in body and f"#{event.seq + 1}" not in body  # the newest
    assert "UpdatePrimeApiUserKey" in body


def test_the_detail_shows_the_request_context(viewing, operator):
    from portal.audit import context

    event = audit_record(
        actor=operator,
        action=AuditAction.KEY_ISSUED,
        target_type=TargetType.KEY,
        target_id="K",
        ctx=context.RequestContext(client_ip="192.0.2.7", user_agent="UA/1", request_id="rid-42"),
    )
    body = viewing.get(reverse("audit:detail", args=[event.seq])).content.decode()
    assert "192.0.2.7" in body and "UA/1" in body and "rid-42" in body


def test_the_detail_fragment_for_htmx(viewing, db):
    event = record()
    response = viewing.get(
        reverse("audit:detail", args=[event.seq]), headers={"HX-Request": "true"}
    )
    body = response.content.decode()
    assert body.lstrip().startswith('<article id="audit-event"')
    assert "<html" not in body


def test_an_unknown_event_is_404(viewing, db):
    assert viewing.get(reverse("audit:detail", args=[999])).status_code == 404


def test_requests_through_the_portal_carry_their_context_into_events(client, admin, db):
    client.force_login(admin)
    response = client.get(
        reverse("audit:export"), {"format": "csv"}, headers={"User-Agent": "Probe/2"}
    )
    b"".join(response.streaming_content)
    exported = AuditEvent.objects.get(action=AuditAction.AUDIT_EXPORTED)
    assert exported.user_agent == "Probe/2"
    assert exported.client_ip == "127.0.0.1"
    assert exported.request_id == response.headers["X-Request-ID"]


def test_outsiders_are_refused(client, outsider, db):
    client.force_login(outsider)
    assert client.get(LIST).status_code == 403


def test_history_links_for_other_pages():
    assert history_url("key", "K 1") == "/audit/?target_type=key&target_id=K+1"
    rendered = Template(
        "{% load audit_links %}{% audit_history_url 'batch' 'B_1' %}|"
        "{% audit_history_link 'prime_user' uid label='Audit' %}"
    ).render(Context({"uid": "U<1>"}))
    assert rendered == (
        "/audit/?target_type=batch&amp;target_id=B_1|"
        '<a class="audit-history" href="/audit/?target_type=prime_user&amp;target_id=U%3C1%3E">'
        "Audit</a>"
    )


def test_the_detail_flags_an_altered_event(viewing, db):
    event = record()
    tamper("UPDATE audit_auditevent SET message = 'forged' WHERE seq = %s", [event.seq])
    body = viewing.get(reverse("audit:detail", args=[event.seq])).content.decode()
    assert "hash does NOT match: this event was altered" in body
