"""Prove the audit chain: every event's hash, every link, the gapless seq, and the head.

Rows are streamed straight from the database cursor (no model instances) in the
`chain.ROW_FIELDS` layout, so a million events verify in a few seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from django.db import connection, transaction
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg.pq import Format

from portal.audit.chain import CANONICAL_FORMAT, EPOCH, FIELD_COUNT, GENESIS_HASH, row_hash

TABLE = "audit_auditevent"
_SCALAR_SQL = (
    "actor_id, actor_label, action, target_type, target_id, outcome, prime_endpoint, "
    "message, client_ip, user_agent, request_id, prev_hash, before, after, prime_response, hash"
)
_PLAIN_SELECT = f"SELECT seq, occurred_at, {_SCALAR_SQL} FROM {TABLE}"  # noqa: S608 - constants
_EPOCH_NAIVE = EPOCH.replace(tzinfo=None)
MOVED_WINDOW = 8  # how far to look for the seq a moved event was hashed with
DEFAULT_CHUNK = 2_000  # measured: small chunks keep the fetch thread and the hashing in step


@dataclass(frozen=True)
class Problem:
    """One break in the chain, named by the event where it shows."""

    seq: int | None
    reason: str

    def __str__(self) -> str:
        return f"event #{self.seq}: {self.reason}" if self.seq is not None else self.reason


@dataclass
class ChainReport:
    events: int = 0
    first_seq: int | None = None
    last_seq: int = 0
    last_hash: str = GENESIS_HASH
    head_seq: int | None = None
    head_hash: str | None = None
    problems: list[Problem] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def rate(self) -> float:
        return self.events / self.elapsed if self.elapsed > 0 else 0.0


def _sqlite_micros(value: Any) -> int:
    if isinstance(value, datetime):
        naive = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    else:
        naive = datetime.fromisoformat(str(value))
        if naive.tzinfo is not None:
            naive = naive.astimezone(UTC).replace(tzinfo=None)
    return (naive - _EPOCH_NAIVE) // _MICRO


_MICRO = timedelta(microseconds=1)


@contextlib.contextmanager
def read_snapshot() -> Iterator[None]:
    """One consistent read: a REPEATABLE READ, READ ONLY transaction on PostgreSQL.

    On SQLite nothing is opened (a transaction there would take the write lock);
    callers bound their reads by the head they read first instead.
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def read_head() -> tuple[int, str] | None:
    """The chain head row (seq, hash), or None if there is none."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT seq, hash FROM audit_auditchainhead WHERE id = 1")
        found = cursor.fetchone()
    return (int(found[0]), found[1]) if found else None


def iter_row_chunks(
    *, after_seq: int = 0, until_seq: int | None = None, chunk_size: int = DEFAULT_CHUNK
) -> Iterator[list[tuple]]:
    """Events with after_seq < seq <= until_seq, in seq order, as lists of rows.

    On PostgreSQL the rows come from a server-side cursor in binary mode, fetched
    by a background thread so that the database and the hashing work at once.
    """
    where = " WHERE seq > %s" + (" AND seq <= %s" if until_seq is not None else "")
    params = [after_seq] + ([until_seq] if until_seq is not None else [])
    sql = f"{_PLAIN_SELECT}{where} ORDER BY seq"
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        yield from _prefetched(_pg_chunks(connection.connection, sql, params, chunk_size))
        return
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(chunk_size):
            yield [(r[0], _sqlite_micros(r[1]), *r[2:]) for r in rows]


_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01, PostgreSQL's own epoch, in Unix microseconds


class _MicrosLoader(Loader):
    """timestamptz (binary: int64 microseconds since 2000-01-01) straight to Unix microseconds."""

    format = Format.BINARY

    def load(self, data: Buffer) -> int:
        return int.from_bytes(data, "big", signed=True) + _PG_EPOCH_US


def _pg_chunks(
    raw: psycopg.Connection[Any], sql: str, params: list[Any], chunk_size: int
) -> Generator[list[tuple[Any, ...]], None, None]:
    """Rows straight from psycopg (usable from another thread: no Django connection involved)."""
    with raw.cursor(name=f"audit_verify_{id(raw)}", binary=True, withhold=raw.autocommit) as cur:
        cur.adapters.register_loader("timestamptz", _MicrosLoader)
        cur.execute(sql, params)
        while rows := cur.fetchmany(chunk_size):
            yield rows


def _prefetched(
    chunks: Generator[list[tuple[Any, ...]], None, None], depth: int = 4
) -> Iterator[list[tuple[Any, ...]]]:
    """Run a chunk iterator in a background thread, `depth` chunks ahead of the consumer."""
    box: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for chunk in chunks:
                if stop.is_set():
                    break
                box.put(chunk)
        except BaseException as exc:  # handed to the consumer, raised there
            box.put(exc)
        else:
            box.put(done)
        finally:
            chunks.close()

    worker = threading.Thread(target=produce, name="audit-verify-fetch", daemon=True)
    worker.start()
    try:
        while True:
            item = box.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(queue.Empty):
                box.get(timeout=0.05)
        worker.join()


def diagnose_content(row: tuple) -> str:
    """Why a row's hash does not match: moved from another seq, or its content changed."""
    seq = row[0]
    for delta in range(1, MOVED_WINDOW + 1):
        for other in (seq - delta, seq + delta):
            if other > 0 and row_hash((other, *row[1:])) == row[-1]:
                return (
                    f"out of place: its content was hashed as event #{other} "
                    "(events reordered or renumbered)"
                )
    return "content changed: the stored hash does not match the event's content"


