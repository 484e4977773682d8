"""What the chain lets happen on a chain miner, asked of the miner's own node (``nesad miner start --owner``).

- **Open** a session: the open carries its client's signature (``protocol.auth``) for hop ``h`` of chain session
  ``s`` on this miner; the session must be open on chain, the signer its client, and route hop ``h`` this miner,
  or (a failover: ``attempt`` ≥ 1) a hop whose blocks this active miner of the session's model serves.
- **Read** a session's step log and frames: a bonded validator's operator signs for a challenge of that session
  that names this miner's hop.
- **Push** a session's outputs: to the route's next miner, or to an active miner of the model serving exactly
  the next hop's blocks (a stand-in the client may have failed over to); never anywhere else.

Every refusal is ``WireError`` ``forbidden`` with the reason; the node's answers are cached for a few seconds,
so a burst of requests costs a query or two. The checks run in threads (each is a few RPC calls).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from nesachain.errors import RPCError
from nesachain.protocol.auth import verify_open, verify_steplog_read
from nesachain.protocol.endpoints import ws_url
from nesachain.protocol.errors import ProtocolError, WireError
from nesachain.protocol.messages import ErrorCode
from nesachain.protocol.sessions import hop_session_name, parse_chain_session_name
from nesachain.shard_exec.server.registration import Admission
from nesachain.wallet import queries
from nesachain.wallet.rpc import CometRPC

__all__ = ["ChainGate"]

TTL_S = 2.0  # how long an answer of the node is reused
CATCH_UP_S = 2.0  # how long an open waits for this node to show a session its client has just opened


def _denied(message: str) -> WireError:
    return WireError(ErrorCode.FORBIDDEN, message)


class ChainGate:
    """The chain's rules for one miner (``miner``: its address), checked against ``rpc``."""

    def __init__(self, rpc: CometRPC, miner: str, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rpc, self.miner, self.clock, self.sleep = rpc, miner, clock, sleep
        self._chain_id: str | None = None
        self._cache: dict[tuple[str, Any], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def _cached(self, key: tuple[str, Any], fetch: Callable[[], Any]) -> Any:
        now = self.clock()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and now - hit[0] < TTL_S:
                return hit[1]
        try:
            value = fetch()
        except RPCError as exc:
            raise WireError(ErrorCode.INTERNAL, f"this miner cannot ask its node: {exc}") from None
        with self._lock:
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[key] = (now, value)
        return value

    def chain_id(self) -> str:
        if self._chain_id is None:
            self._chain_id = str(self._cached(("chain_id", None), self.rpc.chain_id))
        return self._chain_id

    def _session(self, session_id: int) -> dict[str, Any]:
        s = self._cached(("session", session_id), lambda: queries.session(self.rpc, session_id))
        if s is None:
            raise _denied(f"the chain has no session {session_id}")
        return dict(s)

    def _open_session(self, session_id: int) -> dict[str, Any]:
        """The session as this node shows it: a client opens its session through its own node and comes at once,
        so this node may be a block behind; a session it does not know yet is asked for again, uncached, for up
        to ``CATCH_UP_S``."""
        deadline = self.clock() + CATCH_UP_S
        while True:
            try:
                return self._session(session_id)
            except WireError:
                if self.clock() >= deadline:
                    raise
            self.sleep(0.25)
            with self._lock:
                self._cache.pop(("session", session_id), None)

    def _me(self) -> dict[str, Any] | None:
        return self._cached(("miner", self.miner), lambda: queries.miner(self.rpc, self.miner))  # type: ignore[no-any-return]

    def admit_open(self, name: str, auth: Any) -> Admission:
        grant = verify_open(auth)
        if grant.session_name != name:
            raise _denied(f"the signature is for session {grant.session_name!r}, not {name!r}")
        if grant.miner != self.miner:
            raise _denied(f"the signature is for miner {grant.miner}, this is {self.miner}")
        if grant.chain_id != self.chain_id():
            raise _denied(f"the signature is for chain {grant.chain_id!r}, this miner's is {self.chain_id()!r}")
        s = self._open_session(grant.session_id)
        if s["status"] != "open":
            raise _denied(f"session {grant.session_id} is {s['status']} on chain, not open")
        if grant.client != s["client"]:
            raise _denied(f"session {grant.session_id} was opened by {s['client']}, not {grant.client}")
        route = [h for h in s["hops"] if h["stands_in_for"] < 0]
        if grant.hop >= len(route):
            raise _denied(f"session {grant.session_id} has {len(route)} route hops, not hop {grant.hop}")
        hop = route[grant.hop]
        if hop["miner"] != self.miner and not (grant.attempt >= 1 and self._can_stand_in(s, hop)):
            raise _denied(f"hop {grant.hop} of session {grant.session_id} is {hop['miner']}'s, and this miner cannot "
                          "stand in for it")
        return Admission(grant.client, chain=True)

    def _can_stand_in(self, s: dict[str, Any], hop: dict[str, Any]) -> bool:
        me = self._me()
        return (me is not None and me["status"] == "active" and me["model_id"] == s["model_id"]
                and me["block_start"] <= hop["start"] and hop["end"] <= me["block_end"])

    def admit_read(self, name: str, header: str | None) -> None:
        grant = verify_steplog_read(header)
        if grant.session != name or grant.miner != self.miner:
            raise _denied(f"the signature is for {grant.miner}'s session {grant.session!r}, not this one")
        if grant.chain_id != self.chain_id():
            raise _denied(f"the signature is for chain {grant.chain_id!r}")
        bonded = self._cached(("bonded", None), lambda: {v["operator"] for v in queries.validators(self.rpc, "bonded")})
        if grant.operator not in bonded:
            raise _denied(f"{grant.operator} is not a bonded validator")
        s = self._session(grant.session_id)
        challenges = s.get("challenges") or []
        if grant.challenge >= len(challenges):
            raise _denied(f"session {grant.session_id} has no challenge {grant.challenge}")
        c = challenges[grant.challenge]
        if c["miner"] != self.miner or hop_session_name(s, int(c["hop"])) != name:
            raise _denied(f"challenge {grant.challenge} of session {grant.session_id} is not about {name!r}")

    def may_push(self, name: str, url: str) -> bool:
        parsed = parse_chain_session_name(name)
        if parsed is None:
            return False
        session_id, hop_index, _ = parsed
        try:
            allowed = self._cached(("push", (session_id, hop_index)),
                                   lambda: self._next_hop_urls(session_id, hop_index))
        except WireError:
            return False
        return url in allowed

    def _next_hop_urls(self, session_id: int, hop_index: int) -> frozenset[str]:
        s = queries.session(self.rpc, session_id)
        if s is None:
            return frozenset()
        route = [h for h in s["hops"] if h["stands_in_for"] < 0]
        if hop_index + 1 >= len(route):
            return frozenset()
        nxt = route[hop_index + 1]
        named = queries.miner(self.rpc, nxt["miner"])
        candidates = [named] if named is not None else []
        candidates += [m for m in queries.miners(self.rpc, s["model_id"], "active")
                       if (m["block_start"], m["block_end"]) == (nxt["start"], nxt["end"])]
        urls = set()
        for m in candidates:
            try:
                urls.add(ws_url(m["endpoint"]))
            except ProtocolError:
                continue
        return frozenset(urls)
