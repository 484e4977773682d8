"""The miner's chain agent: register (or check the registration), send heartbeats, rebalance.

``nesad miner start`` (``nesachain.miner.start``) runs the shard server and, beside it,
``run_chain_agent(...)``. The agent only talks to a CometBFT node over RPC (it imports wire types,
never keepers). Each tx is sent and awaited before the next (one account, one sequence).

    blocks = await ChainAgent.create(rpc_url, keyring, "owner", "miner0", spec).ensure_registered()
    await run_chain_agent(rpc_url, keyring, "owner", "miner0", spec, on_move=reload_shards)

When ``spec.blocks`` is None the agent picks blocks as Petals does (``placement.choose_blocks``)
and re-checks every ``rebalance_every`` heartbeats, moving with MsgUpdateMiner when
``placement.rebalance`` says the swarm's minimum throughput would improve by more than 1/0.75.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import structlog
from nacl.signing import SigningKey

from nesachain.errors import NesaError, RPCError
from nesachain.miner.placement import Span, choose_blocks, rebalance
from nesachain.modules.staking.errors import CODESPACE, ErrMinerUnbonding, ErrUnknownMiner
from nesachain.modules.staking.msgs import (
    MsgMinerHeartbeat,
    MsgRegisterMiner,
    MsgUpdateMiner,
    miner_pop_bytes,
)
from nesachain.wallet import queries
from nesachain.wallet.keyring import Keyring
from nesachain.wallet.rpc import CometRPC
from nesachain.wallet.txs import TxOutcome, account_of
from nesachain.wallet.view import ChainView

__all__ = ["ChainAgent", "ChainAgentError", "MinerGone", "MinerSpec", "run_chain_agent"]

log = structlog.get_logger("nesachain.miner.chain_agent")


class ChainAgentError(NesaError):
    """The chain refused a miner tx, or the registration on chain does not match this miner."""


class MinerGone(ChainAgentError):
    """The chain no longer has this miner bonded: its owner unbonded it (or the unbonding is over)."""


@dataclass(frozen=True)
class MinerSpec:
    model_id: str
    endpoint: str
    bond: int
    memory_mb: int
    throughput: int  # milli forward passes per second per block
    blocks: tuple[int, int] | None = None  # [start, end); None: choose (then num_blocks is needed)
    num_blocks: int | None = None
    balance_quality: Fraction = Fraction(3, 4)


class ChainAgent:
    """Synchronous steps (each one or two RPC calls); ``run_chain_agent`` schedules them."""

    def __init__(self, rpc: CometRPC, owner: SigningKey, miner: SigningKey, spec: MinerSpec) -> None:
        if bytes(owner.verify_key) == bytes(miner.verify_key):
            raise ChainAgentError("the miner key must differ from the owner's account key")
        if spec.blocks is None and not spec.num_blocks:
            raise ChainAgentError("give blocks, or num_blocks to let the agent choose them")
        self.rpc = rpc
        self.owner = owner
        self.chain = ChainView(rpc, owner)  # sends as the owner, retrying a sequence another process took
        self.miner_key = miner
        self.spec = spec
        self.owner_address = account_of(owner)
        self.miner_address = account_of(miner)

    @classmethod
    def from_keyring(cls, rpc_url: str, keyring: Keyring, owner: str, miner: str, spec: MinerSpec) -> ChainAgent:
        return cls(CometRPC(rpc_url), keyring.signing_key(owner), keyring.signing_key(miner), spec)

    # reads
    def registration(self) -> dict[str, Any] | None:
        return queries.miner(self.rpc, self.miner_address)

    def heartbeat_timeout(self) -> int:
        return int(queries.staking_params(self.rpc)["miner_heartbeat_timeout"])

    def model_blocks(self) -> int:
        for m in queries.models(self.rpc):
            if m["model_id"] == self.spec.model_id:
                return int(m["n_blocks"])
        raise ChainAgentError(f"model {self.spec.model_id!r} is not registered on chain")

    def active_spans(self) -> list[Span]:
        return [Span(m["miner"], m["block_start"], m["block_end"], m["throughput"])
                for m in queries.miners(self.rpc, self.spec.model_id, "active")]

    # writes
    def _send(self, msg: Any) -> TxOutcome:
        out = self.chain.send([msg])
        if not out.ok:
            gone = out.codespace == CODESPACE and out.code in (ErrUnknownMiner.code, ErrMinerUnbonding.code)
            raise (MinerGone if gone else ChainAgentError)(
                f"{msg.TYPE} refused: code {out.code} ({out.codespace}): {out.log}")
        return out

    def ensure_registered(self, serving: tuple[int, int] | None = None) -> tuple[int, int]:
        """Register if the chain does not know this miner key; otherwise check it is ours and
        serving the configured blocks (moving it if they differ). Returns the blocks served. A
        fresh registration without configured blocks takes ``serving`` (what the server has loaded)
        if given, else the blocks ``placement.choose_blocks`` picks."""
        current = self.registration()
        if current is not None:
            if current["owner"] != self.owner_address or current["model_id"] != self.spec.model_id:
                raise ChainAgentError(f"miner {self.miner_address} is registered to {current['owner']} for "
                                      f"{current['model_id']!r}")
            if current["status"] == "unbonding":
                raise ChainAgentError(f"miner {self.miner_address} is unbonding; use a new miner key")
            blocks = (current["block_start"], current["block_end"])
            if self.spec.blocks is not None and self.spec.blocks != blocks:
                return self.move(self.spec.blocks)
            self.heartbeat()
            return blocks
        blocks = self.spec.blocks or serving or choose_blocks(self.active_spans(), self.model_blocks(),
                                                              self.spec.num_blocks or 1)
        chain_id = self.rpc.chain_id()
        pop = bytes(self.miner_key.sign(miner_pop_bytes(chain_id, self.owner_address)).signature)
        s = self.spec
        self._send(MsgRegisterMiner(self.owner_address, bytes(self.miner_key.verify_key), pop, s.endpoint, s.bond,
                                    s.model_id, blocks[0], blocks[1], s.memory_mb, s.throughput))
        log.info("miner_registered", miner=self.miner_address, model=s.model_id, blocks=blocks)
        return blocks

    def heartbeat(self) -> TxOutcome:
        return self._send(MsgMinerHeartbeat(self.owner_address, self.miner_address))

    def move(self, blocks: tuple[int, int]) -> tuple[int, int]:
        s = self.spec
        self._send(MsgUpdateMiner(self.owner_address, self.miner_address, s.endpoint, blocks[0], blocks[1],
                                  s.memory_mb, s.throughput))
        log.info("miner_moved", miner=self.miner_address, blocks=blocks)
        return blocks

    def maybe_rebalance(self) -> tuple[int, int] | None:
        """Move if the swarm would gain enough; returns the new blocks, or None when staying."""
        if self.spec.blocks is not None:
            return None  # pinned by the operator
        spans = self.active_spans()
        if self.miner_address not in {s.miner for s in spans}:
            return None
        target = rebalance(self.miner_address, spans, self.model_blocks(), self.spec.balance_quality)
        return None if target is None else self.move(target)


async def run_chain_agent(
    rpc_url: str,
    keyring: Keyring,
    owner: str,
    miner: str,
    spec: MinerSpec,
    *,
    on_move: Callable[[int, int], Awaitable[None]] | None = None,
    stop: asyncio.Event | None = None,
    poll_s: float = 1.0,
    rebalance_every: int = 3,
    serving: tuple[int, int] | None = None,
    registered: asyncio.Future[tuple[int, int]] | None = None,
) -> None:
    """Register (or check), then heartbeat every third of the chain's heartbeat timeout (in
    blocks) and, every ``rebalance_every`` heartbeats, rebalance; ``on_move(start, end)`` is awaited
    after registration and after each move so the server can load its new blocks; ``serving``
    names the blocks the server has loaded (a fresh registration takes them). A move the server
    cannot make (``on_move`` raises) is undone on chain, retried at each poll until the chain takes
    it, and the agent stops rebalancing: the chain keeps naming the blocks the miner serves.
    Returns when ``stop`` is set, or when the chain no longer has the miner bonded (its owner unbonded
    it). RPC failures and refused heartbeats are logged and retried at the next poll; a refused
    registration raises ChainAgentError. ``registered``, if given, gets the blocks once the chain has
    the miner (and the server serves them), or the error that stopped the registration."""
    agent = ChainAgent.from_keyring(rpc_url, keyring, owner, miner, spec)
    stop = stop or asyncio.Event()
    undo: tuple[int, int] | None = None  # the served blocks, while the chain still names a failed move's
    rebalancing = True

    async def follow(target: tuple[int, int], current: tuple[int, int] | None) -> tuple[int, int]:
        """Have the server load ``target``; on failure the loop undoes the move on chain. Returns the
        blocks served after."""
        nonlocal undo, rebalancing
        try:
            if on_move is not None:
                await on_move(*target)
        except Exception as exc:  # whatever stopped the load, the chain must not keep the move
            if current is None:
                raise
            log.error("miner_move_failed", blocks=target, serving=current, error=str(exc))
            undo, rebalancing = current, False
            return current
        return target

    try:
        blocks = await follow(await asyncio.to_thread(agent.ensure_registered, serving), serving)
    except Exception as exc:
        if registered is not None and not registered.done():
            registered.set_exception(exc)
        raise
    if registered is not None and not registered.done():
        registered.set_result(blocks)
    every: int | None = None  # asked in the loop, so a node down just after registration is retried too
    last_beat = beats = 0
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=poll_s)
            break
        except TimeoutError:
            pass
        try:
            if undo is not None:  # an RPC failure keeps it for the next poll, a refusal drops it
                target, undo = undo, None
                try:
                    await asyncio.to_thread(agent.move, target)
                except RPCError:
                    undo = target
                    raise
                continue
            height = await asyncio.to_thread(agent.rpc.height)
            if every is None:  # registration (or its check) was a heartbeat
                every, last_beat = max(1, await asyncio.to_thread(agent.heartbeat_timeout) // 3), height
            if height - last_beat < every:
                continue
            await asyncio.to_thread(agent.heartbeat)
            last_beat, beats = height, beats + 1
            if rebalancing and beats % rebalance_every == 0:
                moved = await asyncio.to_thread(agent.maybe_rebalance)
                if moved is not None:
                    blocks = await follow(moved, blocks)
        except RPCError as exc:
            log.warning("chain_agent_rpc_error", error=str(exc))
        except MinerGone as exc:  # unbonded by its owner: nothing left to heartbeat
            log.warning("miner_unbonded", miner=agent.miner_address, error=str(exc))
            return
        except ChainAgentError as exc:  # a refused heartbeat is retried at the next poll, not fatal
            log.warning("chain_agent_refused", error=str(exc))
