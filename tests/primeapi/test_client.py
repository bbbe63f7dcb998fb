"""PrimeClient against a fake transport adapter mounted on a real requests.Session."""

from __future__ import annotations

import base64
import json
import logging
import random
import socket
import threading
import traceback
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import (
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from primeapi import client as client_module
from primeapi import errors as e
from primeapi.client import PrimeClient, transport_error
from primeapi.models import ApiKey, ApiUser, BatchPage, IssuedApiKey, SettlementBatch, SettleResult
from primeapi.signing import sign, verify

BASE = "https://prime.test"
KEY = "PUBLICKEY-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ"
# Recognisable, so a leak would be easy to spot in any output.
SECRET_BYTES = b"TOP-SECRET-DO-NOT-LEAK-" * 3
SECRET = base64.b64encode(SECRET_BYTES).decode()
ISSUED_SECRET = base64.b64encode(b"ISSUED-SECRET-SHOWN-ONCE-" * 2).decode()
DOC_SECRET = (
    "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
)

USER = {"id": "2T0RXL9B8K5D6", "name": "Test User", "status": "Enabled", "roles": ["Trader"]}
LEG = {
    "status": "unsettled",
    "asset": "BTC",
    "amount": "1.5",
    "direction": "incoming",
    "can_settle": True,
    "settled_at": 123,
    "latest_spot_transfer": {},
}
BATCH = {
    "id": "B_Y7T2LPVX",
    "attributes": {
        "status": "unsettled",
        "confirmed": False,
        "created_at": 1700000000000,
        "trade_count": 5,
        "asset_kind": "currency",
        "updated_at": 1700000100000,
    },
    "legs": [LEG],
    "trade_ids": ["3f435d6b-62fd-4f26-b1c5-68ef573d93ef", "7f6a6d75-6470-4f65-8b24-9858f28ede83"],
}
ISSUED = {
    "id": "3RM9K4ZTC0C00",
    "api_key": "KRA5L19LAW8Z",
    "api_secret": ISSUED_SECRET,
    "user_id": "2T0RXL9B8K5D6",
    "permissions": ["read::marketdata"],
    "whitelisted_ips": ["192.168.1.1"],
}
UPDATED_KEY = {
    "id": "3RM9K4ZTC0C00",
    "api_key": "KRA5L19LAW8Z",
    "user_id": "2T0RXL9B8K5D6",
    "permissions": ["read::marketdata"],
    "whitelisted_ips": ["192.168.1.1"],
    "updated_at": 123,
}
LISTED_KEY = {
    "id": "3RM9K4ZTC0C00",
    "key": "KRA5L19LAW8Z",
    "user_id": "2T0RXL9B8K5D6",
    "updated_at": 123,
    "permissions": ["read::marketdata"],
    "whitelisted_ips": [],
}
TRANSFER = {
    "transfer": {
        "id": "100",
        "attributes": {
            "transfer_status": "pending",
            "transfer_amount": "1.5",
            "transfer_asset": "BTC",
        },
        "relationships": {"leg": LEG},
    }
}


@pytest.fixture(autouse=True)
def fresh_key_gates(monkeypatch):
    """Each test starts with no memory of nonces sent on KEY by earlier tests."""
    monkeypatch.setattr(client_module, "_GATES", client_module._KeyGates())


# --- the fake transport -----------------------------------------------------------------


class Reply:
    """One canned HTTP answer."""

    def __init__(self, body: Any = None, *, status: int = 200, raw: bytes | None = None) -> None:
        self.status = status
        self.content = raw if raw is not None else json.dumps(body).encode()


def ok(result: Any) -> Reply:
    return Reply({"error": [], "result": result})


def fail(*errors: str, status: int = 200) -> Reply:
    return Reply({"error": list(errors)}, status=status)


class Sent:
    """What the client put on the wire, copied out of the PreparedRequest."""

    def __init__(self, request: requests.PreparedRequest) -> None:
        self.method = request.method
        self.url = request.url
        self.path = request.path_url
        self.headers = dict(request.headers)
        self.body: bytes = request.body  # type: ignore[assignment]
        self.payload = json.loads(self.body)


class FakeTransport(BaseAdapter):
    """A requests transport adapter that replays scripted replies and records requests."""

    def __init__(self, *replies: Reply | BaseException | Callable[[Sent], Reply]) -> None:
        super().__init__()
        self.replies = list(replies)
        self.sent: list[Sent] = []
        self.lock = threading.Lock()

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        sent = Sent(request)
        with self.lock:
            self.sent.append(sent)
            reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if callable(reply) and not isinstance(reply, BaseException):
            reply = reply(sent)
        if isinstance(reply, BaseException):
            raise reply
        response = requests.Response()
        response.status_code = reply.status
        response._content = reply.content
        response.headers = CaseInsensitiveDict({"Content-Type": "application/json"})
        response.request = request
        response.url = request.url
        return response

    def close(self) -> None:
        pass


class Nonces:
    """A predictable nonce source."""

    def __init__(self, start: int = 1616492376594) -> None:
        self.value = start - 1
        self.lock = threading.Lock()

    def next_nonce(self, api_key: str) -> int:
        with self.lock:
            self.value += 1
            return self.value


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_client(
    *replies: Reply | BaseException | Callable[[Sent], Reply], **kwargs: Any
) -> tuple[PrimeClient, FakeTransport]:
    transport = FakeTransport(*replies)
    session = requests.Session()
    session.mount(BASE, transport)
    kwargs.setdefault("nonce", Nonces())
    kwargs.setdefault("sleep", Sleeps())
    kwargs.setdefault("rng", random.Random(7))
    client = PrimeClient(BASE, KEY, SECRET, session=session, **kwargs)
    return client, transport


# Exceptions shaped exactly as requests/urllib3 raise them.
def refused() -> requests.ConnectionError:
    reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] refused")
    return requests.ConnectionError(MaxRetryError(None, "/0/private/X", reason))


