"""Hypothesis strategies for throwing arbitrary input at the users and keys forms."""

from __future__ import annotations

from urllib.parse import urlencode

from hypothesis import strategies as st

NASTY = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\r\n",
    "0.0.0.0/0",
    "::/0",
    "0::0/0",
    "10.0.0.1\nbogus",
    "192.0.2.1",
    "Viewer",
    "Trader",
    "Enabled",
    "Disabled",
    "on",
    "true",
    "\u202egnp.exe",
    "\U0001d54f" * 70,  # a letter outside the BMP
    "x" * 65,
    "<script>alert(1)</script>",
    "{{ 7*7 }}{% debug %}",
    "%s%n%x",
    "' OR 1=1 --",
    "\ufeff\u200b",
    "é" * 64,
]

# Text of any kind: unicode (no lone surrogates: they cannot be sent as UTF-8), NULs,
# control characters, and now and then something very long.
values = st.one_of(
    st.text(max_size=200),
    st.sampled_from(NASTY),
    st.integers(min_value=1_000, max_value=300_000).map(lambda n: "A" * n),
    st.lists(st.text(max_size=20), min_size=2, max_size=3),  # a repeated field
)

extra_names = st.one_of(
    st.text(
        alphabet=st.characters(whitelist_categories=("Ll", "Lu", "Nd")), min_size=1, max_size=12
    ),
    st.sampled_from(["csrfmiddlewaretoken", "id", "pk", "user", "actor", "secret", "é"]),
)


@st.composite
def form_data(draw, fields: tuple[str, ...]) -> dict:
    """Some of the form's fields (any value) and some fields it does not expect."""
    data = {}
    for name in fields:
        if draw(st.booleans()):
            data[name] = draw(values)
    for name in draw(st.lists(extra_names, max_size=3)):
        data.setdefault(name, draw(values))
    return data


def post(client, url: str, data: dict, *, htmx: bool, urlencoded: bool):
    """POST the data as a browser would: multipart or urlencoded, with or without htmx."""
    headers = {"HX-Request": "true"} if htmx else {}
    if urlencoded:
        return client.post(
            url,
            urlencode(data, doseq=True),
            content_type="application/x-www-form-urlencoded",
            headers=headers,
        )
    return client.post(url, data, headers=headers)
