"""What a client saw of miners' speed caps what they declare, expires, and survives a bad file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nesachain.client.observed import ALPHA, MAX_AGE_S, ObservedSpeeds, per_block_seconds
from nesachain.client.routing import MinerCandidate, find_route


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def test_per_block_seconds_is_each_hops_median_share_of_a_step_per_block() -> None:
    # cumulative ms at which the client had each of three hops' results, for four decode steps
    rows = [[20.0, 45.0, 60.0], [22.0, 46.0, 61.0], [21.0, 90.0, 105.0], [20.0, 44.0, 58.0], [5.0]]
    got = per_block_seconds(rows, [10, 5, 3])
    assert got[0] == pytest.approx(20.5e-3 / 10)
    assert got[1] == pytest.approx(24.5e-3 / 5)  # the slow step (a failover, a hiccup) is outvoted
    assert got[2] == pytest.approx(15e-3 / 3)
    assert per_block_seconds([], [10, 10]) == [None, None]


def test_observed_speed_caps_the_declared_one_and_expires(tmp_path: Path) -> None:
    clock = Clock()
    seen = ObservedSpeeds(tmp_path / "observed.json", clock)
    assert seen.throughput("m1", 500.0) == 500.0  # never seen: the declared figure
    seen.record("m1", 0.01)  # 100 forward passes per second per block
    assert seen.throughput("m1", 500.0) == pytest.approx(100.0)  # slower than it claims: what we saw
    assert seen.throughput("m1", 50.0) == 50.0  # faster than it claims: the claim
    seen.record("m1", 0.02)
    assert seen.throughput("m1", 500.0) == pytest.approx(1 / (ALPHA * 0.02 + (1 - ALPHA) * 0.01))
    seen.record("m2", float("nan"))
    seen.record("m2", -1.0)
    assert seen.throughput("m2", 7.0) == 7.0
    seen.save()
    again = ObservedSpeeds(tmp_path / "observed.json", clock)
    assert again.throughput("m1", 500.0) == pytest.approx(seen.throughput("m1", 500.0))
    clock.t += MAX_AGE_S + 1
    assert again.throughput("m1", 500.0) == 500.0  # an old observation no longer counts
    again.save()
    assert json.loads((tmp_path / "observed.json").read_text()) == {}


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"m1": {"s_per_block": "fast", "at": 1}}',
                                     '{"m1": {"s_per_block": 0, "at": 1}}'])
def test_a_bad_observations_file_is_ignored(tmp_path: Path, content: str) -> None:
    path = tmp_path / "observed.json"
    path.write_text(content)
    assert ObservedSpeeds(path, Clock()).throughput("m1", 9.0) == 9.0


def test_an_unwritable_home_loses_the_observations_not_the_request(tmp_path: Path) -> None:
    (tmp_path / "home").write_text("a file where the wallet folder should be")
    seen = ObservedSpeeds.in_home(tmp_path / "home")
    assert seen.path == tmp_path / "home" / "observed_miners.json"
    seen.record("m1", 0.01)
    seen.save()  # warns, does not raise
    assert (tmp_path / "home").read_text().startswith("a file")


def test_a_miner_that_overstates_its_throughput_is_routed_around_once_seen(tmp_path: Path) -> None:
    clock = Clock()
    seen = ObservedSpeeds(tmp_path / "observed.json", clock)
    declared = {"liar": 5000.0, "honest": 500.0}  # both serve blocks 0:10; the liar claims 10x

    def route() -> str:
        cands = [MinerCandidate(m, 0, 10, seen.throughput(m, d), rtt_s=0.001) for m, d in sorted(declared.items())]
        return find_route(cands, 10).hops[0].miner

    assert route() == "liar"
    seen.record("liar", 1 / 250)  # it served at 250 forward passes per second per block
    assert route() == "honest"