def dns_failure() -> requests.ConnectionError:
    reason = NameResolutionError(
        "prime.test", None, socket.gaierror(-2, "Name or service not known")
    )
    return requests.ConnectionError(MaxRetryError(None, "/0/private/X", reason))


def reset() -> requests.ConnectionError:
    return requests.ConnectionError(
        ProtocolError("Connection aborted.", ConnectionResetError(104, "Connection reset by peer"))
    )


def read_timeout() -> requests.ReadTimeout:
    return requests.ReadTimeout(ReadTimeoutError(None, "/0/private/X", "Read timed out."))


# --- every endpoint: path, exact signed bytes, headers, parsing ----------------------------

ENDPOINTS = [
    (
        lambda c: c.create_api_user("Test User", "Trader"),
        "CreatePrimeApiUser",
        {"name": "Test User", "role": "Trader"},
        USER,
        lambda r: r == ApiUser("2T0RXL9B8K5D6", "Test User", "Enabled", ("Trader",)),
    ),
    (
        lambda c: c.get_api_user("2T0RXL9B8K5D6"),
        "GetPrimeApiUser",
        {"user_id": "2T0RXL9B8K5D6"},
        {"data": USER},
        lambda r: r.id == "2T0RXL9B8K5D6" and r.role == "Trader",
    ),
    (
        lambda c: c.list_api_users(),
        "ListPrimeApiUsers",
        {},
        {"data": [USER]},
        lambda r: r == (ApiUser.from_api(USER),),
    ),
    (
        lambda c: c.update_api_user("2T0RXL9B8K5D6", name="Updated User Name", status="Disabled"),
        "UpdatePrimeApiUser",
        {"user_id": "2T0RXL9B8K5D6", "name": "Updated User Name", "status": "Disabled"},
        {**USER, "name": "Updated User Name", "status": "Disabled"},
        lambda r: r.name == "Updated User Name" and not r.is_enabled,
    ),
    (
        lambda c: c.update_api_user_roles("2T0RXL9B8K5D6", "Viewer"),
        "UpdatePrimeApiUserRoles",
        {"user_id": "2T0RXL9B8K5D6", "role": "Viewer"},
        {**USER, "roles": ["Viewer"]},
        lambda r: r.roles == ("Viewer",),
    ),
    (
        lambda c: c.create_api_user_key("2T0RXL9B8K5D6"),
        "CreatePrimeApiUserKey",
        {"user_id": "2T0RXL9B8K5D6"},
        ISSUED,
        lambda r: isinstance(r, IssuedApiKey) and r.api_secret == ISSUED_SECRET,
    ),
    (
        lambda c: c.list_api_user_keys("2T0RXL9B8K5D6"),
        "ListPrimeApiUserKeys",
        {"user_id": "2T0RXL9B8K5D6"},
        {"data": [LISTED_KEY]},
        lambda r: r == (ApiKey.from_api(LISTED_KEY),) and r[0].api_key == "KRA5L19LAW8Z",
    ),
    (
        lambda c: c.update_api_user_key(
            "2T0RXL9B8K5D6", "3RM9K4ZTC0C00", ["192.168.1.1", "10.0.0.1"]
        ),
        "UpdatePrimeApiUserKey",
        {
            "user_id": "2T0RXL9B8K5D6",
            "key_id": "3RM9K4ZTC0C00",
            "whitelisted_ips": ["192.168.1.1", "10.0.0.1"],
        },
        UPDATED_KEY,
        lambda r: type(r) is ApiKey and r.whitelisted_ips == ("192.168.1.1",),
    ),
    (
        lambda c: c.delete_api_user_key("2T0RXL9B8K5D6", "3RM9K4ZTC0C00"),
        "DeletePrimeApiUserKey",
        {"user_id": "2T0RXL9B8K5D6", "key_id": "3RM9K4ZTC0C00"},
        {"deleted": True},
        lambda r: r is True,
    ),
    (
        lambda c: c.create_settlement_batch(),
        "CreatePrimeSettlementBatch",
        {"asset_kind": "currency"},
        {"batch": BATCH},
        lambda r: isinstance(r, SettlementBatch) and len(r.trade_ids) == 2,
    ),
    (
        lambda c: c.get_settlement_batch("B_Y7T2LPVX"),
        "GetPrimeSettlementBatch",
        {"batch_id": "B_Y7T2LPVX"},
        {"batch": BATCH},
        lambda r: r.legs[0].amount == Decimal("1.5"),
    ),
    (
        lambda c: c.list_settlement_batches(
            statuses=["unsettled", "partially_settled"],
            from_ms=1700000000000,
            until_ms=1700100000000,
            limit=20,
            offset=0,
        ),
        "ListPrimeSettlementBatches",
        {
            "statuses": ["unsettled", "partially_settled"],
            "from": 1700000000000,
            "until": 1700100000000,
            "limit": 20,
            "offset": 0,
        },
        {"data": [BATCH], "pagination": {"has_more": True, "limit": 20, "offset": 0}},
        lambda r: isinstance(r, BatchPage) and r.has_more and r.batches[0].id == "B_Y7T2LPVX",
    ),
    (
        lambda c: c.settle_settlement_batch_asset("B_Y7T2LPVX", "BTC"),
        "SettlePrimeSettlementBatchAsset",
        {"batch_id": "B_Y7T2LPVX", "asset": "BTC"},
        TRANSFER,
        lambda r: isinstance(r, SettleResult) and r.transfer.status == "pending",
    ),
]
ENDPOINT_IDS = [row[1] for row in ENDPOINTS]


