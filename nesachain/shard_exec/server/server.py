"""The miner's aiohttp application: thin handlers around the stage runner and the session table.

    GET /ws                        WebSocket session protocol (``sockets``; messages: ``nesachain.protocol.messages``)
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

import structlog
import torch
from aiohttp import web

from nesachain.protocol.errors import WireError
from nesachain.protocol.frames import warm_codecs
from nesachain.protocol.messages import SCHEMES, ErrorCode
from nesachain.shard_exec.errors import ShardExecError
from nesachain.shard_exec.server.config import MinerConfig
from nesachain.shard_exec.server.logstore import LogStore
from nesachain.shard_exec.server.push import PeerPool
from nesachain.shard_exec.server.registration import HashCheck, MinerRegistrar, NullRegistrar
from nesachain.shard_exec.server.sessions import Session, SessionTable
from nesachain.shard_exec.server.sockets import SessionSockets
from nesachain.shard_exec.server.steplog_http import StepLogRoutes
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
                 registrar: MinerRegistrar | None = None, store: LogStore | None = None) -> None:
        self.cfg, self.runner, self.manifest = cfg, runner, manifest
        self.hashes = block_hashes(manifest)  # every block's, in order; a miner serves a slice
        self.registrar = registrar or NullRegistrar()
        self.table = SessionTable(cfg, store=store)
        self.peers = PeerPool(cfg.max_message_bytes)
        self.sockets = SessionSockets(self)
        self.bytes_per_token = 0  # of a step's inputs, uncompressed (set by ``create`` from the runner's probe)
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
        self._sweeper: asyncio.Task[None] | None = None

    @classmethod
    async def create(cls, cfg: MinerConfig, registrar: MinerRegistrar | None = None) -> Self:
        """Load only the served blocks (hashes checked) and measure throughput."""
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        manifest = read_manifest(cfg.shard_dir)
        store = None
        if registrar is not None and registrar.chain:
            if cfg.log_dir is None:
                raise ShardExecError("a chain miner needs a folder for its step logs (log_dir)")
            store = await asyncio.to_thread(LogStore.create, cfg.log_dir, cfg.log_quota_bytes)
        runner = await asyncio.to_thread(load_stage, cfg.shard_dir, cfg.start, cfg.end)
        server = cls(cfg, runner, manifest, registrar, store)
        server.tokens_per_s = await asyncio.to_thread(server._measure)
        server.bytes_per_token = _bytes_per_token(runner)
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
        app.router.add_get("/ws", self.sockets.handle)
        app.router.add_get("/info", self._info)
        app.router.add_get("/health", self._health)
        StepLogRoutes(self.table, self.registrar).add_to(app)
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
        await self.registrar.register(self)
        log.info("miner_listening", url=self.url, blocks=f"{self.cfg.start}:{self.cfg.end}",
                 tokens_per_s=round(self.tokens_per_s, 1))
        if not self.registrar.chain:
            log.warning("miner_off_chain", reason="started without --owner: any client may open sessions, step "
                        "logs are kept in memory (bounded) and readable by anyone; pushes only to --push-allow")
        return self.port

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.registrar.deregister()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self.warmer is not None:
            await self.warmer.close()
        await self.peers.close()
        # aiohttp waits for open handlers before it stops; a peer's push socket stays open as long as that
        # peer runs, so a miner would hang for the whole shutdown timeout. Close them: clients fail over.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.sockets.close_all(b"miner stopping"), STOP_TIMEOUT)
        if self._runner is not None:
            await self._runner.cleanup()
        if self.table.store is not None:
            self.table.store.close()
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
            self.bytes_per_token = _bytes_per_token(runner)  # another stage's inputs (a graph model's differ)
            closed = list(self.table.open)
            for sid in closed:
                self.table.remove(sid)
        await self.sockets.close_all(b"miner moved to other blocks")
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

    # -- what the registrar may do (``registration.ServerHandle``) --------------------------------------
    def step_log(self, name: str) -> list[dict[str, Any]] | None:
        records = self.table.log_of(name)
        return None if records is None else [r.public() for r in records]

    def logged_sessions(self) -> list[str]:
        return [] if self.table.store is None else self.table.store.names()

    def forget_log(self, name: str) -> None:
        if self.table.store is not None and name not in self.table.open:
            self.table.store.delete(name)

    # -- HTTP ----------------------------------------------------------------------------------------
    async def _info(self, request: web.Request) -> web.Response:
        return web.json_response(self.info())

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    # -- steps (the WebSocket protocol is ``sockets.SessionSockets``) ------------------------------------
    async def compute_step(self, sess: Session, tensors: dict[str, torch.Tensor], values: dict[str, Any],
                           position: int, n_tokens: int) -> tuple[dict[str, bytes], dict[str, Any], float]:
        """One step's compute, queued behind the others on the compute thread: (output frames, values, ms)."""
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
                return out_frames, out_v, (time.perf_counter() - t0) * 1000
        finally:
            sess.busy = False

    def step_finished(self) -> None:
        """After a step's answer is sent: plan warm-ups ahead of the next one when nothing else is queued."""
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


def _bytes_per_token(runner: StageRunner) -> int:
    """Uncompressed bytes of a step's inputs per token (per sample for a graph stage), from the runner's probe."""
    tensors, _, n = runner.probe()
    return max(1, sum(t.numel() * t.element_size() for t in tensors.values()) // max(1, n))
