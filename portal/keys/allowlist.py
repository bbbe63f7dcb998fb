"""Parse, normalise and check a key's IP allow-list as typed: one entry per line.

Pure functions (no Django), so they can be property-tested on their own.

Choices:
- An entry is an IPv4/IPv6 address or a CIDR block. A block with host bits set
  (`10.1.2.3/8`) is accepted and normalised to its network (`10.0.0.0/8`), and
  the person is told so. A block of one address (`/32`, `/128`) becomes the
  plain address, and an IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) becomes the
  IPv4 address. IPv6 zone ids (`fe80::1%eth0`) mean nothing to Kraken and are
  refused.
- Anything that lets every address in is refused: any `/0` (`0.0.0.0/0`,
  `::/0`, `0::0/0`, `1.2.3.4/0`), any IPv6 block covering all IPv4-mapped
  addresses (`::ffff:0:0/96` or wider), and entries that together cover the
  whole IPv4 or IPv6 space (`0.0.0.0/1` with `128.0.0.0/1`). An empty list is
  allowed only with an explicit confirmation (the form's job).
- At most MAX_ENTRIES entries after de-duplication: Kraken's (and the
  sandbox's) limit, docs/prime-choices.md.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

MAX_ENTRIES = 100
# Bad entries named in one error message; the rest are counted.
MAX_NAMED_ERRORS = 20
_SHOWN_CHARS = 60

_V4_ALL = ipaddress.ip_network("0.0.0.0/0")
_V6_ALL = ipaddress.ip_network("::/0")
_V4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ParsedAllowlist:
    """The normalised entries, one message per bad entry, and notes on what was changed."""

    entries: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class AllowlistDiff:
    """What saving `new` over `old` adds and removes."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    kept: tuple[str, ...] = field(default=())

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)


def shown(entry: str) -> str:
    """An entry as it may be quoted back: trimmed and cut short."""
    text = entry.strip()
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


def _address_part(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text.split("/", 1)[0])


def _normalise(text: str) -> tuple[str | None, str | None, Network | None]:
    """(normalised entry, note, network) or (None, error, None) for one non-blank entry."""
    if "%" in text:
        return None, f"“{shown(text)}” has an IPv6 zone id (%…), which Kraken cannot use.", None
    try:
        if "/" in text:
            network = ipaddress.ip_network(text, strict=False)
        else:
            address = ipaddress.ip_address(text)
            network = ipaddress.ip_network(address)
    except ValueError:
        return None, f"“{shown(text)}” is not an IPv4/IPv6 address or CIDR block.", None
    if network.prefixlen == 0:
        return None, f"“{shown(text)}” would allow every address; it is not accepted.", None
    if isinstance(network, ipaddress.IPv6Network) and network.supernet_of(_V4_MAPPED):
        return (
            None,
            f"“{shown(text)}” covers every IPv4 address (as IPv4-mapped IPv6); not accepted.",
            None,
        )
    note = None
    host_bits_set = network.network_address != _address_part(text)
    mapped = (
        network.network_address.ipv4_mapped if isinstance(network, ipaddress.IPv6Network) else None
    )
    if mapped is not None:
        prefix = network.prefixlen - 96
        network = ipaddress.ip_network(f"{mapped}/{prefix}", strict=False)
    if network.prefixlen == network.max_prefixlen:
        value = str(network.network_address)
    else:
        value = str(network)
    if host_bits_set:
        note = f"“{shown(text)}” has host bits set; saved as its network {value}."
    if note is None and value != text:
        note = f"“{shown(text)}” is saved as {value}."
    return value, note, network


def _covers_everything(networks: list[Network]) -> str | None:
    v4 = [n for n in networks if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in networks if isinstance(n, ipaddress.IPv6Network)]
    if v4 and list(ipaddress.collapse_addresses(v4)) == [_V4_ALL]:
        return "Together these entries cover every IPv4 address; that is not an allow-list."
    if v6 and list(ipaddress.collapse_addresses(v6)) == [_V6_ALL]:
        return "Together these entries cover every IPv6 address; that is not an allow-list."
    return None


def parse_allowlist(text: str) -> ParsedAllowlist:
    """Parse one entry per line; blank lines are ignored, duplicates dropped (first kept)."""
    entries: list[str] = []
    seen: set[str] = set()
    errors: list[str] = []
    bad = 0
    notes: list[str] = []
    networks: list[Network] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        value, message, network = _normalise(line)
        if value is None:
            bad += 1
            if len(errors) < MAX_NAMED_ERRORS:
                errors.append(message or "")
            continue
        if message and len(notes) < MAX_NAMED_ERRORS:
            notes.append(message)
        if value in seen:
            if len(notes) < MAX_NAMED_ERRORS:
                notes.append(f"{value} was listed more than once; kept once.")
            continue
        seen.add(value)
        entries.append(value)
        assert network is not None
        networks.append(network)
    if bad > len(errors):
        errors.append(f"…and {bad - len(errors)} more entries that are not addresses.")
    if len(entries) > MAX_ENTRIES:
        errors.append(
            f"{len(entries)} entries: a key's allow-list holds at most {MAX_ENTRIES}. "
            "Use CIDR blocks to cover ranges."
        )
    everything = _covers_everything(networks)
    if everything:
        errors.append(everything)
    return ParsedAllowlist(tuple(entries), tuple(errors), tuple(notes))


def diff_allowlist(
    old: list[str] | tuple[str, ...], new: list[str] | tuple[str, ...]
) -> AllowlistDiff:
    """Entries added and removed, in the order they appear."""
    old_set, new_set = set(old), set(new)
    return AllowlistDiff(
        added=tuple(e for e in new if e not in old_set),
        removed=tuple(e for e in old if e not in new_set),
        kept=tuple(e for e in new if e in old_set),
    )