@pytest.mark.parametrize(
    ("call", "endpoint", "fields", "result", "check"), ENDPOINTS, ids=ENDPOINT_IDS
)
def test_each_endpoint_sends_signed_compact_json_and_parses_the_documented_answer(
    call, endpoint, fields, result, check
):
    client, transport = make_client(ok(result))
    value = call(client)
    assert check(value)
    (sent,) = transport.sent
    assert sent.method == "POST"
    assert sent.url == f"{BASE}/0/private/{endpoint}"
    expected_body = json.dumps({"nonce": 1616492376594, **fields}, separators=(",", ":")).encode()
    assert sent.body == expected_body
    assert sent.headers["API-Key"] == KEY
    assert sent.headers["API-Sign"] == sign(
        secret=SECRET, url_path=f"/0/private/{endpoint}", nonce=1616492376594, body=expected_body
    )
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["User-Agent"].startswith("prime-ops-portal")


def test_the_thirteen_endpoints_are_all_covered():
    assert len(set(ENDPOINT_IDS)) == 13


def test_it_reproduces_the_derived_prime_vector_end_to_end():
    transport = FakeTransport(ok({"data": []}))
    session = requests.Session()
    session.mount(BASE, transport)
    client = PrimeClient(BASE, KEY, DOC_SECRET, session=session, nonce=Nonces(1616492376594))
    client.list_api_user_keys("2T0RXL9B8K5D6")
    (sent,) = transport.sent
    assert sent.body == b'{"nonce":1616492376594,"user_id":"2T0RXL9B8K5D6"}'
    assert sent.headers["API-Sign"] == (
        "s00Io6+kbAPuXdf7KzWXFJ5chhMUZ1ZaMoPErjs7hNK4A627qn2KzZ3s1slpwAI7RTzgH8T6o0uYKPSgkvgpfQ=="
    )


def test_it_leaves_out_unset_optional_fields():
    client, transport = make_client(
        ok(USER), ok({"data": [], "pagination": {}}), ok({"batch": BATCH})
    )
    client.update_api_user("U1", name="Only Name")
    client.list_settlement_batches()
    client.create_settlement_batch(asset_kind=None)
    assert [s.payload for s in transport.sent] == [
        {"nonce": 1616492376594, "user_id": "U1", "name": "Only Name"},
        {"nonce": 1616492376595},
        {"nonce": 1616492376596},
    ]


def test_it_sends_non_ascii_names_as_utf8_and_signs_those_bytes():
    client, transport = make_client(ok({**USER, "name": "Zoë Ø"}))
    user = client.create_api_user("Zoë Ø", "Viewer")
    (sent,) = transport.sent
    assert "Zoë Ø".encode() in sent.body
    assert verify(
        secret=SECRET,
        url_path="/0/private/CreatePrimeApiUser",
        nonce=sent.payload["nonce"],
        body=sent.body,
        signature=sent.headers["API-Sign"],
    )
    assert user.name == "Zoë Ø"


