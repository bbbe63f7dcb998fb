"""The allow-list parser: examples, then properties over generated input (hypothesis)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.keys.allowlist import MAX_ENTRIES, MAX_NAMED_ERRORS, diff_allowlist, parse_allowlist
from primeapi.sandbox.state import normalise_ip_entry


@pytest.mark.parametrize(
    ("typed", "entries"),
    [
        ("192.0.2.1", ["192.0.2.1"]),
        ("  192.0.2.1  \n\n", ["192.0.2.1"]),
        ("10.1.2.3/8", ["10.0.0.0/8"]),
        ("192.0.2.1/32", ["192.0.2.1"]),
        ("2001:DB8::1", ["2001:db8::1"]),
        ("2001:db8::1/64", ["2001:db8::/64"]),
        ("::ffff:192.0.2.1", ["192.0.2.1"]),
        ("192.0.2.1\n192.0.2.1/32\n::ffff:c000:201", ["192.0.2.1"]),
        ("10.0.0.0/8\r\n10.0.0.0/8\r\n172.16.0.0/12", ["10.0.0.0/8", "172.16.0.0/12"]),
        ("0.0.0.0/1", ["0.0.0.0/1"]),  # half the internet is foolish, but not "everything"
    ],
)
def test_entries_are_normalised_and_deduplicated(typed, entries):
    parsed = parse_allowlist(typed)
    assert parsed.ok, parsed.errors
    assert list(parsed.entries) == entries


def test_host_bits_are_accepted_and_the_person_is_told():
    parsed = parse_allowlist("10.1.2.3/8")
    assert parsed.notes == ("“10.1.2.3/8” has host bits set; saved as its network 10.0.0.0/8.",)


@pytest.mark.parametrize(
    "everything",
    [
        "0.0.0.0/0",
        "::/0",
        "0::0/0",
        "0:0:0:0:0:0:0:0/0",
        "1.2.3.4/0",
        "2001:db8::/0",
        "::ffff:0:0/96",
        "::/64",
        "0.0.0.0/1\n128.0.0.0/1",
        "::/1\n8000::/1",
    ],
)
def test_anything_that_lets_every_address_in_is_refused(everything):
    parsed = parse_allowlist(everything)
    assert not parsed.ok
    assert any("every" in error for error in parsed.errors)


def test_each_bad_entry_is_named():
    parsed = parse_allowlist("192.0.2.1\nexample.com\n300.1.1.1\n10.0.0.0/33\nfe80::1%eth0")
    assert list(parsed.entries) == ["192.0.2.1"]
    joined = " ".join(parsed.errors)
    for bad in ("example.com", "300.1.1.1", "10.0.0.0/33", "fe80::1%eth0"):
        assert f"“{bad}”" in joined


def test_many_bad_entries_are_counted_not_all_listed():
    parsed = parse_allowlist("\n".join(f"bad{i}" for i in range(50)))
    assert len(parsed.errors) == 21
    assert parsed.errors[-1] == "…and 30 more entries that are not addresses."


def test_there_is_an_upper_bound_on_entries():
    ok = parse_allowlist("\n".join(f"10.0.0.{i}" for i in range(MAX_ENTRIES)))
    assert ok.ok and len(ok.entries) == MAX_ENTRIES
    too_many = parse_allowlist("\n".join(f"10.0.{i // 200}.{i % 200}" for i in range(101)))
    assert not too_many.ok
    assert "at most 100" in too_many.errors[-1]


def test_the_diff_names_what_is_added_and_removed():
    diff = diff_allowlist(["10.0.0.1", "10.0.0.2"], ["10.0.0.2", "10.0.0.3"])
    assert (diff.added, diff.removed, diff.kept) == (("10.0.0.3",), ("10.0.0.1",), ("10.0.0.2",))
    assert diff.changed
    assert not diff_allowlist(["a"], ["a"]).changed


# --- properties ------------------------------------------------------------------------------

addresses = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).filter(
    lambda a: not (a.version == 6 and a.ipv4_mapped is not None)
)


@st.composite
def networks(draw):
    address = draw(addresses)
    prefix = draw(st.integers(min_value=1, max_value=address.max_prefixlen))
    return ipaddress.ip_network(f"{address}/{prefix}", strict=False)


entries_text = st.lists(st.one_of(addresses.map(str), networks().map(str)), min_size=0, max_size=30)


@given(st.text(max_size=2000))
def test_any_text_parses_without_raising(text):
    parsed = parse_allowlist(text)
    assert len(parsed.entries) == len(set(parsed.entries))
    assert len(parsed.errors) <= 23


@given(entries_text)
def test_output_is_idempotent_and_what_the_sandbox_keeps(entries):
    parsed = parse_allowlist("\n".join(entries))
    if not parsed.ok:
        # Only the "together everything" rule can refuse well-formed entries.
        assert all("every" in e for e in parsed.errors)
        return
    again = parse_allowlist("\n".join(parsed.entries))
    assert again.entries == parsed.entries and again.ok
    # Kraken's side (the sandbox) stores each entry exactly as the portal sends it.
    assert [normalise_ip_entry(e) for e in parsed.entries] == list(parsed.entries)
    # Nothing in the list lets every address in.
    for entry in parsed.entries:
        assert ipaddress.ip_network(entry, strict=False).prefixlen > 0


@given(entries_text)
def test_every_typed_address_is_covered_by_the_saved_list(entries):
    parsed = parse_allowlist("\n".join(entries))
    if not parsed.ok:
        return
    saved = [ipaddress.ip_network(e, strict=False) for e in parsed.entries]
    for typed in entries:
        network = ipaddress.ip_network(typed, strict=False)
        assert any(network.version == s.version and network.subnet_of(s) for s in saved), typed


@given(st.lists(st.one_of(st.text(max_size=40), st.just("0")), max_size=30))
def test_each_bad_line_is_named_or_counted(lines):
    parsed = parse_allowlist("\n".join(lines))
    clean_lines = [line.strip() for line in "\n".join(lines).splitlines() if line.strip()]
    bad = 0
    for line in clean_lines:
        try:
            if "%" in line:
                raise ValueError
            ipaddress.ip_network(line, strict=False)
        except ValueError:
            bad += 1
    named = [e for e in parsed.errors if "is not an IPv4/IPv6" in e or "zone id" in e]
    assert len(named) == min(bad, MAX_NAMED_ERRORS)
    if bad > MAX_NAMED_ERRORS:
        assert f"…and {bad - MAX_NAMED_ERRORS} more" in parsed.errors[MAX_NAMED_ERRORS]
