"""Warming a miner's compute path ahead of its next decode step: when it happens, and that it changes
no session's results."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from shard_exec_support import Sharded, start_miners, stop_miners

from nesachain.client import RemotePipeline, parse_route
from nesachain.shard_exec.server.warm import StepWarmer
from nesachain.shard_exec.shard_files import load_stage


def _warmer(calls: list[float], fail: bool = False) -> StepWarmer:
    async def warm() -> None:
        calls.append(asyncio.get_running_loop().time())
        if fail:
            raise RuntimeError("boom")

    return StepWarmer(warm, lead=0.005, max_warms=3)


def test_period_needs_three_steady_gaps_and_a_prefill_starts_over() -> None:
    w = _warmer([])
    for t in (0.0, 0.050, 0.101):
        w.arrived(t, decode=True)
    assert w.period() is None  # two gaps only
    w.arrived(0.150, decode=True)
    assert w.period() == pytest.approx(0.049)
    w.arrived(0.400, decode=True)  # one long pause among short gaps: still steady by the median
    assert w.period() == pytest.approx(0.049)
    w.arrived(0.900, decode=True)
    w.arrived(1.400, decode=True)  # now most gaps are long: the median is over twice the shortest
    assert w.period() is None
    w.arrived(1.5, decode=False)  # a prefill
    assert w.period() is None
    for t in (1.55, 1.60, 1.65):
        w.arrived(t, decode=True)
    assert w.period() is None  # the count starts over after the prefill


def test_warm_ups_run_just_before_the_next_step_is_due_and_stop_when_it_comes() -> None:
    # times are long enough (a step every 200 ms) that a busy test machine's slow loop still fits
    async def scenario() -> tuple[list[float], float, list[float], int]:
        loop = asyncio.get_running_loop()
        calls: list[float] = []
        w = _warmer(calls)
        now = loop.time()
        for k in (3, 2, 1, 0):  # steps every 200 ms, the last one now
            w.arrived(now - 0.200 * k, decode=True)
        w.step_done(loop)
        await asyncio.sleep(0.350)
        planned = list(calls)
        calls.clear()
        w.arrived(loop.time(), decode=True)
        w.step_done(loop)  # gaps 200, 200, 200, ~350: steady, period 200 ms, the next due in ~195 ms
        await asyncio.sleep(0.100)
        w.arrived(loop.time(), decode=True)  # it came early: the warm-ups planned for it are dropped
        await asyncio.sleep(0.300)
        await w.close()
        return planned, now, list(calls), w.warm_ups

    planned, now, cancelled, count = asyncio.run(scenario())
    # the first warm-up 5 ms before the step was due (200 ms after the last), then back to back, 3 at most,
    # none after the deadline (1.5 periods)
    assert 1 <= len(planned) <= 3
    assert planned[0] >= now + 0.195 - 0.002
    assert all(t < now + 0.300 for t in planned)
    assert cancelled == []
    assert count == len(planned)


def test_no_warm_ups_without_a_steady_pace_or_after_a_failed_one() -> None:
    async def scenario() -> tuple[list[float], list[float], bool]:
        loop = asyncio.get_running_loop()
        unsteady: list[float] = []
        w = _warmer(unsteady)
        now = loop.time()
        w.arrived(now - 0.1, decode=True)
        w.arrived(now, decode=True)  # one gap: no pace yet
        w.step_done(loop)
        await asyncio.sleep(0.2)
        failing: list[float] = []
        f = _warmer(failing, fail=True)
        now = loop.time()
        for k in (3, 2, 1, 0):
            f.arrived(now - 0.100 * k, decode=True)
        f.step_done(loop)  # due in 95 ms; the warm-up raises
        await asyncio.sleep(0.250)
        now = loop.time()
        for k in (3, 2, 1, 0):
            f.arrived(now - 0.100 * k, decode=True)
        f.step_done(loop)  # broken: plans nothing
        await asyncio.sleep(0.150)
        return unsteady, failing, f.broken

    unsteady, failing, broken = asyncio.run(scenario())
    assert unsteady == []
    assert len(failing) == 1 and broken


def _stop_after(n: int, calls: list[int]) -> Callable[[], bool]:
    """A stop flag that is asked once per operation and turns true at the (n+1)-th."""
    def stop() -> bool:
        calls.append(1)
        return len(calls) > n

    return stop


def test_a_warm_up_stops_between_operations_once_a_step_comes(smol: Sharded) -> None:
    stage = load_stage(smol.dir, 1, 2)
    layer = stage.layers[0]  # type: ignore[attr-defined]
    leaves = [m for m in layer.modules() if next(m.children(), None) is None]
    calls: list[int] = []
    stage.warm(_stop_after(10**6, calls))
    assert len(calls) == len(leaves) >= 7  # asked before each of the layer's operations: projections, MLP, norms
    calls.clear()
    stage.warm(_stop_after(2, calls))
    assert len(calls) == 3  # it left at the third
    calls.clear()
    stage.warm(_stop_after(0, calls))  # a step already waiting: it leaves before the layer's first operation
    assert len(calls) == 1
    assert all(not m._forward_pre_hooks for m in layer.modules())  # no hook stays on for the steps


def test_decoder_warm_up_leaves_a_session_bit_identical(smol: Sharded) -> None:
    stage = load_stage(smol.dir, 1, 2)
    hidden = torch.randn(1, 12, stage.width, generator=torch.Generator().manual_seed(3))  # type: ignore[attr-defined]

    def run(warm: bool) -> list[torch.Tensor]:
        state = stage.new_state(1, 16)
        outs = [stage.run({"hidden": hidden[:, :8]}, {}, 0, state)[0]["hidden"]]
        for i in range(8, 12):
            if warm:
                stage.warm()
                stage.warm(_stop_after(4, []))  # one left half-way
                stage.warm()
            outs.append(stage.run({"hidden": hidden[:, i:i + 1]}, {}, i, state)[0]["hidden"])
        return outs

    plain, warmed = run(False), run(True)
    assert all(torch.equal(a, b) for a, b in zip(plain, warmed, strict=True))


def test_a_miner_pinned_to_one_cpu_warms_ahead_of_steady_steps(tiny_gpt2: Sharded, tmp_path: Path) -> None:
    cpu = min(os.sched_getaffinity(0))
    miners = start_miners(tiny_gpt2.dir, ["0:1", "1:2"], tmp_path, cpu=cpu)
    reference = [load_stage(tiny_gpt2.dir, 0, 1), load_stage(tiny_gpt2.dir, 1, 2)]
    states = [r.new_state(1, 32) for r in reference]
    hidden = torch.randn(1, 20, 64, generator=torch.Generator().manual_seed(5))

    def infos() -> list[dict]:  # type: ignore[type-arg]
        out = []
        for m in miners:
            with urllib.request.urlopen(f"http://{m.addr}/info", timeout=10) as resp:
                out.append(json.loads(resp.read()))
        return out

    async def steps() -> list[tuple[torch.Tensor, torch.Tensor]]:
        route = parse_route(",".join(m.hop() for m in miners))
        got = []
        pipe = await RemotePipeline.create(route, 32)
        try:
            for lo, hi in [(0, 4), *[(k, k + 1) for k in range(4, 20)]]:
                x = hidden[:, lo:hi]
                out, _ = await pipe.run_step({"hidden": x}, position=lo)
                ref = x
                for r, st in zip(reference, states, strict=True):
                    ref = r.run({"hidden": ref}, {}, lo, st)[0]["hidden"]
                got.append((out["hidden"], ref))
                await asyncio.sleep(0.05)  # a steady pace, as the other miners and the client would set
        finally:
            await pipe.close()
        return got

    try:
        before = infos()
        got = asyncio.run(steps())
        after = infos()
    finally:
        stop_miners(miners)
    assert all(i["warm_ahead"] for i in before)
    assert all(a["warm_ups"] > b["warm_ups"] for a, b in zip(after, before, strict=True)), after
    assert all(torch.equal(a, b) for a, b in got)


def test_a_miner_that_may_run_on_several_cpus_does_not_warm_ahead(tiny_gpt2: Sharded, tmp_path: Path) -> None:
    miners = start_miners(tiny_gpt2.dir, ["0:1"], tmp_path)  # this process's CPUs, two or more in CI
    try:
        with urllib.request.urlopen(f"http://{miners[0].addr}/info", timeout=10) as resp:
            info = json.loads(resp.read())
    finally:
        stop_miners(miners)
    assert info["warm_ahead"] is (len(os.sched_getaffinity(0)) == 1)
    assert info["warm_ups"] == 0
