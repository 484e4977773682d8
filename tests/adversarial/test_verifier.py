"""Attacks on validators' verifiers, run against real processes (``conftest.world``): a miner that answers the
verifiers' step-log requests with garbage must neither stop any verifier nor be paid; the honest miner beside it
loses nothing.

Seen to fail on the code before the hardening (``NESA_ADVERSARIAL_OLD`` at bd121ce), though not where the old
verifier breaks: there a miner's result agent read its own step log over the same HTTP endpoint, so these miners
never committed and no challenge reached the verifiers (the test stops at the missing challenge). How the old
verifier broke on such answers is shown in process by ``tests/verifier/test_hostile_miners.py``: 77 of its 284
hostile answers raised out of ``judge`` (a log that is a list, a step "x": TypeError, which killed ``nesad
verifier``, and again on every restart), 10 still held it after 2 s, and a 300 MB body was read whole."""

from __future__ import annotations

import pytest

from nesachain.wallet import queries
from tests.adversarial.conftest import HOSTILE_KINDS, World

pytestmark = [pytest.mark.localnet, pytest.mark.slow]


def test_a_miner_serving_garbage_to_verifiers_stops_none_of_them_and_is_not_paid(world: World) -> None:
    sessions = {}
    for kind in HOSTILE_KINDS:
        key = world.client()
        route = world.route(through=world.hostile(kind))
        assert route.hops[1].miner == world.hostile(kind)
        sid = world.open_session(key, route)
        tokens = world.generate(key, route, sid)
        world.close(key, sid, len(tokens))
        sessions[kind] = sid
    for kind, sid in sessions.items():
        s = world.settled(sid)
        by_miner = {c["miner"]: c["outcome"] for c in s["challenges"]}
        hostile = next(h for h in s["hops"] if h["miner"] == world.hostile(kind))
        assert by_miner[world.hostile(kind)] == "mismatch", (kind, s["challenges"])
        assert hostile["paid"] == 0, (kind, hostile)
        honest = next(h for h in s["hops"] if h["miner"] == world.miner(0))
        assert by_miner[world.miner(0)] == "match" and honest["paid"] > 0 and not honest["failed"], (kind, s)
    assert all(world.net.running(f"verifier{i}") for i in range(world.net.n))
    m = queries.miner(world.rpc, world.miner(0))
    assert m is not None and m["bond"] == 1_000_000
