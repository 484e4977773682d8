"""A miner's endpoint (``host:port``, as registered on chain) and the URLs clients, peers and verifiers use."""

from __future__ import annotations

from urllib.parse import urlsplit

from nesachain.protocol.errors import ProtocolError

__all__ = ["EndpointError", "check_endpoint", "http_url", "ws_url"]


class EndpointError(ProtocolError):
    """An address is not ``host:port`` (or a URL with both)."""


def check_endpoint(addr: str) -> str:
    """``addr`` (host:port, or a URL with both) as given; an EndpointError saying what is wrong if it is not."""
    try:
        parts = urlsplit(addr if "://" in addr else f"http://{addr}")
        port = parts.port
    except ValueError as exc:
        raise EndpointError(f"a miner's address looks like host:port, got {addr!r}: {exc}") from exc
    if not parts.hostname or port is None or port == 0 or any(c.isspace() for c in parts.hostname):
        raise EndpointError(f"a miner's address looks like host:port (port 1-65535), got {addr!r}")
    return addr


def ws_url(addr: str) -> str:
    """The WebSocket URL of the miner at ``addr`` (a ws:// or wss:// URL is kept as it is)."""
    check_endpoint(addr)
    if addr.startswith(("ws://", "wss://")):
        return addr
    return f"ws://{addr.removeprefix('http://')}/ws"


def http_url(addr: str) -> str:
    """The HTTP base (``http://host:port``) of the miner at ``addr``."""
    check_endpoint(addr)
    if addr.startswith(("http://", "https://")):
        return addr.rstrip("/")
    if addr.startswith(("ws://", "wss://")):
        parts = urlsplit(addr)
        return f"{'https' if parts.scheme == 'wss' else 'http'}://{parts.netloc}"
    return f"http://{addr}"
