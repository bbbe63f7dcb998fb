import pytest

from primeapi.signing import InvalidSecretError, sign, verify

SECRET = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
NONCE = 1616492376594


def test_it_matches_the_published_form_body_vector():
    body = "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
    assert (
        sign(secret=SECRET, url_path="/0/private/AddOrder", nonce=NONCE, body=body)
        == "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
    )


def test_it_matches_the_published_compact_json_vector():
    assert (
        sign(
            secret=SECRET,
            url_path="/0/private/GetCustodyTask?id=TGWOJ4JQPOTZT2",
            nonce=NONCE,
            body=b'{"nonce":1616492376594}',
        )
        == "2rM09q8HG7LvjivBitQUybwZ/DSeO8+i0U/at/wclH2Jma6gMaE/0Nw9dyLR+ykMd5eWCngSL4K58i6uJzXDCw=="
    )


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        (
            "/0/private/ListPrimeApiUserKeys",
            '{"nonce":1616492376594,"user_id":"2T0RXL9B8K5D6"}',
            "s00Io6+kbAPuXdf7KzWXFJ5chhMUZ1ZaMoPErjs7hNK4A627qn2KzZ3s1slpwAI7RTzgH8T6o0uYKPSgkvgpfQ==",
        ),
        (
            "/0/private/ListPrimeApiUserKeys",
            '{"nonce": 1616492376594, "user_id": "2T0RXL9B8K5D6"}',
            "uXl7DriVk3qmGk2AwmZSpdIR51v4Rx7moQbmFGFr4TMAkaUlS4+p15guruY/rMyrJcPTOx+FwroJVxPf9tQ6TQ==",
        ),
        (
            "/0/private/ListPrimeApiUsers",
            '{"nonce": 1616492376594}',
            "/VD0hWofSTNus2obyz9L9ntsfPMVWobNu9VyDqzrGsBFvjgHMhAdhils+pr3ma/SsF6G0ag4pIxoAPMgLGatOw==",
        ),
    ],
)
def test_it_matches_the_derived_prime_vectors(path, body, expected):
    assert sign(secret=SECRET, url_path=path, nonce=NONCE, body=body) == expected


def test_verify_accepts_the_right_signature_and_refuses_any_change():
    body = b'{"nonce":1616492376594}'
    good = sign(secret=SECRET, url_path="/0/private/ListPrimeApiUsers", nonce=NONCE, body=body)
    assert verify(
        secret=SECRET,
        url_path="/0/private/ListPrimeApiUsers",
        nonce=NONCE,
        body=body,
        signature=good,
    )
    assert not verify(
        secret=SECRET,
        url_path="/0/private/ListPrimeApiUsers",
        nonce=NONCE,
        body=b'{"nonce": 1616492376594}',
        signature=good,
    )
    assert not verify(
        secret=SECRET, url_path="/0/private/GetPrimeApiUser", nonce=NONCE, body=body, signature=good
    )
    assert not verify(
        secret=SECRET,
        url_path="/0/private/ListPrimeApiUsers",
        nonce=NONCE,
        body=body,
        signature="not base64!",
    )


def test_a_bad_secret_is_named_without_being_shown():
    bad = "6xq8p1mvk9r3n7swt2l5cj4eaydhzbf"
    with pytest.raises(InvalidSecretError) as excinfo:
        sign(secret=bad, url_path="/0/private/ListPrimeApiUsers", nonce=1, body="{}")
    assert "base64" in str(excinfo.value)
    assert bad not in str(excinfo.value)
    assert bad not in repr(excinfo.value)


def test_a_signer_agrees_with_sign_and_hides_its_secret():
    from primeapi.signing import Signer

    signer = Signer(SECRET)
    for path, body in (
        (
            "/0/private/AddOrder",
            "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25",
        ),
        ("/0/private/GetCustodyTask?id=TGWOJ4JQPOTZT2", b'{"nonce":1616492376594}'),
    ):
        # Twice: the keyed HMAC is reused and must not carry state between calls.
        for _ in range(2):
            assert signer.sign(url_path=path, nonce=NONCE, body=body) == sign(
                secret=SECRET, url_path=path, nonce=NONCE, body=body
            )
    assert SECRET not in repr(signer)
    with pytest.raises(InvalidSecretError):
        Signer("6xq8p1mvk9r3n7swt2l5cj4eaydhzbf").sign(url_path="/x", nonce=1, body="{}")
