"""The chain side of `nesad miner start`: a ``MinerRegistrar`` for the shard server.

When the server listens, ``register`` checks that the shards it loaded are the ones registered on
chain (block by block sha256) and refuses to start otherwise; then it runs, beside the server,
the chain agent (registration, heartbeats), the result agent (commit–reveal of each session's
step-log root, read from the server's log store) and the pruner (drops the logs of settled sessions).
Until then it rules, through ``gate.ChainGate``, on every session opened, step log read and push.
``deregister`` stops them. When the owner unbonds the miner, the chain agent stops
heartbeating; once every session that names the miner has settled, ``wait_done`` returns and the
miner stops.

A miner started with ``num_blocks`` instead of a block range starts where ``initial_blocks`` says
(its registration on chain, or ``placement.choose_blocks``), and its agent rebalances it: when the
agent moves it (MsgUpdateMiner), the server checks the new blocks' hashes against the chain, loads
them and closes the sessions of the old ones (``MinerServer.move_to``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import structlog

from nesachain.errors import NesaError
from nesachain.miner.chain_agent import ChainAgent, MinerSpec, run_chain_agent
from nesachain.miner.gate import ChainGate
from nesachain.miner.placement import choose_blocks
from nesachain.miner.results import ResultAgent
from nesachain.protocol.errors import WireError
from nesachain.protocol.messages import ErrorCode
from nesachain.protocol.sessions import parse_chain_session_name
from nesachain.shard_exec.server.registration import Admission, ServerHandle
from nesachain.wallet import queries
from nesachain.wallet.keyring import Keyring
from nesachain.wallet.rpc import CometRPC
from nesachain.wallet.view import ChainView

__all__ = ["ChainRegistrar"]

log = structlog.get_logger("nesachain.miner")
PRUNE_EVERY = 10  # polls between passes over the stored step logs


class ChainRegistrar:
    chain = True  # every session on this miner is a chain session

    def __init__(self, rpc_url: str, keyring: Keyring, owner: str, miner: str, model_id: str, bond: int,
                 memory_mb: int, state_file: Path, poll_s: float = 1.0, num_blocks: int | None = None,
                 result_agent: type[ResultAgent] = ResultAgent, keep_settled_logs_s: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rpc_url, self.keyring, self.owner, self.miner = rpc_url, keyring, owner, miner
        self.model_id, self.bond, self.memory_mb = model_id, bond, memory_mb
        self.num_blocks = num_blocks  # None: the blocks given at start, kept; else chosen and rebalanced
        self.state_file, self.poll_s = state_file, poll_s
        self.result_agent = result_agent  # tests pass a misbehaving subclass
        self.keep_settled_logs_s, self._clock = keep_settled_logs_s, clock
        self._settled_seen: dict[str, float] = {}  # session name -> when the pruner first saw it settled
        self._stop = asyncio.Event()
        self._done = asyncio.Event()  # unbonded, and every session it served has settled
        self._tasks: list[asyncio.Task[None]] = []
        self.gate: ChainGate | None = None  # made by ``register`` (it reads the miner's key)

    def check_hashes(self, rpc: CometRPC, info: dict[str, Any]) -> None:
        start, end = info["blocks"]
        model = queries.model(rpc, self.model_id)
        registered = model["block_hashes"][start:end]
        if registered != info["block_hashes"]:
            bad = [start + i for i, (a, b) in enumerate(zip(registered, info["block_hashes"], strict=False)) if a != b]
            raise NesaError(f"shards differ from {self.model_id}'s hashes on chain (blocks {bad or 'count'}): "
                            f"refusing to serve")

    def initial_blocks(self, n_blocks: int) -> tuple[int, int]:
        """Where a miner with ``num_blocks`` starts: the blocks it is registered for on chain, else those
        ``placement.choose_blocks`` picks among the model's active miners."""
        assert self.num_blocks is not None
        if not 1 <= self.num_blocks <= n_blocks:  # before asking the chain anything
            raise NesaError(f"--num-blocks must be in 1..{n_blocks}, got {self.num_blocks}")
        spec = MinerSpec(self.model_id, "", self.bond, self.memory_mb, 1, num_blocks=self.num_blocks)
        agent = ChainAgent.from_keyring(self.rpc_url, self.keyring, self.owner, self.miner, spec)
        on_chain = agent.model_blocks()
        if on_chain != n_blocks:
            raise NesaError(f"{self.model_id} has {on_chain} blocks on chain, the shard folder {n_blocks}")
        current = agent.registration()
        if current is not None and current["model_id"] == self.model_id and current["status"] != "unbonding":
            return int(current["block_start"]), int(current["block_end"])
        return choose_blocks(agent.active_spans(), n_blocks, self.num_blocks)

    async def register(self, server: ServerHandle) -> None:
        rpc = CometRPC(self.rpc_url)
        info = server.info()
        self.gate = ChainGate(rpc, (await asyncio.to_thread(self.keyring.show, self.miner)).address)
        await asyncio.to_thread(self.check_hashes, rpc, info)
        start, end = info["blocks"]
        endpoint = urlparse(str(info["url"])).netloc  # host:port; clients add ws:// or http://
        per_block = float(info["throughput_tokens_per_s_per_block"])
        spec = MinerSpec(self.model_id, endpoint, self.bond, self.memory_mb, max(1, int(per_block * 1000)),
                         blocks=None if self.num_blocks else (start, end), num_blocks=self.num_blocks)

        async def check(candidate: dict[str, Any]) -> None:
            await asyncio.to_thread(self.check_hashes, rpc, candidate)

        async def on_move(new_start: int, new_end: int) -> None:
            await server.move_to(new_start, new_end, check)

        registered: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(run_chain_agent(self.rpc_url, self.keyring, self.owner, self.miner, spec,
                                                   on_move=on_move if self.num_blocks else None, stop=self._stop,
                                                   serving=(start, end), registered=registered))
        self._tasks.append(task)
        await registered  # a refusal (a bond below the minimum, another owner's key) stops the miner's start
        chain = ChainView(rpc, self.keyring.signing_key(self.owner))
        miner_address = self.keyring.show(self.miner).address
        self._tasks.append(asyncio.create_task(self._after_agent(task, chain, miner_address)))
        agent = self.result_agent(chain, miner_address, server.step_log, self.state_file)
        self._tasks.append(asyncio.create_task(self._results(agent)))
        self._tasks.append(asyncio.create_task(self._prune(server, rpc)))
        log.info("miner_on_chain", miner=miner_address, model=self.model_id, blocks=[start, end],
                 rebalancing=bool(self.num_blocks))

    async def _results(self, agent: ResultAgent) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.to_thread(agent.tick)
            except NesaError as exc:
                log.warning("result_agent_pass_failed", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.poll_s)

    async def _after_agent(self, agent: asyncio.Task[None], chain: ChainView, miner: str) -> None:
        """The agent returns by itself when the owner has unbonded the miner. The miner then serves on
        (it answers challenges and data requests, and its result agent reveals) until every session
        that names it has settled, and stops."""
        try:
            await agent
        except Exception as exc:  # after the registration: logged, and the miner serves on
            log.error("chain_agent_stopped", error=str(exc))
            return
        while not self._stop.is_set():
            try:
                pending = await asyncio.to_thread(chain.count_sessions, "unsettled", miner)
            except NesaError as exc:
                log.warning("unsettled_sessions_unknown", error=str(exc))
            else:
                if not pending:
                    log.warning("miner_done", miner=miner, reason="unbonded on chain, and every session it "
                                "served has settled")
                    self._done.set()
                    return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.poll_s)

    async def _prune(self, server: ServerHandle, rpc: CometRPC) -> None:
        """Drop the step logs of sessions that have settled on chain (their commitments and challenges are
        over), so the store's quota goes to new sessions; a log of a session the chain does not know (never
        opened there) goes too, at once; a settled one ``keep_settled_logs_s`` after the pruner first saw it
        settled. Every ``PRUNE_EVERY`` polls."""
        polls = 0
        while not self._stop.is_set():
            if polls % PRUNE_EVERY == 0:
                try:
                    names = await asyncio.to_thread(server.logged_sessions)
                    live = set(names)
                    self._settled_seen = {n: t for n, t in self._settled_seen.items() if n in live}
                    for name in names:
                        if name not in self._settled_seen:  # settled stays settled: the node is asked until then
                            parsed = parse_chain_session_name(name)
                            s = None if parsed is None else await asyncio.to_thread(queries.session, rpc, parsed[0])
                            if s is not None and s["status"] != "settled":
                                continue
                            if s is not None:
                                self._settled_seen[name] = self._clock()
                        if name in self._settled_seen and \
                                self._clock() - self._settled_seen[name] < self.keep_settled_logs_s:
                            continue
                        server.forget_log(name)
                        self._settled_seen.pop(name, None)
                        log.info("step_log_pruned", session=name)
                except NesaError as exc:
                    log.warning("step_log_prune_failed", error=str(exc))
            polls += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.poll_s)

    async def wait_done(self) -> None:
        await self._done.wait()

    def _ready(self) -> ChainGate:
        if self.gate is None:
            raise WireError(ErrorCode.FORBIDDEN, "this miner is still registering on chain")
        return self.gate

    async def admit_open(self, name: str, auth: Any, peer: str) -> Admission:
        return await asyncio.to_thread(self._ready().admit_open, name, auth)

    async def admit_read(self, name: str, auth_header: str | None) -> None:
        await asyncio.to_thread(self._ready().admit_read, name, auth_header)

    async def may_push(self, name: str, url: str) -> bool | None:
        return await asyncio.to_thread(self._ready().may_push, name, url)

    async def deregister(self) -> None:
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, timeout=10)

