"""The miner's aiohttp application: thin handlers around the stage runner and the session table.

    GET /ws                        WebSocket session protocol (``nesachain.protocol.messages``)
    GET /info                      model, served blocks, measured throughput, queue length, memory
    GET /health                    "ok"
    GET /sessions/{sid}/...        the step log (``nesachain.shard_exec.server.steplog_http``)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Self

import aiohttp
import structlog
import torch
from aiohttp import WSCloseCode, web

from nesachain.protocol.errors import WireError
from nesachain.protocol.frames import warm_codecs
from nesachain.protocol.messages import SCHEMES, ErrorCode, decode_message, encode_message, error_message
from nesachain.protocol.steplog import step_digest
from nesachain.shard_exec.errors import ShardExecError
from nesachain.shard_exec.server.config import MinerConfig
from nesachain.shard_exec.server.push import PeerPool
from nesachain.shard_exec.server.registration import HashCheck, MinerRegistrar, NullRegistrar
from nesachain.shard_exec.server.sessions import Session, SessionTable, StepRecord
from nesachain.shard_exec.server.steplog_http import StepLogRoutes
from nesachain.shard_exec.server.stepping import decode_open, decode_step
from nesachain.shard_exec.server.warm import StepWarmer, pinned_to_one_cpu
from nesachain.shard_exec.shard_files import block_hashes, block_range_problem, load_stage, read_manifest
from nesachain.shard_exec.stage import StageRunner

__all__ = ["MinerServer", "rss_bytes"]

log = structlog.get_logger(__name__)

STOP_TIMEOUT = 5.0  # seconds a stopping miner gives its open sockets and handlers


def rss_bytes() -> int:
    """Resident set size of this process."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class MinerServer:
    """Serves blocks [cfg.start, cfg.end) of one sharded model. Build with ``await MinerServer.create``."""

    def __init__(self, cfg: MinerConfig, runner: StageRunner, manifest: dict[str, Any],
                 registrar: MinerRegistrar | None = None) -> None:
        self.cfg, self.runner, self.manifest = cfg, runner, manifest
        self.hashes = block_hashes(manifest)  # every block's, in order; a miner serves a slice
        self.registrar = registrar or NullRegistrar()
        self.table = SessionTable(cfg)
        self.peers = PeerPool(cfg.max_message_bytes)
        self.compute_lock = asyncio.Lock()
        # steps and warm-ups share this one thread; warm-ups only where steps then run on the same core
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="compute")
        self.warmer = StepWarmer(self._warm_up) if cfg.warm_ahead and pinned_to_one_cpu() else None
        self._step_coming = threading.Event()  # set when a step arrives: a warm-up running then stops early
        self.queue_length = 0
        self.steps_served = 0
        self.tokens_per_s = 0.0
        self.port = cfg.port
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()  # open server-side WebSockets (clients, pushing peers)
        self._sweeper: asyncio.Task[None] | None = None

    @classmethod
    async def create(cls, cfg: MinerConfig, registrar: MinerRegistrar | None = None) -> Self:
        """Load only the served blocks (hashes checked) and measure throughput."""
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        manifest = read_manifest(cfg.shard_dir)
        runner = await asyncio.to_thread(load_stage, cfg.shard_dir, cfg.start, cfg.end)
        server = cls(cfg, runner, manifest, registrar)
        server.tokens_per_s = await asyncio.to_thread(server._measure)
        return server

    def _measure(self, runner: StageRunner | None = None) -> float:
        """Tokens (or samples) per second through the served blocks (or ``runner``'s), timed on probe inputs."""
        runner = runner if runner is not None else self.runner
        tensors, values, n = runner.probe()
        steps = max(1, self.cfg.probe_steps)
        state = runner.new_state(1, steps + 2)
        outputs, _ = runner.run(tensors, values, 0, state)  # warm-up
        warm_codecs(outputs)  # compile the codec now, not on a client's first step
        t0 = time.perf_counter()
        for i in range(steps):
            runner.run(tensors, values, (i + 1) * n if state is not None else 0, state)
        dt = time.perf_counter() - t0
        release = getattr(state, "release", None)
        if callable(release):
            release()
        return steps * n / dt if dt > 0 else 0.0

    # -- lifecycle ---------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.cfg.max_message_bytes)
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/info", self._info)
        app.router.add_get("/health", self._health)
        StepLogRoutes(self.table, self.cfg).add_to(app)
        return app

    async def start(self) -> int:
        """Listen; returns the bound port, then announces itself through the registrar."""
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=STOP_TIMEOUT)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.cfg.host, self.cfg.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None)
        if sockets:
            self.port = sockets[0].getsockname()[1]
        self._sweeper = asyncio.create_task(self._sweep())
        await self.registrar.register(self.info(), self.move_to)
        log.info("miner_listening", url=self.url, blocks=f"{self.cfg.start}:{self.cfg.end}",
                 tokens_per_s=round(self.tokens_per_s, 1))
        return self.port

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.registrar.deregister(self.info())
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self.warmer is not None:
            await self.warmer.close()
        await self.peers.close()
        # aiohttp waits for open handlers before it stops; a peer's push socket stays open as long as that
        # peer runs, so a miner would hang for the whole shutdown timeout. Close them: clients fail over.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(ws.close(code=WSCloseCode.GOING_AWAY, message=b"miner stopping")
                                                    for ws in list(self._sockets)), return_exceptions=True),
                                   STOP_TIMEOUT)
        if self._runner is not None:
            await self._runner.cleanup()
        self._pool.shutdown(wait=False)

    async def move_to(self, start: int, end: int, check: HashCheck | None = None) -> dict[str, Any]:
        """Serve blocks [start, end) instead (a rebalancing miner): ``check`` sees their hashes first and may
        refuse (raise); the new blocks load beside the old ones and are measured, then, between steps, replace
        them. Until the swap, a failure (raised) leaves the old blocks served. Open sessions belong to the
        old blocks: they are closed, and every socket with them (clients fail over). Returns the new /info."""
        if (start, end) == (self.cfg.start, self.cfg.end):
            return self.info()
        problem = block_range_problem(start, end, self.manifest["n_blocks"])
        if problem:
            raise ShardExecError(problem)
        if check is not None:
            await check({"blocks": [start, end], "block_hashes": self.hashes[start:end]})
        runner = await asyncio.to_thread(load_stage, self.cfg.shard_dir, start, end)
        async with self.compute_lock:
            tokens_per_s = await asyncio.to_thread(self._measure, runner)  # a failure here leaves the old blocks
            old = (self.cfg.start, self.cfg.end)
            self.runner, self.cfg = runner, dataclasses.replace(self.cfg, start=start, end=end)
            self.tokens_per_s = tokens_per_s
            closed = list(self.table.open)
            for sid in closed:
                self.table.remove(sid)
        await asyncio.gather(*(ws.close(code=WSCloseCode.GOING_AWAY, message=b"miner moved to other blocks")
                               for ws in list(self._sockets)), return_exceptions=True)
        log.info("miner_blocks_moved", old=f"{old[0]}:{old[1]}", new=f"{start}:{end}", closed_sessions=len(closed),
                 tokens_per_s=round(self.tokens_per_s, 1))
        return self.info()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, max(0.5, self.cfg.session_idle_timeout / 4)))
            for sid in self.table.expire_idle():
                log.info("session_expired", session=sid)
            self.table.trim_retention()

    @property
    def url(self) -> str:
        return f"ws://{self.cfg.host}:{self.port}/ws"

    def info(self) -> dict[str, Any]:
        n_blocks = self.cfg.end - self.cfg.start
        blocks = self.manifest["blocks"][self.cfg.start : self.cfg.end]
        schemes = list(SCHEMES)
        return {
            "model_id": self.manifest["model_id"], "architecture": self.manifest["architecture"],
            "blocks": [self.cfg.start, self.cfg.end], "n_blocks": self.manifest["n_blocks"],
            "units": [blocks[0]["units"][0], blocks[-1]["units"][1]],
            "block_hashes": self.hashes[self.cfg.start : self.cfg.end],
            "throughput_tokens_per_s": self.tokens_per_s,
            "throughput_tokens_per_s_per_block": self.tokens_per_s * n_blocks,
            "queue_length": self.queue_length, "open_sessions": len(self.table.open),
            "steps_served": self.steps_served, "reserved_bytes": self.table.reserved,
            "warm_ahead": self.warmer is not None, "warm_ups": self.warmer.warm_ups if self.warmer is not None else 0,
            "memory_budget": self.cfg.memory_budget, "max_length": self.cfg.max_length,
            "param_bytes": self.runner.param_bytes, "rss_bytes": rss_bytes(),
            "schemes": schemes, "url": self.url, "port": self.port,
        }

    # -- HTTP ----------------------------------------------------------------------------------------
    async def _info(self, request: web.Request) -> web.Response:
        return web.json_response(self.info())

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    # -- WebSocket -----------------------------------------------------------------------------------
    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=2 * self.cfg.max_message_bytes)
        await ws.prepare(request)
        owned: set[str] = set()
        self._sockets.add(ws)
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    await self._dispatch(ws, msg.data, owned)
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    await ws.send_bytes(error_message(ErrorCode.MALFORMED, "send binary msgpack messages"))
        finally:
            self._sockets.discard(ws)
            for sid in owned:
                sess = self.table.open.get(sid)
                if sess is not None and sess.owner is ws:
                    self.table.remove(sid)
        return ws

    async def _dispatch(self, ws: web.WebSocketResponse, data: bytes, owned: set[str]) -> None:
        sid: Any = None
        step: Any = None
        try:
            req = decode_message(data, self.cfg.max_message_bytes)
            sid, step = req.get("session"), req.get("step")
            op = req["op"]
            if op == "open":
                await ws.send_bytes(self._open(ws, req, owned))
            elif op == "step":
                await self._step(ws, req)
            elif op == "close":
                self.table.get(sid)
                self.table.remove(sid)
                owned.discard(sid)
                await ws.send_bytes(encode_message({"op": "closed", "session": sid}))
            elif op == "ping":
                await ws.send_bytes(encode_message({"op": "pong", "queue_length": self.queue_length}))
            else:
                raise WireError(ErrorCode.BAD_REQUEST, f"unknown op {op!r}")
        except WireError as exc:
            target = self._error_target(ws, sid)
            await target.send_bytes(error_message(exc.code, exc.message, _s(sid), _i(step)))
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            pass
        except Exception as exc:  # keep serving other sessions; report without a traceback
            log.exception("step_internal_error", session=_s(sid))
            with contextlib.suppress(Exception):
                await ws.send_bytes(error_message(ErrorCode.INTERNAL, type(exc).__name__, _s(sid), _i(step)))

    def _error_target(self, ws: web.WebSocketResponse, sid: Any) -> web.WebSocketResponse:
        """Errors about a pushed step go to the session's owner (the client), not to the pushing peer."""
        sess = self.table.open.get(sid) if isinstance(sid, str) else None
        if sess is not None and sess.owner is not ws and not sess.owner.closed:
            return sess.owner  # type: ignore[no-any-return]
        return ws

    def _open(self, ws: web.WebSocketResponse, req: dict[str, Any], owned: set[str]) -> bytes:
        sid, max_length, batch, scheme = decode_open(req, self.cfg.max_length, self.cfg.start, self.cfg.end,
                                                     self.hashes[self.cfg.start : self.cfg.end])
        reserved = self.runner.session_bytes(batch, max_length)
        now = self.table.clock()
        sess = Session(sid, ws, batch, max_length, scheme, reserved, None, created=now, last_used=now)
        for victim in self.table.add(sess):
            log.info("session_evicted", session=victim)
        sess.state = self.runner.new_state(batch, max_length)
        owned.add(sid)
        return encode_message({"op": "opened", "session": sid, "reserved_bytes": reserved})

    async def _step(self, ws: web.WebSocketResponse, req: dict[str, Any]) -> None:
        sess = self.table.get(req.get("session"))
        step, position, frames, values, tensors = decode_step(req, self.cfg.max_tensor_bytes)
        if step == sess.next_step - 1 and sess.log and await self._resend(sess, ws, step, frames, values):
            return
        if step != sess.next_step:
            raise WireError(ErrorCode.OUT_OF_ORDER, f"step {step} but session expects {sess.next_step}")
        if sess.busy:
            raise WireError(ErrorCode.OUT_OF_ORDER, f"step {sess.next_step} is still running")
        n_tokens = self.runner.n_tokens(tensors)
        if sess.tokens + n_tokens > sess.max_length:
            raise WireError(ErrorCode.PAST_MAX_LENGTH,
                            f"{sess.tokens} + {n_tokens} tokens exceed the session's max_length {sess.max_length}")
        if self.warmer is not None:
            self.warmer.arrived(asyncio.get_running_loop().time(), decode=n_tokens == 1)
            self._step_coming.set()
        sess.busy = True
        try:
            self.queue_length += 1
            async with self.compute_lock:
                self.queue_length -= 1
                if self.table.open.get(sess.sid) is not sess:  # closed while it waited (the miner moved)
                    raise WireError(ErrorCode.UNKNOWN_SESSION, f"session {sess.sid!r} was closed")
                t0 = time.perf_counter()
                out_frames, out_v = await asyncio.get_running_loop().run_in_executor(
                    self._pool, self._compute, sess, tensors, values, position)
                compute_ms = (time.perf_counter() - t0) * 1000
        finally:
            sess.busy = False
        sess.next_step += 1
        sess.tokens += n_tokens
        sess.last_used = self.table.clock()
        self.steps_served += 1
        self.table.record(sess, StepRecord(step, position, n_tokens, step_digest(frames, values),
                                           step_digest(out_frames, out_v), self.table.wall_clock(), frames,
                                           out_frames, out_v, values))
        pushed = await self._push(req, step, position, out_frames, out_v)
        reply = {"op": "result", "session": sess.sid, "step": step, "tensors": out_frames, "values": out_v,
                 "pushed": pushed, "compute_ms": compute_ms}
        target = sess.owner if not sess.owner.closed else ws
        await target.send_bytes(encode_message(reply))
        if self.warmer is not None and not self.queue_length:
            self.warmer.step_done(asyncio.get_running_loop())

    async def _warm_up(self) -> None:
        """One warm-up of the compute path, on the compute thread, unless a step is running."""
        if self.compute_lock.locked():
            return
        await asyncio.get_running_loop().run_in_executor(self._pool, self.runner.warm, self._step_coming.is_set)

    def _compute(self, sess: Session, tensors: dict[str, torch.Tensor], values: dict[str, Any],
                 position: int) -> tuple[dict[str, bytes], dict[str, Any]]:
        """One step's compute and its outputs' frames, in one worker thread (one hand-off, not two)."""
        self._step_coming.clear()  # no warm-up runs during a step; the next ones are for the next step
        out_t, out_v = self.run_stage(sess, tensors, values, position)
        return sess.outputs.encode(out_t), out_v

    def run_stage(self, sess: Session, tensors: dict[str, torch.Tensor], values: dict[str, Any],
                  position: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """A step's compute on the served blocks, on the compute thread. The one place a step's outputs are
        made: tests put a cheating miner's outputs here (a subclass), no flag of a production entry point."""
        return self.runner.run(tensors, values, position, sess.state)

    async def _resend(self, sess: Session, ws: web.WebSocketResponse, step: int, frames: dict[str, bytes],
                      values: dict[str, Any]) -> bool:
        """A repeated last step with identical input (a retry after a failover) gets the same answer."""
        rec = sess.log[-1]
        if rec.step != step or rec.out_frames is None or rec.in_digest != step_digest(frames, values):
            return False
        reply = {"op": "result", "session": sess.sid, "step": step, "tensors": rec.out_frames,
                 "values": rec.out_values or {}, "pushed": False, "duplicate": True, "compute_ms": 0.0}
        await (sess.owner if not sess.owner.closed else ws).send_bytes(encode_message(reply))
        return True

    async def _push(self, req: dict[str, Any], step: int, position: int, frames: dict[str, bytes],
                    values: dict[str, Any]) -> bool:
        push = req.get("push") or []
        if req.get("replay") or not isinstance(push, list) or not push or not isinstance(push[0], dict):
            return False
        nxt = push[0]
        msg = {"op": "step", "session": nxt.get("session"), "step": step, "position": position,
               "tensors": frames, "values": values, "push": push[1:], "pushed": True}
        try:
            await self.peers.send(str(nxt.get("url")), encode_message(msg))
        except ShardExecError as exc:
            log.warning("push_failed", peer=nxt.get("url"), error=str(exc))
            return False
        return True


def _s(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _i(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None
