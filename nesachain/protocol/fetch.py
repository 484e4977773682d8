"""One HTTP GET of another party's server, bounded in time and bytes (a verifier reads miners' step logs so).

``bounded_get`` has an overall deadline: connecting, the answer's head and its body all within it, every socket
read waiting only for the time left, so a body dripped a byte at a time fails at the deadline. And a byte cap: a
Content-Length over it is refused before anything is read; a body without one is read in chunks and refused as
soon as it passes the cap. What goes wrong is a ``StepLogUnavailable`` (no answer) or a ``StepLogInvalid`` (an
answer that is malformed, oversize, cut short or late), never another exception.
"""

from __future__ import annotations

import http.client
import io
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from nesachain.protocol.errors import StepLogInvalid, StepLogUnavailable

__all__ = ["ERROR_BODY_MAX", "HTTPAnswer", "bounded_get"]

ERROR_BODY_MAX: Final = 64 * 1024  # bytes read of a 403's (or any non-200's) body
_CHUNK: Final = 64 * 1024


@dataclass(frozen=True)
class HTTPAnswer:
    status: int
    body: bytearray  # as read, not copied: a body near the cap is held once
    content_type: str


class _DeadlineReader(io.RawIOBase):
    """A socket's reads, each waiting only for the time left before ``deadline``."""

    def __init__(self, sock: socket.socket, deadline: float, clock: Callable[[], float]) -> None:
        super().__init__()
        self._sock, self._deadline, self._clock = sock, deadline, clock

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        left = self._deadline - self._clock()
        if left <= 0:
            raise TimeoutError("the deadline passed")
        self._sock.settimeout(left)
        return self._sock.recv_into(b)


class _DeadlineSocket:
    """What ``http.client`` uses of a socket (``sendall``, ``makefile``, ``close``), bounded by one deadline. Its
    ``close`` leaves the socket open (``http.client`` closes it once the head is read, while the response still
    reads the body): ``bounded_get`` closes it when done."""

    def __init__(self, sock: socket.socket, deadline: float, clock: Callable[[], float]) -> None:
        self._sock, self._deadline, self._clock = sock, deadline, clock

    def sendall(self, data: bytes) -> None:
        left = self._deadline - self._clock()
        if left <= 0:
            raise TimeoutError("the deadline passed")
        self._sock.settimeout(left)
        self._sock.sendall(data)

    def makefile(self, mode: str, *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline, self._clock))

    def close(self) -> None:
        pass


def _connect(url: str, deadline: float,
             clock: Callable[[], float]) -> tuple[http.client.HTTPConnection, socket.socket, str]:
    """A connection to ``url``'s server on a socket bounded by ``deadline``, that socket, and the request target."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise StepLogInvalid(url, f"not a usable URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StepLogInvalid(url, "not an http(s) URL")
    host, port = parts.hostname, port or (443 if parts.scheme == "https" else 80)
    left = deadline - clock()
    if left <= 0:
        raise StepLogUnavailable(url, "no time left to connect")
    try:
        sock = socket.create_connection((host, port), timeout=left)
        if parts.scheme == "https":
            sock.settimeout(max(deadline - clock(), 0.001))
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
    except (OSError, UnicodeError) as exc:  # refused, unreachable, no such host, timed out, TLS failure
        raise StepLogUnavailable(url, f"cannot connect: {exc}") from None
    conn = http.client.HTTPConnection(host, port)
    conn.sock = _DeadlineSocket(sock, deadline, clock)  # http.client uses only sendall, makefile and close
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return conn, sock, target


def _content_length(url: str, resp: http.client.HTTPResponse) -> int | None:
    values = resp.headers.get_all("Content-Length") or []
    if not values:
        return None
    if len(set(values)) != 1 or not (values[0].isascii() and values[0].isdigit()) or len(values[0]) > 18:
        raise StepLogInvalid(url, f"a bad Content-Length {values!r}")
    return int(values[0])


def _read_body(url: str, resp: http.client.HTTPResponse, cap: int, truncate: bool) -> bytearray:
    """At most ``cap`` bytes of the body: beyond it StepLogInvalid, or (``truncate``) the first ``cap`` bytes."""
    length = _content_length(url, resp)
    if length is not None and length > cap and not truncate:
        raise StepLogInvalid(url, f"a body of {length} bytes, over the cap of {cap}")
    buf = bytearray()
    try:
        while True:
            chunk = resp.read1(min(_CHUNK, cap + 1 - len(buf)))  # what has come, up to a chunk
            if not chunk:
                if length is not None and len(buf) < length and not truncate:
                    raise StepLogInvalid(url, f"the body was cut short ({len(buf)} of {length} bytes)")
                break
            buf += chunk
            if len(buf) > cap:
                if truncate:
                    del buf[cap:]
                    break
                raise StepLogInvalid(url, f"a body of more than {cap} bytes, over the cap")
    except TimeoutError:
        raise StepLogInvalid(url, f"the body was not complete by the deadline ({len(buf)} bytes came)") from None
    except http.client.IncompleteRead as exc:
        raise StepLogInvalid(url, f"the body was cut short ({len(exc.partial)} bytes, more expected)") from None
    except http.client.HTTPException as exc:  # a bad chunked encoding
        raise StepLogInvalid(url, f"a malformed body: {type(exc).__name__}") from None
    except OSError as exc:  # reset mid-body: the network or the server
        raise StepLogUnavailable(url, f"the connection broke mid-body: {exc}") from None
    return buf


def bounded_get(url: str, *, deadline_s: float, max_bytes: int, headers: Mapping[str, str] | None = None,
                clock: Callable[[], float] = time.monotonic) -> HTTPAnswer:
    """GET ``url``, all of it (connecting, the answer's head, its body) within ``deadline_s`` seconds, reading at
    most ``max_bytes`` of a 200's body and ``ERROR_BODY_MAX`` of any other. Raises ``StepLogUnavailable`` when no
    answer comes (connection failed, no response head by the deadline, reset) and ``StepLogInvalid`` for a
    malformed head, a body over the cap, cut short, or not complete by the deadline."""
    deadline = clock() + deadline_s
    conn, sock, target = _connect(url, deadline, clock)
    try:
        try:
            conn.putrequest("GET", target, skip_accept_encoding=True)
            for name, value in (headers or {}).items():
                conn.putheader(name, value)
            conn.putheader("Connection", "close")
            conn.endheaders()
            resp = conn.getresponse()
        except (TimeoutError, ConnectionError) as exc:  # incl. RemoteDisconnected: closed without an answer
            raise StepLogUnavailable(url, f"no answer by the deadline: {exc or type(exc).__name__}") from None
        except http.client.HTTPException as exc:  # a malformed status line or headers
            raise StepLogInvalid(url, f"a malformed HTTP answer: {type(exc).__name__}") from None
        except OSError as exc:
            raise StepLogUnavailable(url, f"no answer: {exc}") from None
        ok = resp.status == 200
        body = _read_body(url, resp, max_bytes if ok else min(max_bytes, ERROR_BODY_MAX), truncate=not ok)
        return HTTPAnswer(resp.status, body, resp.getheader("Content-Type", "") or "")
    finally:
        sock.close()
