"""Bench-only middleware: how many SQL queries a request made, and how long it took."""

from __future__ import annotations

import time

from django.db import connections


class _Counter:
    """A `connection.execute_wrapper` that counts queries and their time, nothing kept."""

    __slots__ = ("count", "seconds")

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - started
            self.count += 1


class QueryCountMiddleware:
    """Outermost middleware: reports queries, database time and server time per request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        counter = _Counter()
        started = time.perf_counter()
        wrappers = [conn.execute_wrapper(counter) for conn in connections.all()]
        for wrapper in wrappers:
            wrapper.__enter__()
        try:
            response = self.get_response(request)
        finally:
            for wrapper in reversed(wrappers):
                wrapper.__exit__(None, None, None)
        response.headers["X-Bench-Queries"] = str(counter.count)
        response.headers["X-Bench-DB-Ms"] = f"{counter.seconds * 1000:.2f}"
        response.headers["X-Bench-Ms"] = f"{(time.perf_counter() - started) * 1000:.2f}"
        return response
