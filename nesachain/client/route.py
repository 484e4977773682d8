"""Routes: the ordered miners a request flows through, each with its block range and alternates.

One model for every route: one the client finds on chain (``routing.find_route``: each peer has its miner
address) and one a user types (``parse_route``: peers by address only).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nesachain.client.errors import RouteError
from nesachain.protocol.endpoints import EndpointError, ws_url
from nesachain.protocol.messages import SCHEMES

__all__ = ["Authorizer", "Hop", "Peer", "Route", "parse_route"]

Authorizer = Callable[[int, int, str], dict[str, Any]]  # (route hop, failover attempt, miner URL) -> open's auth


@dataclass(frozen=True)
class Peer:
    """One miner a hop can run on: its WebSocket URL and, for a miner on chain, its address."""

    url: str
    miner: str = ""


@dataclass(frozen=True)
class Hop:
    """Blocks [start, end), served by ``peers[0]``; the other peers serve the same blocks, in failover order.
    ``cost`` is what routing weighed the hop at (seconds a token; 0 for a typed route)."""

    start: int
    end: int
    peers: tuple[Peer, ...]
    cost: float = 0.0

    def __post_init__(self) -> None:
        if not self.peers:
            raise RouteError(f"hop {self.start}:{self.end} has no miner")

    @property
    def url(self) -> str:
        return self.peers[0].url

    @property
    def miner(self) -> str:
        return self.peers[0].miner

    @property
    def alternates(self) -> tuple[Peer, ...]:
        return self.peers[1:]


@dataclass(frozen=True)
class Route:
    """Hops in order; ``scheme`` compresses activations on every hop; ``push`` lets miners forward directly.

    ``edge_scheme``, when set, replaces ``scheme`` on the two client edges only (client -> first miner,
    last miner -> client), e.g. fp16 there and mixed8 between miners. ``cost`` is routing's total.
    """

    hops: tuple[Hop, ...]
    scheme: str = "none"
    push: bool = True
    edge_scheme: str | None = None
    cost: float = 0.0
    # a chain session's: signs the open of (hop, failover attempt) on the miner at a URL (``protocol.auth``)
    authorize: Authorizer | None = field(default=None, compare=False)

    @property
    def client_scheme(self) -> str:
        return self.edge_scheme or self.scheme

    def hop_scheme(self, i: int) -> str:
        """Scheme of hop i's *outputs*."""
        return self.client_scheme if i == len(self.hops) - 1 else self.scheme

    def compressed(self, scheme: str, edge_scheme: str | None = None, push: bool = True) -> Route:
        """This route with other compression settings."""
        return dataclasses.replace(self, scheme=scheme, edge_scheme=edge_scheme, push=push)

    def authorized(self, authorize: Authorizer) -> Route:
        """This route for a chain session: each hop's open carries what ``authorize(hop, attempt, url)`` signs."""
        return dataclasses.replace(self, authorize=authorize)

    def validate(self, n_blocks: int) -> None:
        """The hops must cover blocks 0..n_blocks contiguously, with known schemes."""
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

    def as_chain_route(self) -> list[list[object]]:
        """The route as ``MsgOpenSession`` names it: [miner, start, end] per hop."""
        return [[h.miner, h.start, h.end] for h in self.hops]

    def miner_at(self, url: str) -> str | None:
        """The chain address of the peer at ``url`` (a stand-in after a failover), if the route knows it."""
        return next((p.miner for h in self.hops for p in h.peers if p.url == url and p.miner), None)


def _peer(addr: str) -> Peer:
    try:
        return Peer(ws_url(addr))
    except EndpointError as exc:
        raise RouteError(str(exc)) from None


def parse_route(text: str, alternates: list[str] | None = None, scheme: str = "none", push: bool = True,
                edge_scheme: str | None = None) -> Route:
    """``"127.0.0.1:7001@0:1,127.0.0.1:7002@1:3"`` (+ alternates like ``"127.0.0.1:7003@1:3"``)."""
    spans: list[tuple[int, int, list[Peer]]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        addr, _, rng = part.rpartition("@")
        try:
            lo, hi = (int(x) for x in rng.split(":"))
        except ValueError as exc:
            raise RouteError(f"a hop looks like host:port@start:end, got {part!r}") from exc
        spans.append((lo, hi, [_peer(addr)]))
    for alt in alternates or []:
        addr, _, rng = alt.rpartition("@")
        match = [peers for lo, hi, peers in spans if f"{lo}:{hi}" == rng]
        if not match:
            raise RouteError(f"alternate {alt!r} serves no block range of the route")
        match[0].append(_peer(addr))
    if not spans:
        raise RouteError("empty route")
    return Route(tuple(Hop(lo, hi, tuple(peers)) for lo, hi, peers in spans), scheme, push, edge_scheme)
