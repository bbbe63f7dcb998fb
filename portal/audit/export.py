"""Export the audit trail (CSV or JSON Lines) with a proof trailer, and verify such a file.

Layout of an export:

* CSV: a header row naming the columns (`chain.ROW_FIELDS`), one row per event in
  seq order, then one trailer row: `#proof`, followed by the proof as JSON.
* JSON Lines: one object per event in seq order (`before`, `after` and
  `prime_response` as JSON values), then one line `{"audit_export_proof": {...}}`.

Every row carries the event's `prev_hash` and `hash` and every hashed field,
exactly as stored (times as `YYYY-MM-DDTHH:MM:SS.ffffffZ`), so each row's hash can
be recomputed from the file alone. The proof holds the filter, the chain head
when the export was taken (rows are limited to seq <= head), the row count, the
first and last seq, a SHA-256 digest over the rows' `seq:hash` list, and an
HMAC of all of that keyed with the portal's SECRET_KEY.

What `verify_audit --export FILE` proves (see docs/audit.md):

1. Untouched rows: every row's content hashes to its `hash`.
2. Nothing removed, added or reordered: rows are in strictly increasing seq, and
   their `seq:hash` digest and count equal the proof's, whose HMAC only the
   portal (holder of SECRET_KEY) can produce.
3. Unfiltered exports are the chain itself: seq is gapless, each row's
   `prev_hash` is the previous row's `hash`, the first row links to the genesis
   hash, and the last row is the head recorded in the proof -- this holds even
   without the database or the key.
4. Against the database (default): the proof's head is an event of the live
   chain, the live chain verifies, each row's hash equals the stored event's,
   and re-running the filter over seq <= head returns exactly the exported seqs
   (complete for the filter).
5. With `--expect-head SEQ:HASH`: the export (or the live chain) agrees with a
   head stored outside the database.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import ExpressionWrapper, F, TextField
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from portal.audit.chain import (
    CANONICAL_VERSION,
    GENESIS_HASH,
    HASH_INDEX,
    ROW_FIELDS,
    canonical_bytes,
    canonical_text,
    iso_utc,
    json_text,
    micros,
    parse_iso_utc,
    well_formed,
)
from portal.audit.filters import AuditFilter
from portal.audit.selectors import audit_event_filter
from portal.audit.verify import read_head, read_snapshot, verify_chain

FORMATS = ("csv", "jsonl")
PROOF_FORMAT = "portal-audit-export/1"
PROOF_KEY = "audit_export_proof"
CSV_PROOF_MARK = "#proof"
_HMAC_SALT = "portal.audit.export.proof"
_JSON_COLUMNS = ("before", "after", "prime_response")
_SCALAR_COLUMNS = tuple(name for name in ROW_FIELDS if name not in _JSON_COLUMNS)
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}


def _proof_hmac(proof: dict[str, Any], secret: str | bytes | None = None) -> str:
    body = json.dumps(
        {k: v for k, v in proof.items() if k != "hmac"}, sort_keys=True, separators=(",", ":")
    )
    return salted_hmac(_HMAC_SALT, body, secret=secret, algorithm="sha256").hexdigest()


def _db_rows(filters: AuditFilter, until_seq: int, chunk_size: int) -> Iterator[tuple]:
    """Rows in `ROW_FIELDS` order, JSON fields as their stored text, ascending seq."""
    raw = {
        f"{name}_text": ExpressionWrapper(F(name), output_field=TextField())
        for name in _JSON_COLUMNS
    }
    names = [f"{n}_text" if n in _JSON_COLUMNS else n for n in ROW_FIELDS]
    qs = (
        audit_event_filter(filters=filters, until_seq=until_seq)
        .annotate(**raw)
        .order_by("seq")
        .values_list(*names)
    )
    return qs.iterator(chunk_size=chunk_size)


class _Writer:
    """Turns rows into text lines of one format."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.buffer = io.StringIO()
        self.csv = csv.writer(self.buffer, lineterminator="\n")

    def _take(self) -> str:
        text = self.buffer.getvalue()
        self.buffer.seek(0)
        self.buffer.truncate()
        return text

    def header(self) -> str:
        if self.fmt == "csv":
            self.csv.writerow(ROW_FIELDS)
            return self._take()
        return ""

    def row(self, row: tuple) -> str:
        when = iso_utc(row[1])
        if self.fmt == "csv":
            cells = list(row)
            cells[1] = when
            self.csv.writerow(["" if c is None else c for c in cells])
            return self._take()
        scalars = dict(zip(_SCALAR_COLUMNS, (*row[:14], row[HASH_INDEX]), strict=True))
        scalars["occurred_at"] = when
        head = json.dumps(scalars, ensure_ascii=False, separators=(",", ":"))
        tail = ",".join(
            f'"{name}":{row[14 + i] if row[14 + i] is not None else "null"}'
            for i, name in enumerate(_JSON_COLUMNS)
        )
        return f"{head[:-1]},{tail}}}\n"

    def trailer(self, proof: dict[str, Any]) -> str:
        body = json.dumps(proof, sort_keys=True, separators=(",", ":"))
        if self.fmt == "csv":
            self.csv.writerow([CSV_PROOF_MARK, body])
            return self._take()
        return json.dumps({PROOF_KEY: proof}, sort_keys=True, separators=(",", ":")) + "\n"