def test_a_base_url_with_a_path_prefix_signs_the_full_path():
    transport = FakeTransport(ok({"data": []}))
    session = requests.Session()
    session.mount(BASE, transport)
    client = PrimeClient(f"{BASE}/prime/", KEY, SECRET, session=session, nonce=Nonces())
    client.list_api_users()
    (sent,) = transport.sent
    assert sent.path == "/prime/0/private/ListPrimeApiUsers"
    assert verify(
        secret=SECRET,
        url_path="/prime/0/private/ListPrimeApiUsers",
        nonce=sent.payload["nonce"],
        body=sent.body,
        signature=sent.headers["API-Sign"],
    )


def test_it_accepts_enum_members_and_sends_their_plain_values():
    from primeapi.models import Role, UserStatus

    client, transport = make_client(ok(USER), ok(USER))
    client.create_api_user("A", Role.VIEWER)
    client.update_api_user("U", status=UserStatus.DISABLED)
    assert b'"role":"Viewer"' in transport.sent[0].body
    assert b'"status":"Disabled"' in transport.sent[1].body


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.create_api_user("A", "trader"),
        lambda c: c.update_api_user("U"),
        lambda c: c.update_api_user("U", status="Paused"),
        lambda c: c.update_api_user_roles("U", "Admin"),
        lambda c: c.update_api_user_key("U", "K", "10.0.0.1"),
        lambda c: c.create_settlement_batch("spot"),
        lambda c: c.list_settlement_batches(statuses=["open"]),
        lambda c: c.list_settlement_batches(limit=0),
        lambda c: c.list_settlement_batches(limit=201),
        lambda c: c.list_settlement_batches(offset=-1),
        lambda c: c.list_settlement_batches(from_ms=True),
    ],
)
def test_it_refuses_bad_arguments_before_sending_anything(call):
    client, transport = make_client(ok({}))
    with pytest.raises(ValueError):
        call(client)
    assert transport.sent == []


# --- envelope and error mapping ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "cls"),
    [
        ("EAPI:Invalid key", e.InvalidKeyError),
        ("EAPI:Invalid signature", e.InvalidSignatureError),
        ("EGeneral:Permission denied", e.PermissionDeniedError),
        ("EGeneral:Invalid arguments:Unknown user", e.InvalidArgumentsError),
        ("EAPI:Rate limit exceeded", e.RateLimitedError),
        ("EService: Throttled: 4102444800", e.RateLimitedError),
        ("EGeneral:Temporary lockout", e.TemporaryLockoutError),
        ("EAPI:Feature disabled", e.FeatureDisabledError),
        ("EQuery:Something new", e.PrimeAPIError),
    ],
)
def test_a_kraken_error_raises_its_class_once_without_retrying(text, cls):
    client, transport = make_client(fail(text))
    with pytest.raises(cls) as caught:
        client.get_api_user("U")
    assert type(caught.value) is cls
    assert caught.value.errors == (text,)
    assert caught.value.endpoint == "GetPrimeApiUser"
    assert caught.value.http_status == 200
    assert len(transport.sent) == 1


def test_a_refused_write_is_not_an_unknown_outcome():
    client, transport = make_client(fail("EGeneral:Invalid arguments:Batch not confirmed"))
    with pytest.raises(e.InvalidArgumentsError) as caught:
        client.settle_settlement_batch_asset("B_1", "BTC")
    assert caught.value.detail == "Batch not confirmed"
    assert caught.value.outcome_unknown is False
    assert len(transport.sent) == 1


def test_rate_limited_is_raised_with_retry_after_and_not_retried():
    client, transport = make_client(fail("EService: Throttled: 4102444800"))
    with pytest.raises(e.RateLimitedError) as caught:
        client.list_api_users()
    assert caught.value.retry_after > 0
    assert len(transport.sent) == 1


def test_warnings_alone_do_not_raise_and_are_logged(caplog):
    client, _ = make_client(Reply({"error": ["WGeneral:Deprecated"], "result": {"data": []}}))
    with caplog.at_level(logging.INFO, logger="primeapi"):
        assert client.list_api_users() == ()
    assert "WGeneral:Deprecated" in caplog.text


@pytest.mark.parametrize(
    "reply",
    [
        Reply(raw=b"<html>oops</html>"),
        Reply(raw=b""),
        Reply({"result": {"data": []}}),
        Reply({"error": "EAPI:Invalid key"}),
        Reply({"error": [1, 2]}),
        Reply(["error", []]),
        Reply({"error": []}),
        Reply({"error": [], "result": {"data": [{"id": 1}]}}),
    ],
    ids=[
        "html",
        "empty",
        "no-error-key",
        "error-not-a-list",
        "error-not-strings",
        "not-an-object",
        "no-result",
        "bad-result-shape",
    ],
)
def test_a_malformed_answer_to_a_read_raises_malformed_response(reply):
    client, transport = make_client(reply)
    with pytest.raises(e.MalformedResponseError) as caught:
        client.list_api_users()
    assert caught.value.outcome_unknown is True
    assert caught.value.endpoint == "ListPrimeApiUsers"
    assert len(transport.sent) == 1


