"""Who and where a change comes from, carried from the request to audit_record()."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestContext:
    client_ip: str | None = None
    user_agent: str = ""
    request_id: str = ""


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "audit_request_context", default=None
)


def current() -> RequestContext:
    """The context of the request being served, or an empty one (commands, the poller)."""
    return _current.get() or RequestContext()


def set_current(ctx: RequestContext | None) -> contextvars.Token:
    """Install a context; returns the token to reset it."""
    return _current.set(ctx)


def reset(token: contextvars.Token) -> None:
    """Restore the previous context."""
    _current.reset(token)
