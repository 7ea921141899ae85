"""A real HTTP receiver on 127.0.0.1 for notification tests (webhooks and Apprise's json:// target)."""

from __future__ import annotations

import hashlib
import hmac
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Receiver", "signature_ok"]


def signature_ok(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """What a receiver checks: HMAC-SHA256 of "<X-Ringfence-Timestamp>." + body (docs/notifications.md)."""
    mac = hmac.new(secret.encode(), headers["x-ringfence-timestamp"].encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest(headers.get("x-ringfence-signature", ""), f"sha256={mac.hexdigest()}")


class Receiver:
    """A real HTTP server on loopback that records every POST (and answers 204)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