def test_a_malformed_answer_to_a_write_is_an_unknown_outcome():
    client, transport = make_client(Reply(raw=b"not json"))
    with pytest.raises(e.OutcomeUnknownError) as caught:
        client.create_api_user("A", "Viewer")
    assert isinstance(caught.value.cause, e.MalformedResponseError)
    assert len(transport.sent) == 1


def test_a_delete_that_does_not_say_deleted_is_an_unknown_outcome():
    client, transport = make_client(ok({"deleted": False}))
    with pytest.raises(e.OutcomeUnknownError):
        client.delete_api_user_key("U", "K")
    assert len(transport.sent) == 1


def test_a_non_200_without_a_kraken_body_keeps_the_status():
    client, transport = make_client(Reply(raw=b"<h1>Forbidden</h1>", status=403))
    with pytest.raises(e.UnexpectedStatusError) as caught:
        client.list_api_users()
    assert caught.value.http_status == 403
    assert len(transport.sent) == 1  # a 4xx is not retried


def test_a_non_200_with_a_kraken_body_raises_the_kraken_error():
    client, _ = make_client(fail("EAPI:Invalid key", status=403))
    with pytest.raises(e.InvalidKeyError) as caught:
        client.list_api_users()
    assert caught.value.http_status == 403


def test_a_non_200_with_an_empty_error_list_is_unexpected():
    client, _ = make_client(Reply({"error": [], "result": {}}, status=404))
    with pytest.raises(e.UnexpectedStatusError):
        client.list_api_users()


def test_decimals_in_json_numbers_stay_exact():
    leg = {**LEG, "amount": Decimal("0.1")}
    body = json.dumps({"error": [], "result": {"batch": {**BATCH, "legs": [leg]}}}, default=str)
    body = body.replace('"0.1"', "0.1")
    client, _ = make_client(Reply(raw=body.encode()))
    batch = client.get_settlement_batch("B_Y7T2LPVX")
    assert batch.legs[0].amount == Decimal("0.1")


# --- transport classification --------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (refused(), e.ConnectFailedError),
        (dns_failure(), e.ConnectFailedError),
        (requests.ConnectTimeout("connect timed out"), e.ConnectFailedError),
        (read_timeout(), e.ResponseTimeoutError),
        (
            requests.ConnectionError(ReadTimeoutError(None, "/x", "Read timed out.")),
            e.ResponseTimeoutError,
        ),
        (reset(), e.ConnectionDroppedError),
        (requests.exceptions.ChunkedEncodingError("broken"), e.ConnectionDroppedError),
        (requests.exceptions.SSLError("tls"), e.ConnectionDroppedError),
        (requests.ConnectionError("something else"), e.ConnectionDroppedError),
    ],
)
def test_it_classifies_requests_failures_by_whether_kraken_may_have_acted(exc, cls):
    error = transport_error(exc, "X")
    assert type(error) is cls
    assert error.endpoint == "X"


def test_a_request_that_cannot_be_built_is_a_plain_transport_error():
    error = transport_error(requests.exceptions.InvalidURL("bad"), "X")
    assert type(error) is e.TransportError
    assert error.outcome_unknown is False


# --- retries -------------------------------------------------------------------------------


def test_it_retries_a_read_after_a_connection_reset_with_a_new_nonce_and_signature():
    client, transport = make_client(reset(), ok({"data": [USER]}))
    users = client.list_api_users()
    assert [u.id for u in users] == ["2T0RXL9B8K5D6"]
    first, second = transport.sent
    assert second.payload["nonce"] > first.payload["nonce"]
    assert second.headers["API-Sign"] != first.headers["API-Sign"]
    for sent in transport.sent:
        assert verify(
            secret=SECRET,
            url_path="/0/private/ListPrimeApiUsers",
            nonce=sent.payload["nonce"],
            body=sent.body,
            signature=sent.headers["API-Sign"],
        )


@pytest.mark.parametrize(
    "failure",
    [
        read_timeout,
        reset,
        refused,
        lambda: fail("EGeneral:Internal error", status=500),
        lambda: fail("EService:Unavailable"),
        lambda: fail("EService:Busy"),
        lambda: Reply(raw=b"<html>Bad gateway</html>", status=502),
    ],
    ids=["timeout", "reset", "refused", "500", "unavailable", "busy", "502"],
)
def test_it_retries_a_read_on_transient_failures(failure):
    client, transport = make_client(failure(), failure(), ok({"batch": BATCH}))
    batch = client.get_settlement_batch("B_Y7T2LPVX")
    assert batch.id == "B_Y7T2LPVX"
    assert len(transport.sent) == 3
    assert len({s.payload["nonce"] for s in transport.sent}) == 3


