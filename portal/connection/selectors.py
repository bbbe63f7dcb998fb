"""Reads about the Prime connection: the stored credentials and the status strip."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.core.cache import cache
from django.db.models import OuterRef, Subquery

from portal.connection import resolve
from portal.connection.models import ConnectionHealth, HealthStatus, StoredConnection

__all__ = [
    "PrimeStatus",
    "connection_status",
    "connection_status_cached",
    "connection_status_forget",
    "connection_status_warm",
    "stored_connection_get",
]

# The status strip is on every signed-in page: its row is read at most this often per
# shared cache (and dropped at once by the process that records a change).
STATUS_CACHE_SECONDS = 15
_STATUS_CACHE_KEY = "portal:connection:status:{}"


def stored_connection_get() -> StoredConnection | None:
    """The connection an Admin stored, or None."""
    return StoredConnection.objects.filter(pk=StoredConnection.SINGLETON_ID).first()


@dataclass(frozen=True)
class PrimeStatus:
    """What the status strip shows."""

    configured: bool
    problem: str = ""
    source: str = ""
    source_label: str = ""
    url: str = ""
    host: str = ""
    is_sandbox: bool = False
    status: str = ""
    last_success_at: datetime | None = None
    failing_since: datetime | None = None
    last_error: str = ""

    @property
    def kind(self) -> str:
        return "sandbox" if self.is_sandbox else "live"

    @property
    def unreachable(self) -> bool:
        return self.status == HealthStatus.UNREACHABLE

    @property
    def refused(self) -> bool:
        return self.status == HealthStatus.REFUSED


_HEALTH_FIELDS = ("status", "last_success_at", "failing_since", "last_error")


def _status(url: str, source: resolve.ConnectionSource, health: dict) -> PrimeStatus:
    host = resolve.PrimeConnection(url=url, api_key="-", api_secret="", source=source).host
    return PrimeStatus(
        configured=True,
        source=source.value,
        source_label=source.label,
        url=url,
        host=host,
        is_sandbox=resolve.is_loopback_host(host),
        status=health.get("status") or "",
        last_success_at=health.get("last_success_at"),
        failing_since=health.get("failing_since"),
        last_error=health.get("last_error") or "",
    )


def connection_status() -> PrimeStatus:
    """The connection in force and its health, in at most one query."""
    try:
        found = resolve.environment_connection()
    except resolve.PrimeNotConfigured as exc:
        return PrimeStatus(configured=False, problem=str(exc))
    if found is not None:
        health = (
            ConnectionHealth.objects.filter(pk=found.fingerprint).values(*_HEALTH_FIELDS).first()
        )
        return _status(found.url, found.source, health or {})
    health_row = ConnectionHealth.objects.filter(fingerprint=OuterRef("fingerprint"))
    stored = (
        StoredConnection.objects.filter(pk=StoredConnection.SINGLETON_ID)
        .annotate(**{f"h_{name}": Subquery(health_row.values(name)[:1]) for name in _HEALTH_FIELDS})
        .values("api_url", *(f"h_{name}" for name in _HEALTH_FIELDS))
        .first()
    )
    if stored is None:
        return PrimeStatus(
            configured=False,
            problem="No Prime connection is configured yet.",
        )
    health = {name: stored[f"h_{name}"] for name in _HEALTH_FIELDS}
    return _status(stored["api_url"], resolve.ConnectionSource.SETTINGS_PAGE, health)


def connection_status_cached() -> PrimeStatus:
    """connection_status() through the shared cache (a few seconds' life): the strip's read."""
    try:
        found = resolve.environment_connection()
    except resolve.PrimeNotConfigured as exc:
        return PrimeStatus(configured=False, problem=str(exc))
    key = _STATUS_CACHE_KEY.format(found.fingerprint if found is not None else "stored")
    status = cache.get(key)
    if isinstance(status, PrimeStatus):
        return status
    status = connection_status()
    cache.set(key, status, STATUS_CACHE_SECONDS)
    return status


def connection_status_warm(**kwargs: object) -> None:
    """Read the strip into the cache as someone signs in (their first page will show it)."""
    connection_status_cached()


def connection_status_forget(fingerprint: str = "", **kwargs: object) -> None:
    """Drop the cached strip (after a health write, or the stored connection changed)."""
    keys = [_STATUS_CACHE_KEY.format("stored")]
    if fingerprint:
        keys.append(_STATUS_CACHE_KEY.format(fingerprint))
    cache.delete_many(keys)
