"""The chain agent (``nesachain.miner.chain_agent``) against an in-process chain behind a fake RPC:
registration, the check of an existing registration, heartbeats, and rebalancing to an uncovered range.
``run_chain_agent`` runs on virtual time (``tests.virtual_time``): its polls and the test's blocks
interleave the same way on every run, however loaded the machine."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from nesachain.errors import RPCError
from nesachain.miner.chain_agent import ChainAgent, ChainAgentError, MinerSpec, run_chain_agent
from nesachain.modules.staking.msgs import MsgUnbondMiner
from nesachain.types.encoding import encode
from nesachain.types.sdk_errors import ErrInvalidSequence
from nesachain.wallet.keyring import Keyring
from nesachain.wallet.rpc import BroadcastResult
from tests.modules.staking.conftest import Harness, addr, key, miner_key
from tests.virtual_time import run_on_virtual_time
from tests.wallet.fakes import FakeRPC


@pytest.fixture
def h() -> Harness:
    return Harness()


def agent(h: Harness, owner: int, m: int, **spec: Any) -> ChainAgent:
    defaults: dict[str, Any] = {"model_id": "smollm2-135m", "endpoint": f"127.0.0.1:{7000 + m}",
                                "bond": 2_000_000, "memory_mb": 4096, "throughput": 1000}
    return ChainAgent(FakeRPC(h), key(owner), miner_key(m), MinerSpec(**{**defaults, **spec}))  # type: ignore[arg-type]


def test_agent_registers_chooses_uncovered_blocks_and_checks_an_existing_registration(h: Harness) -> None:
    h.block()
    assert agent(h, 4, 0, num_blocks=10).ensure_registered() == (0, 10)
    assert agent(h, 5, 1, num_blocks=10).ensure_registered() == (10, 20)
    assert agent(h, 6, 2, num_blocks=10).ensure_registered() == (20, 30)
    again = agent(h, 4, 0, num_blocks=10)
    before = h.height
    assert again.ensure_registered() == (0, 10)  # already registered: a heartbeat, no new miner
    assert h.height == before + 1 and h.q("staking/miners")["total"] == 3
    with pytest.raises(ChainAgentError, match="registered to"):
        agent(h, 5, 0, num_blocks=10).ensure_registered()


def test_a_registration_another_process_raced_for_the_owners_sequence_is_retried(h: Harness) -> None:
    class Raced(FakeRPC):  # the owner's next sequence was taken once by another signer's tx in the mempool
        refused = 0

        def broadcast_tx_sync(self, tx: bytes) -> BroadcastResult:
            if not self.refused:
                self.refused += 1
                return BroadcastResult("0" * 64, ErrInvalidSequence.code, "sdk", "expects sequence 1, tx has 0",
                                       encode({"expected_sequence": 1}))
            return super().broadcast_tx_sync(tx)

    h.block()
    rpc = Raced(h)
    a = ChainAgent(rpc, key(4), miner_key(0), MinerSpec("smollm2-135m", "127.0.0.1:7000", 2_000_000, 4096, 1000,
                                                         num_blocks=10))  # type: ignore[arg-type]
    assert a.ensure_registered() == (0, 10) and rpc.refused == 1


def test_a_fresh_registration_takes_the_blocks_the_server_loaded(h: Harness) -> None:
    h.block()
    assert agent(h, 4, 0, num_blocks=10).ensure_registered(serving=(20, 30)) == (20, 30)  # not the 0:10 gap
    assert agent(h, 5, 1, num_blocks=10).ensure_registered() == (0, 10)
    assert agent(h, 4, 0, num_blocks=10).ensure_registered(serving=(10, 20)) == (20, 30)  # registered: kept


def test_agent_rebalances_a_redundant_miner_to_the_uncovered_range(h: Harness) -> None:
    h.block()
    agent(h, 4, 0, blocks=(0, 10)).ensure_registered()
    agent(h, 5, 1, blocks=(10, 20)).ensure_registered()
    third = agent(h, 6, 2, blocks=(0, 10))
    third.ensure_registered()
    floating = agent(h, 6, 2, num_blocks=10)  # same miner, no longer pinned
    assert floating.maybe_rebalance() == (20, 30)
    m = h.q("staking/miner", address=floating.miner_address)
    assert (m["block_start"], m["block_end"]) == (20, 30)
    assert floating.maybe_rebalance() is None  # balanced now


def test_agent_refuses_the_owner_key_as_miner_key(h: Harness) -> None:
    with pytest.raises(ChainAgentError):
        ChainAgent(FakeRPC(h), key(4), key(4), MinerSpec("m", "e", 1, 1, 1, blocks=(0, 1)))  # type: ignore[arg-type]


def fake_chain(h: Harness, tmp_path: Any, monkeypatch: Any, owner: int, m: int) -> tuple[Keyring, FakeRPC]:
    """A keyring with ``owner`` and ``miner``, and run_chain_agent's CometRPC replaced by a FakeRPC."""
    ring = Keyring(tmp_path, "test")
    ring.add("owner", bytes(key(owner)))
    ring.add("miner", bytes(miner_key(m)))
    rpc = FakeRPC(h)
    monkeypatch.setattr("nesachain.miner.chain_agent.CometRPC", lambda url: rpc)
    return ring, rpc


def run_agent(ring: Keyring, spec: MinerSpec, on_move: Any, tick: Callable[[], None], rounds: int) -> None:
    """run_chain_agent polling every 10 ms while ``tick`` advances the chain ``rounds`` times, every 20 ms;
    then stop it (all on virtual time)."""
    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run_chain_agent("fake", ring, "owner", "miner", spec, on_move=on_move, stop=stop,
                                                   poll_s=0.01))
        for _ in range(rounds):
            await asyncio.sleep(0.02)
            tick()
        stop.set()
        await task  # raises whatever ended the agent early

    run_on_virtual_time(main())


