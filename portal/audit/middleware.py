"""Capture the client address, user agent and a request id for the audit trail."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from portal.audit import context
from portal.web import client_ip


class RequestContextMiddleware:
    """Sets the audit context (client address, user agent, request id) for one request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request.headers.get("X-Request-ID", "")[:64] or uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]  # for logs
        token = context.set_current(
            context.RequestContext(
                client_ip=client_ip(request),
                user_agent=request.headers.get("User-Agent", "")[:300],
                request_id=request_id,
            )
        )
        try:
            response = self.get_response(request)
        finally:
            context.reset(token)
        response.headers["X-Request-ID"] = request_id
        return response
