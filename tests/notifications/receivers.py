"""Real receivers for the delivery tests: an SMTP server (aiosmtpd) and an HTTP webhook
receiver on loopback ports, each able to go down and come back on the same port."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from portal.notifications.delivery import (
    DEDUP_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify,
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MailBox:
    """What the SMTP server received, by the message's dedup key."""

    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's handler hook
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(message)
        return "250 OK"

    def keys(self) -> list[str]:
        with self.lock:
            return [m[DEDUP_HEADER] for m in self.messages]


class SmtpServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.box = MailBox()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self.box, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


class WebhookReceiver:
    """Accepts a POST only with a valid signature and a fresh timestamp; counts by dedup key."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.port = free_port()
        self.accepted: list[dict] = []
        self.refused = 0
        self._server: ThreadingHTTPServer | None = None
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ok = verify(
                    receiver.secret,
                    self.headers.get(TIMESTAMP_HEADER, ""),
                    body,
                    self.headers.get(SIGNATURE_HEADER, ""),
                    now=time.time(),
                )
                with receiver.lock:
                    if ok:
                        receiver.accepted.append(
                            {"key": self.headers.get(DEDUP_HEADER), "body": body}
                        )
                    else:
                        receiver.refused += 1
                self.send_response(200 if ok else 401)
                self.end_headers()

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def keys(self) -> list[str]:
        with self.lock:
            return [a["key"] for a in self.accepted]
