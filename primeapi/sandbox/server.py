"""HTTP layer: a threaded server routing ``/0/private/*`` and ``/_sandbox/*``."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from primeapi.sandbox import control_api
from primeapi.sandbox.app import PRIVATE_PREFIX, Reply, SandboxApp
from primeapi.sandbox.auth import RATE_LIMIT_CHOICES
from primeapi.sandbox.clock import Clock
from primeapi.sandbox.control import SandboxControl
from primeapi.sandbox.faults import AFTER_EXECUTE_KINDS, REJECTING_KINDS
from primeapi.sandbox.state import Settings

# Prime bodies are tiny; refuse anything absurd before reading it into memory.
MAX_BODY_BYTES = 1 << 20


class _Handler(BaseHTTPRequestHandler):
    """One connection; HTTP/1.1 so clients may keep sessions alive."""

    protocol_version = "HTTP/1.1"
    server_version = "KrakenPrimeSandbox/1.0"
    # Idle keep-alive connections are closed after this many seconds.
    timeout = 120
    # Without TCP_NODELAY, Nagle + delayed ACK add ~40 ms to every kept-alive request.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def do_POST(self) -> None:
        self._route()

    def do_GET(self) -> None:
        self._route()

    def do_DELETE(self) -> None:
        self._route()

    def do_PUT(self) -> None:
        self._route()

    def log_message(self, format: str, *args: Any) -> None:
        # Only the request line and status are logged: never headers or bodies.
        if self.server.verbose:
            super().log_message(format, *args)

    # ---------------------------------------------------------------- routing

    def _route(self) -> None:
        raw = self._read_body()
        if raw is None:
            return
        split = urlsplit(self.path)
        app = self.server.app
        if split.path.startswith(PRIVATE_PREFIX):
            self._private(app, split.path[len(PRIVATE_PREFIX) :], raw)
        elif split.path.startswith(control_api.CONTROL_PREFIX):
            self._send(control_api.handle(app, self.command, split.path, split.query, raw))
        else:
            self._send(Reply.kraken_error("EGeneral:Unknown method", 404))

    def _private(self, app: SandboxApp, endpoint: str, raw: bytes) -> None:
        peer = self.client_address[0]
        fault = app.take_fault(endpoint) if self.command == "POST" else None
        if fault is not None and fault.kind in REJECTING_KINDS:
            self._send(app.reject_with_fault(fault, endpoint, self.headers, raw, peer))
            return
        if fault is not None and fault.kind == "latency":
            app.stopping.wait(fault.seconds)
        reply = app.execute_private(
            endpoint,
            method=self.command,
            # The signed path is the request target as sent, query string included.
            url_path=self.path,
            headers=self.headers,
            raw=raw,
            peer=peer,
            fault=fault,
        )
        if fault is not None and fault.kind in AFTER_EXECUTE_KINDS:
            if fault.kind == "timeout_after_execute":
                app.stopping.wait(fault.seconds)
            self._drop()
            return
        self._send(reply)

    # --------------------------------------------------------------------- io

    def _read_body(self) -> bytes | None:
        length_header = self.headers.get("Content-Length")
        try:
            length = int(length_header) if length_header else 0
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            self._send(Reply.kraken_error("EGeneral:Invalid arguments", 413))
            return None
        return self.rfile.read(length) if length else b""

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def _drop(self) -> None:
        """Close the socket without any response bytes."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: SandboxApp, *, verbose: bool) -> None:
        self.app = app
        self.verbose = verbose
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        # Track open connections so stop() can end keep-alive ones too.
        with self._connections_lock:
            self._connections.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(request)

    def close_connections(self) -> None:
        """Shut down every open client connection (idle keep-alive ones included)."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that give up (timeouts, dropped connections) are expected in tests.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class SandboxServer:
    """A local Kraken Prime REST server; see the package docstring."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        state_path: str | os.PathLike[str] | None = None,
        demo: bool = False,
        auto_confirm_after: float | None = None,
        transfer_delay: float | None = None,
        rate_limit: str = "off",
        verbose: bool = False,
        clock: Clock | None = None,
    ) -> None:
        if rate_limit not in RATE_LIMIT_CHOICES:
            raise ValueError(f"rate_limit must be one of {', '.join(RATE_LIMIT_CHOICES)}")
        self.host = host
        self.port = port
        self.verbose = verbose
        settings = Settings(
            transfer_delay=transfer_delay,
            auto_confirm_after=auto_confirm_after,
            rate_limit=rate_limit,
        )
        self.app = SandboxApp(state_path=state_path, demo=demo, settings=settings, clock=clock)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> SandboxServer:
        """Bind and serve in a background thread; ``port=0`` picks a free port."""
        if self._httpd is not None:
            raise RuntimeError("sandbox already running")
        self.app.stopping.clear()
        self._httpd = _HTTPServer((self.host, self.port), self.app, verbose=self.verbose)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"prime-sandbox:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, release held connections and close the socket."""
        if self._httpd is None:
            return
        self.app.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8765`` (no trailing slash)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def admin_key(self) -> str:
        """Public admin API key of the account."""
        with self.app.lock:
            return self.app.state.admin_key.api_key

    @property
    def admin_secret(self) -> str:
        """Base64 admin API secret of the account."""
        with self.app.lock:
            return self.app.state.admin_key.secret

    def admin_credentials(self) -> dict[str, str]:
        """The credentials file content: ``{"api_key", "api_secret", "url"}``."""
        return {"api_key": self.admin_key, "api_secret": self.admin_secret, "url": self.url}

    @property
    def clock(self) -> Clock:
        """The sandbox's clock (``advance_clock`` moves it and applies what fell due)."""
        return self.app.clock

    def advance_clock(self, seconds: float) -> int:
        """Move the sandbox's time forward by ``seconds``; returns the new time in ms."""
        return self.app.advance_clock(seconds)

    @property
    def control(self) -> SandboxControl:
        """A client for the ``/_sandbox/`` control API."""
        return SandboxControl(self.url)
