"""A real HTTP server on 127.0.0.1, in a thread, that answers a step log's endpoints exactly as a test scripts
it: any status, head, body and pace, down to the byte (a malformed status line, a wrong Content-Length, a body
dripped a byte at a time, one that never ends, no answer at all). The verifier's tests point the real fetch
functions and a real ``Verifier.judge`` at it.

    with StepLogServer() as srv:
        srv.answers["/log"] = Answer(body=b"[]")
        bounded_get(srv.url + "/sessions/s/log", deadline_s=1, max_bytes=1024)
"""

from __future__ import annotations

import socketserver
import threading
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Answer", "StepLogServer"]

REASONS = {200: "OK", 301: "Moved", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           410: "Gone", 418: "Teapot", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Unavailable"}


@dataclass
class Answer:
    """One scripted answer. By default a 200 with the body and its true Content-Length."""

    body: bytes = b""
    status: int = 200
    content_type: str = "application/octet-stream"
    length: Any = "auto"  # "auto": the body's length; None: no Content-Length; else the header's text as given
    extra_headers: list[tuple[str, str]] = field(default_factory=list)
    head: bytes | None = None  # a raw head (status line and headers) instead of the scripted one
    chunked: bool = False  # Transfer-Encoding: chunked, one chunk per 64 KiB
    drip_s: float = 0.0  # seconds between bytes of the body (0: all at once)
    head_drip_s: float = 0.0  # seconds between bytes of the head
    endless: bool = False  # the body, again and again, until the client goes
    silent: bool = False  # read the request, answer nothing until the server stops
    close_after: int | None = None  # close the connection after this many body bytes
    hang_after: int | None = None  # stop sending (connection open) after this many body bytes


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 65536:
            line = self.rfile.readline(65537)
            if not line:
                return
            head += line
            if line in (b"\r\n", b"\n"):
                break
        text = head.decode("latin-1")
        path = text.split(" ")[1] if text.count(" ") >= 2 else ""
        headers = dict(h.split(": ", 1) for h in text.split("\r\n")[1:] if ": " in h)
        owner = self.server.owner
        with owner.lock:
            owner.requests.append((path, headers))
        answer = owner.answer_for(path)
        try:
            self._answer(answer, owner.stopping)
        except OSError:  # the client went away: that is what most of these answers are for
            pass

    def _send(self, data: bytes, drip_s: float, stopping: threading.Event) -> bool:
        """False once the server stops."""
        if not drip_s:
            self.wfile.write(data)
            self.wfile.flush()
            return True
        for i in range(len(data)):
            self.wfile.write(data[i : i + 1])
            self.wfile.flush()
            if stopping.wait(drip_s):
                return False
        return True

    def _answer(self, a: Answer, stopping: threading.Event) -> None:
        if a.silent:
            stopping.wait()
            return
        if a.head is not None:
            head = a.head
        else:
            lines = [f"HTTP/1.1 {a.status} {REASONS.get(a.status, 'Status')}", f"Content-Type: {a.content_type}",
                     "Connection: close"]
            if a.chunked:
                lines.append("Transfer-Encoding: chunked")
            elif a.length == "auto":
                lines.append(f"Content-Length: {len(a.body)}")
            elif a.length is not None:
                lines.append(f"Content-Length: {a.length}")
            lines += [f"{k}: {v}" for k, v in a.extra_headers]
            head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if not self._send(head, a.head_drip_s, stopping):
            return
        sent = 0
        while True:
            body = a.body
            if a.close_after is not None:
                body = body[: max(0, a.close_after - sent)]
            if a.hang_after is not None:
                body = body[: max(0, a.hang_after - sent)]
            if a.chunked:
                for i in range(0, len(body), 65536):
                    part = body[i : i + 65536]
                    if not self._send(b"%x\r\n" % len(part) + part + b"\r\n", a.drip_s, stopping):
                        return
            elif not self._send(body, a.drip_s, stopping):
                return
            sent += len(body)
            if a.close_after is not None and sent >= a.close_after:
                return
            if a.hang_after is not None and sent >= a.hang_after:
                stopping.wait()
                return
            if not a.endless or stopping.is_set():
                break
        if a.chunked:
            self.wfile.write(b"0\r\n\r\n")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: StepLogServer


class StepLogServer:
    """The server; ``answers`` maps a path's ending (``"/log"``, ``"/steps"``) to its ``Answer``."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="steplog-server", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def answer_for(self, path: str) -> Answer:
        route = path.split("?")[0]
        for suffix, answer in self.answers.items():
            if route.endswith(suffix):
                return answer
        return Answer(status=404, body=b'{"code": "unknown_session", "message": "no such session"}')

    def __enter__(self) -> StepLogServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
