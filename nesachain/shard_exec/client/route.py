"""Routes: the ordered miners a request flows through, each with its block range and alternates."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from nesachain.shard_exec.errors import RouteError
from nesachain.shard_exec.wire import SCHEMES

__all__ = ["Hop", "Route", "check_endpoint", "parse_route"]


@dataclass
class Hop:
    """Blocks [start, end) served by ``url``; ``alternates`` serve the same blocks (failover order)."""

    url: str
    start: int
    end: int
    alternates: list[str] = field(default_factory=list)


@dataclass
class Route:
    """Hops in order; ``scheme`` compresses activations on every hop; ``push`` lets miners forward directly.

    ``edge_scheme``, when set, replaces ``scheme`` on the two client edges only (client -> first miner,
    last miner -> client), e.g. fp16 there and mixed8 between miners.
    """

    hops: list[Hop]
    scheme: str = "none"
    push: bool = True
    edge_scheme: str | None = None

    @property
    def client_scheme(self) -> str:
        return self.edge_scheme or self.scheme

    def hop_scheme(self, i: int) -> str:
        """Scheme of hop i's *outputs*."""
        return self.client_scheme if i == len(self.hops) - 1 else self.scheme

    def validate(self, n_blocks: int) -> None:
        """The hops must cover blocks 0..n_blocks contiguously."""
        for scheme in (self.scheme, self.client_scheme):
            if scheme not in SCHEMES:
                raise RouteError(f"unknown compression scheme {scheme!r}; use one of {', '.join(SCHEMES)}")
        at = 0
        for hop in self.hops:
            if hop.start != at or hop.end <= hop.start:
                raise RouteError(f"hop {hop.url} serves {hop.start}:{hop.end}, expected to start at {at}")
            at = hop.end
        if at != n_blocks:
            raise RouteError(f"route covers blocks 0:{at}, the model has {n_blocks}")


def check_endpoint(addr: str) -> str:
    """``addr`` (host:port, or a URL with both) as given; a RouteError saying what is wrong if it is not."""
    try:
        parts = urlsplit(addr if "://" in addr else f"http://{addr}")
        port = parts.port
    except ValueError as exc:
        raise RouteError(f"a miner's address looks like host:port, got {addr!r}: {exc}") from exc
    if not parts.hostname or port is None or port == 0 or any(c.isspace() for c in parts.hostname):
        raise RouteError(f"a miner's address looks like host:port (port 1-65535), got {addr!r}")
    return addr


def _ws_url(addr: str) -> str:
    check_endpoint(addr)
    if addr.startswith(("ws://", "wss://")):
        return addr
    return f"ws://{addr}/ws"


def parse_route(text: str, alternates: list[str] | None = None, scheme: str = "none", push: bool = True,
                edge_scheme: str | None = None) -> Route:
    """``"127.0.0.1:7001@0:1,127.0.0.1:7002@1:3"`` (+ alternates like ``"127.0.0.1:7003@1:3"``)."""
    hops: list[Hop] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        addr, _, rng = part.rpartition("@")
        try:
            lo, hi = (int(x) for x in rng.split(":"))
        except ValueError as exc:
            raise RouteError(f"a hop looks like host:port@start:end, got {part!r}") from exc
        hops.append(Hop(_ws_url(addr), lo, hi))
    for alt in alternates or []:
        addr, _, rng = alt.rpartition("@")
        match = [h for h in hops if f"{h.start}:{h.end}" == rng]
        if not match:
            raise RouteError(f"alternate {alt!r} serves no block range of the route")
        match[0].alternates.append(_ws_url(addr))
    if not hops:
        raise RouteError("empty route")
    return Route(hops, scheme, push, edge_scheme)
