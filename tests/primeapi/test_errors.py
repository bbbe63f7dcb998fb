import pytest

from primeapi import errors as e
from primeapi.errors import error_from_strings


@pytest.mark.parametrize(
    ("text", "cls"),
    [
        ("EAPI:Invalid key", e.InvalidKeyError),
        ("EAPI:Invalid signature", e.InvalidSignatureError),
        ("EAPI:Invalid nonce", e.InvalidNonceError),
        ("EGeneral:Permission denied", e.PermissionDeniedError),
        ("EGeneral:Invalid arguments", e.InvalidArgumentsError),
        ("EGeneral:Invalid arguments:Unknown user", e.InvalidArgumentsError),
        ("EAPI:Rate limit exceeded", e.RateLimitedError),
        ("EService: Throttled: 1700000000", e.RateLimitedError),
        ("EService:Throttled:1700000000", e.RateLimitedError),
        ("EGeneral:Temporary lockout", e.TemporaryLockoutError),
        ("EService:Unavailable", e.ServiceUnavailableError),
        ("EService:Busy", e.ServiceUnavailableError),
        ("EGeneral:Internal error", e.ServiceUnavailableError),
        ("EAPI:Feature disabled", e.FeatureDisabledError),
    ],
)
def test_it_maps_each_documented_string_to_its_class(text, cls):
    error = error_from_strings([text], http_status=200, endpoint="ListPrimeApiUsers")
    assert type(error) is cls
    assert isinstance(error, e.PrimeAPIError)
    assert isinstance(error, e.PrimeError)
    assert error.errors == (text,)
    assert error.http_status == 200
    assert error.endpoint == "ListPrimeApiUsers"
    assert text in str(error)
    assert "ListPrimeApiUsers" in str(error)


def test_an_unknown_string_raises_the_base_api_error_carrying_the_strings():
    error = error_from_strings(["EQuery:Unknown asset pair", "EFoo:Bar"])
    assert type(error) is e.PrimeAPIError
    assert error.errors == ("EQuery:Unknown asset pair", "EFoo:Bar")
    assert "EQuery:Unknown asset pair" in str(error)
    assert error.outcome_unknown is False


def test_warnings_alone_do_not_raise():
    assert error_from_strings(["WGeneral:Something odd"]) is None
    assert error_from_strings([]) is None


def test_an_error_next_to_a_warning_still_raises_and_keeps_both_strings():
    error = error_from_strings(["WGeneral:Odd", "EAPI:Invalid key"])
    assert type(error) is e.InvalidKeyError
    assert error.errors == ("WGeneral:Odd", "EAPI:Invalid key")


def test_the_first_known_error_picks_the_class():
    error = error_from_strings(["EFoo:Unknown", "EGeneral:Permission denied"])
    assert type(error) is e.PermissionDeniedError


def test_invalid_arguments_exposes_the_detail_with_or_without_one():
    with_detail = error_from_strings(["EGeneral:Invalid arguments:Batch not confirmed"])
    without = error_from_strings(["EGeneral:Invalid arguments"])
    assert with_detail.detail == "Batch not confirmed"
    assert without.detail is None


def test_a_detail_keeps_its_own_colons():
    error = error_from_strings(["EGeneral:Invalid arguments:name: too long"])
    assert error.detail == "name: too long"


def test_throttled_gives_seconds_until_the_timestamp():
    error = error_from_strings(["EService: Throttled: 1700000030"], now=1700000000.0)
    assert error.retry_after == pytest.approx(30.0)


def test_throttled_in_the_past_means_retry_now():
    error = error_from_strings(["EService: Throttled: 1600000000"], now=1700000000.0)
    assert error.retry_after == 0.0


def test_rate_limit_exceeded_has_no_known_retry_time():
    error = error_from_strings(["EAPI:Rate limit exceeded"])
    assert error.retry_after is None


def test_matching_ignores_case_and_spaces_around_colons():
    assert type(error_from_strings(["eapi : invalid NONCE"])) is e.InvalidNonceError


def test_a_longer_word_does_not_match_a_shorter_prefix():
    assert type(error_from_strings(["EAPI:Invalid keyring"])) is e.PrimeAPIError


