"""Run steps through a route of miners, keep every hop's inputs, and fail over to alternates.

For step n the client sends hop 0's input to hop 0 with the rest of the route as a push list; each
miner returns its output to the client *and* pushes it to the next miner. The client stores every hop's
input frames (for hop i > 0: hop i-1's output as received), so when a miner dies it opens a session on
an alternate for the same blocks, replays that hop's inputs step by step — the same frames in the same
shapes, so the rebuilt KV cache is bit-identical — and continues.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog
import torch

from nesachain.client.connection import MinerConnection, MinerUnavailable
from nesachain.client.errors import RouteError
from nesachain.client.route import Route
from nesachain.protocol.errors import StepError
from nesachain.protocol.frames import TensorStreams, decode_tensor
from nesachain.protocol.sessions import session_name

__all__ = ["HopInput", "RecoveryEvent", "RemotePipeline", "StandIn"]

log = structlog.get_logger(__name__)

# errors after which another miner may do better; anything else is the request's fault
_RETRYABLE = {"internal", "memory_budget_exhausted", "unknown_session"}


@dataclass
class HopInput:
    """What hop i received at one step."""

    position: int
    frames: dict[str, bytes]
    values: dict[str, Any]


@dataclass
class RecoveryEvent:
    """One failover: which hop, at which step, to which miner, and how long it took."""

    hop: int
    step: int
    failed_url: str
    new_url: str
    replayed_steps: int
    seconds: float


@dataclass
class StandIn:
    """A miner other than the route's own serving hop ``hop`` from step ``from_step`` on, under the
    session name ending in ``attempt`` (what a chain session reports so that the stand-in is paid)."""

    hop: int
    url: str
    attempt: int
    from_step: int


@dataclass
class _HopState:
    urls: list[str]  # primary first, then alternates
    blocks: list[int]  # [start, end): sent on open, so that a miner serving other blocks refuses
    conn: MinerConnection | None = None
    sid: str = ""
    token: str = ""  # what the miner's "opened" gave: the previous hop's miner shows it when it pushes here
    attempt: int = 0  # the failover count in ``sid``
    dead: set[str] = field(default_factory=set)
    history: list[HopInput] = field(default_factory=list)


class RemotePipeline:
    """A session over a route. Use ``await RemotePipeline.create(route, max_length)`` and ``close()``."""

    def __init__(self, route: Route, max_length: int, batch: int = 1, timeout: float = 30.0,
                 session_base: str | None = None, block_hashes: Sequence[str] | None = None) -> None:
        self.route, self.max_length, self.batch, self.timeout = route, max_length, batch, timeout
        self.block_hashes = block_hashes  # the model's, one per block: a miner with other weights refuses
        # hop i's session on its miner is session_name(base_id, i, failovers); a chain session passes its own base
        self.base_id = session_base or uuid.uuid4().hex[:16]
        self._hops = [_HopState([p.url for p in h.peers], [h.start, h.end]) for h in route.hops]
        self._http: aiohttp.ClientSession | None = None
        self.step = 0
        self.recoveries: list[RecoveryEvent] = []
        self.stand_ins: list[StandIn] = []
        self.hop_ms: list[float] = []  # client-observed ms from sending a step to each hop's result
        self.compute_ms: list[float] = []  # miner-reported compute ms per hop of the last step
        self.bytes_per_step: list[int] = []  # activation bytes of the last step, per hop input + final output
        self._inputs = TensorStreams(route.client_scheme)  # the client's frames, step after step

    @classmethod
    async def create(cls, route: Route, max_length: int, batch: int = 1, timeout: float = 30.0,
                     session_base: str | None = None, block_hashes: Sequence[str] | None = None) -> RemotePipeline:
        pipe = cls(route, max_length, batch, timeout, session_base, block_hashes)
        pipe._http = aiohttp.ClientSession()
        try:
            for i in range(len(pipe._hops)):
                await pipe._attach(i, replay=False)
        except BaseException:
            await pipe.close()
            raise
        return pipe

    async def _open_on(self, i: int, url: str) -> None:
        assert self._http is not None
        hop = self._hops[i]
        conn = MinerConnection(url, self._http, self.timeout)
        await conn.connect()
        attempt = len(hop.dead)
        sid = session_name(self.base_id, i, attempt)
        try:
            req = {"op": "open", "session": sid, "max_length": self.max_length, "scheme": self.route.hop_scheme(i),
                   "batch": self.batch, "blocks": hop.blocks}
            if self.block_hashes is not None:
                req["block_hashes"] = list(self.block_hashes[hop.blocks[0] : hop.blocks[1]])
            if self.route.authorize is not None:
                req["auth"] = self.route.authorize(i, attempt, url)
            opened = await conn.request(req, "opened")
        except BaseException:
            await conn.close()
            raise
        hop.conn, hop.sid, hop.attempt = conn, sid, attempt
        hop.token = str(opened.get("token", ""))

    async def _attach(self, i: int, replay: bool) -> str:
        """Open a session on the first live miner of hop i; replay its history if asked."""
        hop = self._hops[i]
        errors = []
        for url in hop.urls:
            if url in hop.dead:
                continue
            try:
                await self._open_on(i, url)
                if replay:
                    await self._replay(i)
                if url != hop.urls[0]:
                    self.stand_ins.append(StandIn(i, url, hop.attempt, self.step))
                    if not replay:  # a failover logs miner_replaced itself
                        log.info("alternate_serving", hop=i, url=url)
                return url
            except (MinerUnavailable, StepError) as exc:
                log.warning("miner_unusable", hop=i, url=url, error=str(exc))
                errors.append(str(exc))
                hop.dead.add(url)
                if hop.conn is not None:
                    await hop.conn.close()
                    hop.conn = None
        why = f": {'; '.join(errors)}" if errors else ""
        raise RouteError(f"no live miner left for blocks {self.route.hops[i].start}:{self.route.hops[i].end}{why}")

    async def _replay(self, i: int) -> None:
        hop = self._hops[i]
        assert hop.conn is not None
        for k, rec in enumerate(hop.history[: self.step]):
            await hop.conn.send({"op": "step", "session": hop.sid, "step": k, "position": rec.position,
                                 "tensors": rec.frames, "values": rec.values, "replay": True})
            await hop.conn.receive_result(k)

    def _push_list(self, i: int) -> list[dict[str, str]]:
        if not self.route.push:
            return []
        return [{"url": h.conn.url, "session": h.sid, "token": h.token} for h in self._hops[i + 1 :]
                if h.conn is not None]

    async def run_step(self, tensors: dict[str, torch.Tensor], values: dict[str, Any] | None = None,
                       position: int = 0) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """One step through every hop; returns the last hop's decoded outputs."""
        frames = self._inputs.encode(tensors)
        cur = HopInput(position, frames, dict(values or {}))
        self.hop_ms, self.compute_ms = [], []
        self.bytes_per_step = [sum(len(f) for f in frames.values())]
        t0 = time.perf_counter()
        sent_by_push = False
        try:
            for i in range(len(self._hops)):
                hop = self._hops[i]
                hop.history.append(cur)
                reply = await self._hop_step(i, cur, already_pushed=sent_by_push)
                self.hop_ms.append((time.perf_counter() - t0) * 1000)
                self.compute_ms.append(float(reply.get("compute_ms", 0.0)))
                sent_by_push = bool(reply.get("pushed"))
                cur = HopInput(position, dict(reply["tensors"]), dict(reply.get("values") or {}))
                self.bytes_per_step.append(sum(len(f) for f in cur.frames.values()))
        except BaseException:
            for hop in self._hops:  # the step did not happen: keep histories aligned with self.step
                del hop.history[self.step :]
            raise
        self.step += 1
        out = {k: decode_tensor(f, 1 << 40) for k, f in cur.frames.items()}
        return out, cur.values

    async def _hop_step(self, i: int, inp: HopInput, already_pushed: bool) -> dict[str, Any]:
        hop = self._hops[i]
        while True:
            try:
                assert hop.conn is not None
                if not already_pushed:
                    await hop.conn.send({"op": "step", "session": hop.sid, "step": self.step,
                                         "position": inp.position, "tensors": inp.frames,
                                         "values": inp.values, "push": self._push_list(i)})
                return await hop.conn.receive_result(self.step)
            except (MinerUnavailable, StepError) as exc:
                if isinstance(exc, StepError) and exc.code not in _RETRYABLE:
                    raise
                await self._fail_over(i, exc)
                already_pushed = False

    async def _fail_over(self, i: int, exc: Exception) -> None:
        hop = self._hops[i]
        failed = hop.conn.url if hop.conn is not None else "?"
        log.warning("miner_failed", hop=i, url=failed, step=self.step, error=str(exc))
        hop.dead.add(failed)
        if hop.conn is not None:
            await hop.conn.close()
            hop.conn = None
        t0 = time.perf_counter()
        new_url = await self._attach(i, replay=True)
        ev = RecoveryEvent(i, self.step, failed, new_url, self.step, time.perf_counter() - t0)
        self.recoveries.append(ev)
        log.info("miner_replaced", hop=i, url=new_url, replayed=ev.replayed_steps, seconds=round(ev.seconds, 3))

    @property
    def bytes_sent(self) -> int:
        return sum(h.conn.bytes_sent for h in self._hops if h.conn is not None)

    async def close(self) -> None:
        """Close every hop's session and connection (best effort)."""
        for hop in self._hops:
            if hop.conn is not None:
                try:
                    await hop.conn.request({"op": "close", "session": hop.sid}, "closed")
                except (MinerUnavailable, StepError):
                    pass
                await hop.conn.close()
                hop.conn = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def __aenter__(self) -> RemotePipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