class ChainWalker:
    """Checks rows one chunk at a time, carrying the link state between chunks."""

    def __init__(self, report: ChainReport, *, expect_head: tuple[int, str] | None, limit: int):
        self.report = report
        self.expect_head = expect_head
        self.limit = limit
        self.prev_seq = 0
        self.prev_hash = GENESIS_HASH
        self.prev_time = -(2**63)

    def problem(self, seq: int | None, reason: str) -> None:
        if len(self.report.problems) < self.limit:
            self.report.problems.append(Problem(seq, reason))

    def walk(self, rows: list[tuple]) -> None:
        sha256 = hashlib.sha256
        # The whole 18-column row is formatted; "%.0s" prints the stored hash as nothing.
        fmt = (CANONICAL_FORMAT + "%.0s").__mod__
        separators = FIELD_COUNT
        prev_seq, prev_hash, prev_time = self.prev_seq, self.prev_hash, self.prev_time
        anchor_seq, anchor_hash = self.expect_head if self.expect_head else (None, "")
        for row in rows:
            seq = row[0]
            text = fmt(row)
            if sha256(text.encode("utf-8", "surrogatepass")).hexdigest() != row[17]:
                self.problem(seq, diagnose_content(row))
            elif text.count("\x00") != separators:
                self.problem(seq, "a field contains a NUL character (content made ambiguous)")
            if seq != prev_seq + 1:
                if seq > prev_seq + 1:
                    missing = (
                        f"#{prev_seq + 1}"
                        if seq == prev_seq + 2
                        else f"#{prev_seq + 1}..#{seq - 1}"
                    )
                    self.problem(seq, f"gap in seq: {missing} missing (events deleted)")
                else:
                    self.problem(seq, f"seq out of order after #{prev_seq}")
            elif row[13] != prev_hash:
                self.problem(
                    seq,
                    f"prev_hash does not match the hash of event #{prev_seq} "
                    "(an event before it was reordered, replaced or inserted)",
                )
            if row[1] < prev_time:
                self.problem(seq, f"time goes backwards from event #{prev_seq}")
            if seq == anchor_seq and row[17] != anchor_hash:
                self.problem(
                    seq,
                    f"differs from the external anchor: hash {row[17][:16]}…, "
                    f"anchor {anchor_hash[:16]}… (the chain was rewritten)",
                )
            prev_seq, prev_hash, prev_time = seq, row[17], row[1]
        if rows:
            report = self.report
            if report.first_seq is None:
                report.first_seq = rows[0][0]
            report.events += len(rows)
            report.last_seq, report.last_hash = prev_seq, prev_hash
        self.prev_seq, self.prev_hash, self.prev_time = prev_seq, prev_hash, prev_time


def verify_chain(
    *,
    chunk_size: int = DEFAULT_CHUNK,
    expect_head: tuple[int, str] | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
    max_problems: int = 20,
) -> ChainReport:
    """Check the whole chain; the report lists the first problems found (empty when intact)."""
    started = time.perf_counter()
    report = ChainReport()
    walker = ChainWalker(report, expect_head=expect_head, limit=max_problems)
    with read_snapshot():
        head = read_head()
        bound: int | None = head[0] if head else 0
        if on_total:
            on_total(bound or 0)
        after = 0
        beyond_head = False
        while True:
            for rows in iter_row_chunks(after_seq=after, until_seq=bound, chunk_size=chunk_size):
                walker.walk(rows)
                after = rows[-1][0]
                if on_progress:
                    on_progress(len(rows))
            if bound is None:
                break
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT 1 FROM {TABLE} WHERE seq > %s LIMIT 1", [bound])  # noqa: S608
                more = cursor.fetchone() is not None
            if not more:
                break
            newer = read_head()  # SQLite: writers may have moved on while we read
            if newer and newer[0] > bound:
                head, bound = newer, newer[0]
                if on_total:
                    on_total(bound)
                continue
            beyond_head, bound = True, None
    report.head_seq, report.head_hash = head if head else (None, None)
    _check_head(report, walker, head, beyond_head)
    if expect_head and report.last_seq < expect_head[0]:
        walker.problem(
            None,
            f"the chain ends at event #{report.last_seq} but the external anchor is "
            f"#{expect_head[0]} (events at the end were deleted)",
        )
    report.elapsed = time.perf_counter() - started
    return report


def _check_head(
    report: ChainReport, walker: ChainWalker, head: tuple[int, str] | None, beyond: bool
) -> None:
    if head is None:
        if report.events:
            walker.problem(None, "the chain head row is missing")
        return
    head_seq, head_hash = head
    if beyond:
        walker.problem(
            head_seq + 1,
            f"events after the head (#{head_seq}) exist: written outside audit_record",
        )
    elif report.last_seq < head_seq:
        walker.problem(
            head_seq,
            f"missing: the head is at #{head_seq} but the last event is #{report.last_seq} "
            "(events at the end were deleted)",
        )
    elif report.last_seq == head_seq and report.last_hash != head_hash:
        walker.problem(
            head_seq, "head mismatch: the chain head's hash differs from this event's hash"
        )


def parse_anchor(text: str) -> tuple[int, str]:
    """`seq:hash` as printed by `verify_audit --print-head`."""
    seq, sep, digest = text.strip().partition(":")
    if not sep or not seq.isdigit() or len(digest) != 64:
        raise ValueError("expected SEQ:HASH, e.g. 1042:3f9c… (64 hex characters)")
    int(digest, 16)
    return int(seq), digest.lower()