def export_lines(
    *,
    filters: AuditFilter,
    fmt: str,
    exported_by: str,
    chunk_size: int = 2_000,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[str]:
    """The export as text pieces, streamed: constant memory whatever the number of rows."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}")
    writer = _Writer(fmt)
    with read_snapshot():
        head = read_head() or (0, GENESIS_HASH)
        yield writer.header()
        digest = hashlib.sha256()
        count, first, last = 0, None, None
        for row in _db_rows(filters, head[0], chunk_size):
            digest.update(f"{row[0]}:{row[HASH_INDEX]}\n".encode())
            if first is None:
                first = row[0]
            last = row[0]
            count += 1
            yield writer.row(row)
            if on_progress and count % 1000 == 0:
                on_progress(1000)
        if on_progress and count % 1000:
            on_progress(count % 1000)
    proof = {
        "format": PROOF_FORMAT,
        "file_format": fmt,
        "canonical": CANONICAL_VERSION,
        "exported_at": iso_utc(timezone.now()),
        "exported_by": exported_by,
        "filter": filters.as_params(),
        "contiguous": filters.is_empty(),
        "head": {"seq": head[0], "hash": head[1]},
        "rows": count,
        "first_seq": first,
        "last_seq": last,
        "rows_digest": digest.hexdigest(),
    }
    proof["hmac"] = _proof_hmac(proof)
    yield writer.trailer(proof)


# --- verification --------------------------------------------------------------------------


@dataclass
class ExportReport:
    rows: int = 0
    proof: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)
    checked_database: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        proof = self.proof or {}
        scope = "the whole chain" if proof.get("contiguous") else f"filter {proof.get('filter')}"
        where = "the file and the database" if self.checked_database else "the file alone"
        return (
            f"{self.rows:,} rows ({scope}, seq {proof.get('first_seq')}..{proof.get('last_seq')}, "
            f"head #{(proof.get('head') or {}).get('seq')}) proven untouched and complete "
            f"against {where}"
        )


class _ExportChecker:
    def __init__(self, report: ExportReport, limit: int = 20) -> None:
        self.report = report
        self.limit = limit

    def problem(self, text: str) -> None:
        if len(self.report.problems) < self.limit:
            self.report.problems.append(text)


def _detect_format(path: str) -> str:
    lower = path.lower()
    if lower.endswith(".csv"):
        return "csv"
    if lower.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    with open(path, encoding="utf-8") as handle:
        return "jsonl" if handle.read(1) == "{" else "csv"


def _last_line(path: str) -> str:
    """The file's last non-empty line (the proof), read from the end."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        block = min(size, 1 << 16)
        while True:
            handle.seek(size - block)
            data = handle.read(block).rstrip(b"\r\n")
            if b"\n" in data or block == size:
                return data.rsplit(b"\n", 1)[-1].decode("utf-8", "replace")
            block = min(size, block * 4)


def _read_proof(path: str, fmt: str) -> dict[str, Any] | None:
    line = _last_line(path)
    try:
        if fmt == "csv":
            cells = next(csv.reader([line]))
            if len(cells) != 2 or cells[0] != CSV_PROOF_MARK:
                return None
            return json.loads(cells[1])
        found = json.loads(line)
        return found.get(PROOF_KEY) if isinstance(found, dict) else None
    except (ValueError, StopIteration):
        return None


def _file_rows(path: str, fmt: str, checker: _ExportChecker) -> Iterator[tuple[int, tuple]]:
    """(row number, row in ROW_FIELDS layout with occurred_at as microseconds)."""
    with open(path, encoding="utf-8", newline="") as handle:
        if fmt == "csv":
            reader = csv.reader(handle)
            header = next(reader, None)
            if header != list(ROW_FIELDS):
                checker.problem("the CSV header is not the export's column list")
                return
            for number, cells in enumerate(reader, start=1):
                if cells and cells[0] == CSV_PROOF_MARK:
                    return
                try:
                    yield number, _csv_row(cells)
                except (ValueError, TypeError) as exc:
                    checker.problem(f"row {number}: unreadable ({exc})")
            return
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError as exc:
                checker.problem(f"row {number}: not JSON ({exc})")
                continue
            if PROOF_KEY in data:
                return
            try:
                yield number, _jsonl_row(data)
            except (KeyError, ValueError, TypeError) as exc:
                checker.problem(f"row {number}: unreadable ({exc})")


def _csv_row(cells: list[str]) -> tuple:
    if len(cells) != len(ROW_FIELDS):
        raise ValueError(f"{len(cells)} cells, expected {len(ROW_FIELDS)}")
    row: list[Any] = list(cells)
    row[0] = int(cells[0])
    row[1] = micros(parse_iso_utc(cells[1]))
    row[2] = int(cells[2]) if cells[2] else None
    for index in (14, 15, 16):
        row[index] = cells[index] or None
    return tuple(row)


def _jsonl_row(data: dict[str, Any]) -> tuple:
    row: list[Any] = [data[name] for name in ROW_FIELDS]
    row[0] = int(row[0])
    row[1] = micros(parse_iso_utc(row[1]))
    for index in (14, 15, 16):
        row[index] = None if row[index] is None else json_text(row[index])
    return tuple(row)


def verify_export(
    path: str,
    *,
    against_database: bool = True,
    expect_head: tuple[int, str] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ExportReport:
    """Prove an export file untouched and complete (see the module docstring)."""
    with read_snapshot() if against_database else contextlib.nullcontext():
        return _verify_export(path, against_database, expect_head, on_progress)


def _verify_export(
    path: str,
    against_database: bool,
    expect_head: tuple[int, str] | None,
    on_progress: Callable[[int], None] | None,
) -> ExportReport:
    report = ExportReport()
    checker = _ExportChecker(report)
    fmt = _detect_format(path)
    proof = _read_proof(path, fmt)
    if proof is None:
        checker.problem("no proof trailer at the end of the file (export cut short?)")
        return report
    report.proof = proof
    if not _hmac_ok(proof):
        checker.problem(
            "the proof trailer was altered (its HMAC does not match this portal's SECRET_KEY)"
        )
    if proof.get("format") != PROOF_FORMAT or proof.get("canonical") != CANONICAL_VERSION:
        checker.problem(f"unknown export format {proof.get('format')!r}")
        return report
    try:
        filters = AuditFilter.from_params(proof.get("filter") or {})
        head_seq, head_hash = int(proof["head"]["seq"]), str(proof["head"]["hash"])
    except (KeyError, TypeError, ValueError) as exc:
        checker.problem(f"the proof trailer is unreadable ({exc})")
        return report
    contiguous = bool(proof.get("contiguous"))
    database = _database_rows(filters, head_seq) if against_database else None
    digest = hashlib.sha256()
    prev_seq, prev_hash, first_seq = None, None, None
    for number, row in _file_rows(path, fmt, checker):
        seq, stored = row[0], row[HASH_INDEX]
        where = f"row {number} (seq {seq})"
        text = canonical_text(row)
        if hashlib.sha256(canonical_bytes(text)).hexdigest() != stored:
            checker.problem(f"{where}: content changed (its hash does not match its fields)")
        elif not well_formed(text):
            checker.problem(f"{where}: a field contains a NUL character")
        if prev_seq is not None and seq <= prev_seq:
            checker.problem(f"{where}: out of order (comes after seq {prev_seq})")
        elif contiguous:
            expected = 1 if prev_seq is None else prev_seq + 1
            if seq != expected:
                checker.problem(
                    f"{where}: gap before it, seq {expected}..{seq - 1} missing (rows removed)"
                )
            elif row[13] != (GENESIS_HASH if prev_seq is None else prev_hash):
                checker.problem(f"{where}: prev_hash does not link to the row before it")
        if seq > head_seq:
            checker.problem(f"{where}: beyond the head #{head_seq} recorded in the proof")
        if expect_head and contiguous and seq == expect_head[0] and stored != expect_head[1]:
            checker.problem(f"{where}: differs from the external anchor {expect_head[0]}")
        if database is not None:
            database.check(number, seq, stored, checker)
        digest.update(f"{seq}:{stored}\n".encode())
        if first_seq is None:
            first_seq = seq
        prev_seq, prev_hash = seq, stored
        report.rows += 1
        if on_progress:
            on_progress(1)
    if database is not None:
        database.finish(checker)
    if report.rows != proof.get("rows") or digest.hexdigest() != proof.get("rows_digest"):
        checker.problem(
            f"the rows do not match the proof ({report.rows} rows in the file, "
            f"{proof.get('rows')} exported): rows removed, added or reordered"
        )
    if (first_seq, prev_seq) != (proof.get("first_seq"), proof.get("last_seq")):
        checker.problem(
            f"the file spans seq {first_seq}..{prev_seq} but the proof says "
            f"{proof.get('first_seq')}..{proof.get('last_seq')}"
        )
    if contiguous and report.rows and (prev_seq, prev_hash) != (head_seq, head_hash):
        checker.problem(f"the last row is not the head #{head_seq} recorded in the proof")
    if expect_head and expect_head[0] == head_seq and expect_head[1] != head_hash:
        checker.problem("the proof's head differs from the external anchor")
    if against_database:
        report.checked_database = True
        _check_live_chain(head_seq, head_hash, expect_head, checker)
    return report


def _hmac_ok(proof: dict[str, Any]) -> bool:
    given = str(proof.get("hmac", ""))
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return any(constant_time_compare(given, _proof_hmac(proof, secret=key)) for key in keys)


class _database_rows:
    """Walks the database's answer for the proof's filter alongside the file (merge join)."""

    def __init__(self, filters: AuditFilter, head_seq: int) -> None:
        qs = (
            audit_event_filter(filters=filters, until_seq=head_seq)
            .order_by("seq")
            .values_list("seq", "hash")
        )
        self.rows = qs.iterator(chunk_size=5_000)
        self.current = next(self.rows, None)

    def check(self, number: int, seq: int, stored: str, checker: _ExportChecker) -> None:
        while self.current is not None and self.current[0] < seq:
            checker.problem(
                f"seq {self.current[0]} matches the filter in the database but is missing "
                f"from the export (before row {number})"
            )
            self.current = next(self.rows, None)
        if self.current is None or self.current[0] != seq:
            checker.problem(
                f"row {number} (seq {seq}): not an event matching this filter in the database"
            )
            return
        if self.current[1] != stored:
            checker.problem(f"row {number} (seq {seq}): hash differs from the stored event's")
        self.current = next(self.rows, None)

    def finish(self, checker: _ExportChecker) -> None:
        while self.current is not None:
            checker.problem(
                f"seq {self.current[0]} matches the filter in the database but is missing "
                "from the end of the export"
            )
            self.current = next(self.rows, None)


def _check_live_chain(
    head_seq: int,
    head_hash: str,
    expect_head: tuple[int, str] | None,
    checker: _ExportChecker,
) -> None:
    from portal.audit.models import AuditEvent

    if head_seq:
        stored = AuditEvent.objects.filter(seq=head_seq).values_list("hash", flat=True).first()
        if stored != head_hash:
            checker.problem(
                f"the proof's head #{head_seq} is not an event of the live chain "
                "(the export was made from another database, or the chain was rewritten)"
            )
    chain = verify_chain(expect_head=expect_head)
    for problem in chain.problems:
        checker.problem(f"live chain: {problem}")