@pytest.mark.parametrize(
    ("text", "status", "unknown"),
    [
        ("EGeneral:Internal error", 200, True),
        ("EGeneral:Internal error", 500, True),
        ("EService:Unavailable", 200, False),
        ("EService:Unavailable", 503, True),
        ("EService:Busy", 200, False),
        ("EGeneral:Invalid arguments", 500, False),
        ("EFoo:Unheard of", 500, True),
        ("EFoo:Unheard of", 200, False),
        ("EAPI:Invalid nonce", 200, False),
    ],
)
def test_outcome_unknown_is_set_only_when_kraken_may_have_acted(text, status, unknown):
    assert error_from_strings([text], http_status=status).outcome_unknown is unknown


@pytest.mark.parametrize(
    ("cls", "unknown"),
    [
        (e.ConnectFailedError, False),
        (e.ResponseTimeoutError, True),
        (e.ConnectionDroppedError, True),
        (e.MalformedResponseError, True),
        (e.UnexpectedStatusError, True),
    ],
)
def test_transport_errors_say_whether_the_request_may_have_executed(cls, unknown):
    error = cls("X: failed", endpoint="X", http_status=None)
    assert isinstance(error, e.TransportError)
    assert error.outcome_unknown is unknown
    assert error.errors == ()


def test_unexpected_status_keeps_the_http_status():
    error = e.UnexpectedStatusError("X: HTTP 502", http_status=502, endpoint="X")
    assert error.http_status == 502


def test_outcome_unknown_names_the_endpoint_chains_the_cause_and_tells_what_to_do():
    cause = e.ResponseTimeoutError("no answer", endpoint="SettlePrimeSettlementBatchAsset")
    error = e.OutcomeUnknownError(cause)
    assert isinstance(error, e.PrimeError)
    assert not isinstance(error, e.TransportError)
    assert error.__cause__ is cause
    assert error.cause is cause
    assert error.outcome_unknown is True
    assert error.endpoint == "SettlePrimeSettlementBatchAsset"
    assert "the outcome is unknown; check with Kraken before trying again" in str(error)
    assert "ResponseTimeoutError" in str(error)


def test_outcome_unknown_carries_kraken_strings_and_status_from_its_cause():
    cause = error_from_strings(["EGeneral:Internal error"], http_status=500, endpoint="X")
    error = e.OutcomeUnknownError(cause)
    assert error.errors == ("EGeneral:Internal error",)
    assert error.http_status == 500


def test_args_hold_only_the_message():
    error = error_from_strings(["EAPI:Invalid key"], endpoint="GetPrimeApiUser")
    assert error.args == ("GetPrimeApiUser: EAPI:Invalid key",)
    assert repr(error) == "InvalidKeyError('GetPrimeApiUser: EAPI:Invalid key')"


def test_a_non_200_status_shows_in_the_message():
    error = error_from_strings(["EGeneral:Internal error"], http_status=500, endpoint="X")
    assert str(error) == "X: EGeneral:Internal error (HTTP 500)"


def test_the_tree_in_the_docstring_names_every_public_class():
    for name in e.__all__:
        obj = getattr(e, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert name in e.__doc__


def test_every_error_survives_pickling_with_its_attributes():
    import pickle

    cases = [
        error_from_strings(["EGeneral:Invalid arguments:Unknown batch"], endpoint="X"),
        error_from_strings(["EService: Throttled: 1700000030"], now=1700000000.0),
        e.UnexpectedStatusError("X: HTTP 502", http_status=502, endpoint="X"),
        e.OutcomeUnknownError(e.ConnectionDroppedError("X: reset", endpoint="X")),
    ]
    for error in cases:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert str(copy) == str(error)
        assert copy.errors == error.errors
        assert copy.http_status == error.http_status
        assert copy.endpoint == error.endpoint
        assert copy.outcome_unknown == error.outcome_unknown
    assert pickle.loads(pickle.dumps(cases[0])).detail == "Unknown batch"
    assert pickle.loads(pickle.dumps(cases[1])).retry_after == pytest.approx(30.0)