def test_read_retries_back_off_exponentially_with_jitter_and_a_cap():
    sleeps = Sleeps()
    client, transport = make_client(
        reset(), max_attempts=7, backoff_base=0.5, backoff_cap=3.0, sleep=sleeps
    )
    with pytest.raises(e.ConnectionDroppedError):
        client.list_api_users()
    assert len(transport.sent) == 7
    assert len(sleeps) == 6
    ceilings = [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    for slept, ceiling in zip(sleeps, ceilings, strict=True):
        assert ceiling / 2 <= slept <= ceiling
    assert len(set(sleeps)) == len(sleeps)  # jittered, not a fixed ladder


def test_a_read_gives_up_after_max_attempts_and_raises_the_last_failure():
    client, transport = make_client(read_timeout(), max_attempts=3)
    with pytest.raises(e.ResponseTimeoutError) as caught:
        client.get_api_user("U")
    assert caught.value.outcome_unknown is True
    assert len(transport.sent) == 3


@pytest.mark.parametrize(
    "failure",
    [
        read_timeout,
        reset,
        lambda: fail("EGeneral:Internal error", status=500),
        lambda: fail("EGeneral:Internal error"),
        lambda: Reply(raw=b"<html>Bad gateway</html>", status=502),
        lambda: Reply(raw=b"{truncated"),
    ],
    ids=["timeout", "reset", "500", "internal-error-200", "502", "malformed"],
)
@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.settle_settlement_batch_asset("B_1", "BTC"),
        lambda c: c.create_settlement_batch(),
        lambda c: c.create_api_user_key("U"),
        lambda c: c.delete_api_user_key("U", "K"),
    ],
    ids=["settle", "create-batch", "create-key", "delete-key"],
)
def test_a_write_that_may_have_reached_kraken_is_never_sent_twice(failure, call):
    client, transport = make_client(failure(), ok(TRANSFER))
    with pytest.raises(e.OutcomeUnknownError) as caught:
        call(client)
    assert len(transport.sent) == 1
    error = caught.value
    assert error.outcome_unknown is True
    assert isinstance(error.__cause__, e.PrimeError)
    assert "the outcome is unknown; check with Kraken before trying again" in str(error)


def test_a_write_is_retried_when_the_connection_was_never_made():
    client, transport = make_client(refused(), requests.ConnectTimeout("slow"), ok(TRANSFER))
    result = client.settle_settlement_batch_asset("B_1", "BTC")
    assert result.transfer.id == "100"
    assert len(transport.sent) == 3


def test_a_write_that_never_connects_raises_connect_failed_not_unknown_outcome():
    client, transport = make_client(refused(), max_attempts=2)
    with pytest.raises(e.ConnectFailedError) as caught:
        client.create_api_user("A", "Viewer")
    assert caught.value.outcome_unknown is False
    assert len(transport.sent) == 2


def test_a_write_refused_as_unavailable_is_raised_as_is():
    client, transport = make_client(fail("EService:Unavailable"))
    with pytest.raises(e.ServiceUnavailableError) as caught:
        client.create_settlement_batch()
    assert caught.value.outcome_unknown is False
    assert len(transport.sent) == 1


def test_it_retries_a_write_refused_for_its_nonce_with_a_fresh_nonce_and_signature():
    client, transport = make_client(fail("EAPI:Invalid nonce"), ok(TRANSFER))
    result = client.settle_settlement_batch_asset("B_Y7T2LPVX", "BTC")
    assert result.transfer.status == "pending"
    first, second = transport.sent
    assert second.payload["nonce"] > first.payload["nonce"]
    assert second.headers["API-Sign"] != first.headers["API-Sign"]
    assert first.payload | {"nonce": 0} == second.payload | {"nonce": 0}


def test_it_gives_up_on_invalid_nonce_after_a_small_bound():
    client, transport = make_client(fail("EAPI:Invalid nonce"), max_nonce_retries=5)
    with pytest.raises(e.InvalidNonceError):
        client.create_api_user("A", "Viewer")
    assert len(transport.sent) == 6


def test_nonce_retries_and_transient_retries_have_separate_budgets():
    client, transport = make_client(
        fail("EAPI:Invalid nonce"),
        reset(),
        fail("EAPI:Invalid nonce"),
        reset(),
        ok({"data": []}),
        max_attempts=3,
    )
    assert client.list_api_users() == ()
    assert len(transport.sent) == 5


def test_a_temporary_lockout_is_not_retried():
    client, transport = make_client(fail("EGeneral:Temporary lockout"))
    with pytest.raises(e.TemporaryLockoutError):
        client.list_api_users()
    assert len(transport.sent) == 1


