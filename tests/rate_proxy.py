"""A rate-limiting HTTP proxy in front of an OpenAI-compatible server, as a hosted API behaves:
at most ``limit`` requests per ``window`` seconds are forwarded; the rest get 429 with a
``Retry-After`` header. Listens on 127.0.0.1 only; records what it accepted and refused.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class RateLimitedProxy:
    def __init__(self, upstream: str, limit: int, window: float = 1.0, retry_after: int = 1):
        self.upstream = upstream.rstrip("/")  # e.g. http://127.0.0.1:PORT (no /v1)
        self.limit, self.window, self.retry_after = limit, window, retry_after
        self.accepted: list[float] = []
        self.refused: list[float] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _forward(self, method: str) -> None:
                now = time.monotonic()
                with proxy._lock:
                    recent = [t for t in proxy.accepted if now - t < proxy.window]
                    allowed = len(recent) < proxy.limit
                    (proxy.accepted if allowed else proxy.refused).append(now)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if method == "POST" else None
                if not allowed:
                    payload = json.dumps({"error": {"message": "rate limit exceeded", "type": "rate_limit_error", "code": 429}}).encode()
                    self.send_response(429)
                    self.send_header("Retry-After", str(proxy.retry_after))
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
                request = urllib.request.Request(proxy.upstream + self.path, data=body, headers=headers, method=method)
                try:
                    with urllib.request.urlopen(request, timeout=600) as reply:
                        status, content, ctype = reply.status, reply.read(), reply.headers.get("Content-Type", "application/json")
                except urllib.error.HTTPError as exc:
                    status, content, ctype = exc.code, exc.read(), exc.headers.get("Content-Type", "application/json")
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def do_POST(self):
                self._forward("POST")

            def do_GET(self):
                self._forward("GET")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "RateLimitedProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
