"""Warming a miner's compute path ahead of its next decode step (``nesachain.shard_exec.server.warm``):
when it happens, on virtual time (the warmer reads time from its event loop), and, on real miners, that
a miner pinned to one CPU warms ahead and one that is not does not."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.request
from pathlib import Path

import pytest
import torch
from shard_exec_support import Sharded, start_miners, stop_miners

from nesachain.client import RemotePipeline, parse_route
from nesachain.shard_exec.server.warm import StepWarmer
from nesachain.shard_exec.shard_files import load_stage
from tests.virtual_time import run_on_virtual_time


def _warmer(calls: list[float], fail: bool = False, takes: float = 0.0) -> StepWarmer:
    """A warmer whose warm-up notes when it started and lasts ``takes`` seconds."""
    async def warm() -> None:
        calls.append(asyncio.get_running_loop().time())
        await asyncio.sleep(takes)
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
        w.step_done(loop)  # gaps 200, 200, 200, 350: steady, period 200 ms, the next due in 195 ms
        await asyncio.sleep(0.100)
        w.arrived(loop.time(), decode=True)  # it came early: the warm-ups planned for it are dropped
        await asyncio.sleep(0.300)
        await w.close()
        return planned, now, list(calls), w.warm_ups

    planned, now, cancelled, count = run_on_virtual_time(scenario())
    # 5 ms before the step was due (200 ms after the last), then back to back (a warm-up takes no time
    # here) up to max_warms
    assert planned == pytest.approx([now + 0.195] * 3)
    assert cancelled == []
    assert count == 3


def test_warm_ups_that_take_time_stop_at_the_deadline_a_period_and_a_half_after_the_last_step() -> None:
    async def scenario() -> tuple[float, list[float], int]:
        loop = asyncio.get_running_loop()
        calls: list[float] = []
        w = _warmer(calls, takes=0.060)
        now = loop.time()
        for k in (3, 2, 1, 0):  # steps every 200 ms, the last one now; the next one never comes
            w.arrived(now - 0.200 * k, decode=True)
        w.step_done(loop)
        await asyncio.sleep(1.0)
        return now, calls, w.warm_ups

    now, calls, count = run_on_virtual_time(scenario())
    # due at 195 ms, 60 ms each: a third would start at 315 ms, past the deadline at 300 ms
    assert calls == pytest.approx([now + 0.195, now + 0.255]) and count == 2


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

    unsteady, failing, broken = run_on_virtual_time(scenario())
    assert unsteady == []
    assert len(failing) == 1 and broken


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