def test_clients_with_their_own_sources_on_one_key_never_send_a_lower_nonce():
    transport = FakeTransport(ok({"data": []}))
    session = requests.Session()
    session.mount(BASE, transport)
    ahead = PrimeClient(BASE, KEY, SECRET, session=session, nonce=Nonces(5000))
    behind = PrimeClient(BASE, KEY, SECRET, session=session, nonce=Nonces(1000))
    ahead.list_api_users()
    behind.list_api_users()
    ahead.list_api_users()
    assert [s.payload["nonce"] for s in transport.sent] == [5000, 5001, 5002]


def test_threads_sharing_a_client_send_strictly_increasing_nonces():
    seen: list[int] = []

    def record(sent: Sent) -> Reply:
        seen.append(sent.payload["nonce"])
        return ok({"data": []})

    client, _ = make_client(record, nonce=None)
    threads = [
        threading.Thread(target=lambda: [client.list_api_users() for _ in range(8)])
        for _ in range(16)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 128
    assert seen == sorted(seen)
    assert len(set(seen)) == 128


# --- real sockets: the classification holds for what urllib3 really raises -----------------


def _listener() -> socket.socket:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    return server


def _serve(server: socket.socket, handle: Callable[[socket.socket], None]) -> threading.Thread:
    def loop() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            handle(conn)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def _read_request(conn: socket.socket) -> None:
    conn.settimeout(2)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += conn.recv(65536)


def _real_client(url: str, **kwargs: Any) -> PrimeClient:
    kwargs.setdefault("sleep", Sleeps())
    return PrimeClient(url, KEY, SECRET, **kwargs)


def test_a_closed_port_is_connect_failed_for_real():
    server = _listener()
    port = server.getsockname()[1]
    server.close()
    client = _real_client(f"http://127.0.0.1:{port}", max_attempts=2)
    with pytest.raises(e.ConnectFailedError):
        client.settle_settlement_batch_asset("B_1", "BTC")


def test_a_reset_after_the_request_is_an_unknown_outcome_for_a_real_write():
    served = []

    def reset_after_reading(conn: socket.socket) -> None:
        _read_request(conn)
        served.append(1)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()

    server = _listener()
    _serve(server, reset_after_reading)
    try:
        client = _real_client(f"http://127.0.0.1:{server.getsockname()[1]}")
        with pytest.raises(e.OutcomeUnknownError) as caught:
            client.settle_settlement_batch_asset("B_1", "BTC")
        assert isinstance(caught.value.cause, e.ConnectionDroppedError)
        assert served == [1]
    finally:
        server.close()


def test_a_silent_server_is_a_response_timeout_for_real_and_a_read_is_retried():
    served = []
    held: list[socket.socket] = []

    def never_answer(conn: socket.socket) -> None:
        _read_request(conn)
        served.append(1)
        held.append(conn)

    server = _listener()
    _serve(server, never_answer)
    try:
        client = _real_client(
            f"http://127.0.0.1:{server.getsockname()[1]}", timeout=(1, 0.2), max_attempts=2
        )
        with pytest.raises(e.ResponseTimeoutError):
            client.list_api_users()
        assert len(served) == 2
        with pytest.raises(e.OutcomeUnknownError) as caught:
            client.create_settlement_batch()
        assert isinstance(caught.value.cause, e.ResponseTimeoutError)
        assert len(served) == 3
    finally:
        server.close()
        for conn in held:
            conn.close()


# --- logging, observer, repr ------------------------------------------------------------------


def test_it_logs_one_line_per_call_with_endpoint_attempts_duration_and_outcome(caplog):
    client, _ = make_client(reset(), ok({"data": []}), fail("EAPI:Invalid key"))
    with caplog.at_level(logging.DEBUG, logger="primeapi"):
        client.list_api_users()
        with pytest.raises(e.InvalidKeyError):
            client.get_api_user("U")
    records = [r for r in caplog.records if r.name == "primeapi"]
    assert len(records) == 2
    good, bad = records
    assert good.levelno == logging.INFO
    assert "ListPrimeApiUsers" in good.getMessage()
    assert "ok" in good.getMessage()
    assert "attempts=2" in good.getMessage()
    assert "duration_ms=" in good.getMessage()
    assert good.prime_attempts == 2
    assert bad.levelno == logging.WARNING
    assert "GetPrimeApiUser failed" in bad.getMessage()
    assert "InvalidKeyError" in bad.getMessage()
    assert "EAPI:Invalid key" in bad.getMessage()


def test_the_observer_hears_about_every_call():
    heard: list[tuple[str, bool, float, e.PrimeError | None]] = []
    client, _ = make_client(
        ok({"data": []}),
        fail("EGeneral:Permission denied"),
        observer=lambda *args: heard.append(args),
    )
    client.list_api_users()
    with pytest.raises(e.PermissionDeniedError):
        client.create_settlement_batch()
    (endpoint, success, duration, error), (endpoint2, success2, _, error2) = heard
    assert (endpoint, success, error) == ("ListPrimeApiUsers", True, None)
    assert duration >= 0
    assert (endpoint2, success2) == ("CreatePrimeSettlementBatch", False)
    assert isinstance(error2, e.PermissionDeniedError)


def test_a_failing_observer_does_not_break_the_call(caplog):
    def broken(*args: object) -> None:
        raise RuntimeError("observer bug")

    client, _ = make_client(ok({"data": []}), observer=broken)
    assert client.list_api_users() == ()
    assert "observer failed" in caplog.text


def test_the_observer_sees_an_unknown_outcome():
    heard = []
    client, _ = make_client(read_timeout(), observer=lambda *args: heard.append(args))
    with pytest.raises(e.OutcomeUnknownError):
        client.settle_settlement_batch_asset("B", "BTC")
    assert isinstance(heard[0][3], e.OutcomeUnknownError)


def test_its_repr_shows_the_base_url_and_a_masked_key_only():
    client, _ = make_client()
    text = repr(client)
    assert text == "PrimeClient(base_url='https://prime.test', api_key='PUBL…GHIJ')"
    assert KEY not in text
    assert client.api_key_hint == "PUBL…GHIJ"


def test_a_bad_secret_fails_at_construction_without_being_shown():
    bad = "not-base64-SECRET!!"
    with pytest.raises(ValueError) as caught:
        PrimeClient(BASE, KEY, bad)
    assert bad not in str(caught.value)
    assert bad not in repr(caught.value)


def test_a_bad_base_url_fails_at_construction():
    with pytest.raises(ValueError):
        PrimeClient("api.kraken.com", KEY, SECRET)


def test_it_closes_only_a_session_it_created():
    closed = []
    session = requests.Session()
    session.close = lambda: closed.append(1)  # type: ignore[method-assign]
    with PrimeClient(BASE, KEY, SECRET, session=session):
        pass
    assert closed == []


# --- nothing leaks the secret or a signature ------------------------------------------------


def _texts_of(error: BaseException) -> Iterator[str]:
    yield str(error)
    yield repr(error)
    yield repr(error.args)
    yield "".join(traceback.format_exception(error))
    cause = error.__cause__
    while cause is not None:
        yield str(cause)
        yield repr(cause)
        yield repr(getattr(cause, "args", ()))
        yield repr(vars(cause)) if hasattr(cause, "__dict__") else ""
        cause = cause.__cause__ or cause.__context__


FAILURES = [
    fail("EAPI:Invalid signature"),
    fail("EAPI:Invalid nonce"),
    fail("EGeneral:Invalid arguments:Unknown key"),
    fail("EService: Throttled: 4102444800"),
    fail("EGeneral:Internal error", status=500),
    Reply(raw=b"garbage"),
    Reply(raw=b"<html>", status=502),
    reset(),
    read_timeout(),
    refused(),
]


@pytest.mark.parametrize("failure", FAILURES)
def test_no_error_log_or_repr_contains_the_secret_or_a_signature(failure, caplog):
    client, transport = make_client(failure, max_attempts=2, max_nonce_retries=1)
    texts: list[str] = [repr(client), str(client), repr(vars(client))]
    with caplog.at_level(logging.DEBUG):
        for call in (
            lambda: client.list_api_users(),
            lambda: client.settle_settlement_batch_asset("B", "BTC"),
        ):
            with pytest.raises(e.PrimeError) as caught:
                call()
            texts.extend(_texts_of(caught.value))
    texts.append(caplog.text)
    texts.extend(record.getMessage() for record in caplog.records)
    signatures = [s.headers["API-Sign"] for s in transport.sent]
    assert signatures
    forbidden = [SECRET, SECRET_BYTES.decode(), "TOP-SECRET", *signatures]
    blob = "\n".join(texts)
    for needle in forbidden:
        assert needle not in blob


def test_an_issued_secret_never_reaches_the_log_or_the_result_repr(caplog):
    client, _ = make_client(ok(ISSUED))
    with caplog.at_level(logging.DEBUG):
        issued = client.create_api_user_key("2T0RXL9B8K5D6")
    assert issued.api_secret == ISSUED_SECRET
    assert ISSUED_SECRET not in caplog.text
    assert ISSUED_SECRET not in repr(issued)
    assert ISSUED_SECRET not in str(issued)


def test_a_malformed_issued_key_answer_does_not_echo_the_secret():
    broken = {**ISSUED, "user_id": 42}
    client, _ = make_client(ok(broken))
    with pytest.raises(e.OutcomeUnknownError) as caught:
        client.create_api_user_key("U")
    blob = "\n".join(_texts_of(caught.value))
    assert ISSUED_SECRET not in blob