def test_run_chain_agent_heartbeats_until_stopped(h: Harness, tmp_path: Any, monkeypatch: Any) -> None:
    h.block()
    ring, _ = fake_chain(h, tmp_path, monkeypatch, 4, 0)
    moves: list[tuple[int, int]] = []

    async def on_move(start: int, end: int) -> None:
        moves.append((start, end))

    spec = MinerSpec("smollm2-135m", "127.0.0.1:7000", 2_000_000, 4096, 1000, num_blocks=6)
    run_agent(ring, spec, on_move, h.block, 40)  # the chain advances without the agent; it must keep the miner active
    assert moves == [(0, 6)]
    m = h.q("staking/miners")["miners"][0]
    assert m["status"] == "active" and m["last_heartbeat"] > 30


def test_a_move_the_server_cannot_make_is_undone_on_chain(h: Harness, tmp_path: Any, monkeypatch: Any) -> None:
    h.block()
    others = [agent(h, 4, 0, blocks=(0, 10)), agent(h, 5, 1, blocks=(10, 20))]
    for a in others:
        a.ensure_registered()
    third = agent(h, 6, 2, blocks=(0, 10))
    third.ensure_registered()  # duplicates miner 0: rebalancing moves it to 20:30
    address = third.miner_address
    ring, _ = fake_chain(h, tmp_path, monkeypatch, 6, 2)
    moves: list[tuple[int, int]] = []
    seen_on_chain: list[tuple[int, int]] = []

    async def on_move(start: int, end: int) -> None:
        moves.append((start, end))
        m = h.q("staking/miner", address=address)
        seen_on_chain.append((m["block_start"], m["block_end"]))
        if (start, end) != (0, 10):
            raise OSError("shard file for block 20 is unreadable")

    def others_beat() -> None:  # the other two miners stay active
        for a in others:
            a.heartbeat()

    spec = MinerSpec("smollm2-135m", "127.0.0.1:7002", 2_000_000, 4096, 1000, num_blocks=10)
    run_agent(ring, spec, on_move, others_beat, 60)  # several rebalancing rounds; the failure does not end it
    assert moves == [(0, 10), (20, 30)]  # one try, then no more rebalancing
    assert seen_on_chain == [(0, 10), (20, 30)]  # the chain had taken the move when the load failed
    m = h.q("staking/miner", address=address)
    assert (m["block_start"], m["block_end"]) == (0, 10)  # undone: the chain names what the miner serves
    assert m["status"] == "active" and m["last_heartbeat"] > h.height - 20


def test_a_node_down_just_after_registration_does_not_end_the_heartbeats(
        h: Harness, tmp_path: Any, monkeypatch: Any) -> None:
    h.block()
    ring, rpc = fake_chain(h, tmp_path, monkeypatch, 4, 0)
    down = {"calls": 0}
    registered = rpc.broadcast_tx_sync

    def broadcast_then_go_down(tx: bytes) -> BroadcastResult:
        res = registered(tx)
        rpc.height = failing_height  # type: ignore[method-assign]
        return res

    real_height = rpc.height

    def failing_height() -> int:  # the node is unreachable for the agent's first eight polls
        down["calls"] += 1
        if down["calls"] <= 8:
            raise RPCError("cannot reach node at fake: connection refused")
        return real_height()

    rpc.broadcast_tx_sync = broadcast_then_go_down  # type: ignore[method-assign]
    spec = MinerSpec("smollm2-135m", "127.0.0.1:7000", 2_000_000, 4096, 1000, blocks=(0, 6))
    run_agent(ring, spec, None, h.block, 40)
    assert down["calls"] > 8
    m = h.q("staking/miners")["miners"][0]
    assert m["status"] == "active" and m["last_heartbeat"] > 30


def test_the_agent_stops_by_itself_once_the_owner_unbonds_the_miner(
        h: Harness, tmp_path: Any, monkeypatch: Any) -> None:
    h.block()
    ring, rpc = fake_chain(h, tmp_path, monkeypatch, 4, 0)
    sent: list[bytes] = []
    broadcast = rpc.broadcast_tx_sync

    def counting(tx: bytes) -> BroadcastResult:
        sent.append(tx)
        return broadcast(tx)

    rpc.broadcast_tx_sync = counting  # type: ignore[method-assign]
    spec = MinerSpec("smollm2-135m", "127.0.0.1:7000", 2_000_000, 4096, 1000, blocks=(0, 6))

    async def main() -> tuple[bool, int]:
        stop = asyncio.Event()
        task = asyncio.create_task(run_chain_agent("fake", ring, "owner", "miner", spec, stop=stop, poll_s=0.01))
        for _ in range(10):  # registered and heartbeating
            await asyncio.sleep(0.02)
            h.block()
        with rpc.lock:  # no heartbeat of the agent's between reading the owner's sequence and the unbond
            h.seqs[addr(key(4))] = int(h.q("auth/account", address=addr(key(4)))["sequence"])
            assert h.run(key(4), MsgUnbondMiner(addr(key(4)), addr(miner_key(0)))).code == 0
            at_unbond = len(sent)
        for _ in range(30):
            await asyncio.sleep(0.02)
            h.block()
        ended = task.done()
        stop.set()
        await task
        return ended, len(sent) - at_unbond

    ended, after = run_on_virtual_time(main())
    assert ended  # without stop being set
    assert after <= 1  # the one heartbeat the chain refused (counted before the unbond if it waited on the lock)
    assert [m["status"] for m in h.q("staking/miners")["miners"]] in ([], ["unbonding"])
