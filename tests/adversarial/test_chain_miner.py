"""Attacks on chain miners, run against real processes: a 4-validator localnet, three chain miners of a tiny
GPT-2 and four verifiers (``conftest.world``). Each asserts that the attacker gains nothing and the honest lose
nothing: no slash, no reputation lost, no pay lost.

Each was seen to fail on the code before the hardening (run with ``NESA_ADVERSARIAL_OLD`` pointing at a
checkout of commit bd121ce, which serves any session name to anyone and any frames to anyone)."""

from __future__ import annotations

from typing import Any

import pytest
from nacl.signing import SigningKey

from nesachain.protocol.auth import AUTH_HEADER, sign_open, sign_steplog_read
from nesachain.protocol.sessions import chain_session_name
from nesachain.wallet import queries
from tests.adversarial.attacker import ask, http_json
from tests.adversarial.conftest import World

pytestmark = [pytest.mark.localnet, pytest.mark.slow]

ATTACKER = SigningKey(b"\x66" * 32)


def _open(name: str, auth: dict[str, Any] | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"op": "open", "session": name, "max_length": 16, "blocks": [0, 1]}
    if auth is not None:
        msg["auth"] = auth
    return msg


@pytest.fixture(scope="module")
def served(world: World) -> tuple[SigningKey, int, list[int]]:
    """One honest session, closed, that the attacks below go after before it settles."""
    return world.serve()


def test_a_stranger_cannot_reopen_a_closed_sessions_name_so_the_honest_miner_is_not_slashed(
        world: World, served: tuple[SigningKey, int, list[int]]) -> None:
    """The attack: once the client has closed, open a session of the same (predictable) name on its miner, so
    that verifiers fetch an empty log whose root differs from the one the miner revealed. Before: the open
    succeeded (a name was refused only while open), every verifier voted mismatch, the miner lost 10 % of its
    bond and 20 % of its reputation."""
    key, sid, _ = served
    name = chain_session_name(sid, 0, 0)
    chain_id = world.rpc.chain_id()
    tries = [
        _open(name),  # no signature
        _open(name, sign_open(ATTACKER, chain_id, sid, 0, 0, world.miner(0))),  # the attacker's own signature
        _open(name, sign_open(key, chain_id, sid + 1000, 0, 0, world.miner(0))),  # a real signature, another name
    ]
    for attempt in tries:
        (reply,) = ask(world.url(0), attempt)
        assert reply["op"] == "error" and reply["code"] in ("forbidden", "name_used"), reply
    # even the client itself cannot open it again: a name that has held a session is never reused
    (reply,) = ask(world.url(0), _open(name, sign_open(key, chain_id, sid, 0, 0, world.miner(0))))
    assert reply["op"] == "error" and reply["code"] in ("forbidden", "name_used"), reply
    s = world.settled(sid)
    for c in s["challenges"]:
        assert c["outcome"] == "match", c
    for h in s["hops"]:
        assert not h["failed"] and h["paid"] > 0, h
    m = queries.miner(world.rpc, world.miner(0))
    assert m is not None and m["bond"] == 1_000_000 and int(m["reputation"]) >= 1_000_000


def test_a_chain_miners_step_data_goes_only_to_bonded_validators_for_a_challenge(
        world: World, served: tuple[SigningKey, int, list[int]]) -> None:
    """Hop 0's input is the prompt's embeddings (the public embedding matrix inverts them) and the last hop's
    output the completion. Before: ``/sessions/{sid}/steps`` served every session's frames to anyone for 600 s."""
    _, sid, _ = served
    s = world.settled(sid)
    name = chain_session_name(sid, 0, 0)
    base = world.url(0).replace("ws://", "http://").removesuffix("/ws")
    status, body = http_json(f"{base}/sessions/{name}/steps?upto=0")
    assert status == 403 and body["code"] == "forbidden" and len(body["root"]) == 64, body
    status, body = http_json(f"{base}/sessions/{name}/log")
    assert status == 403 and body["n_steps"] > 0, body
    c = next(i for i, c in enumerate(s["challenges"]) if c["miner"] == world.miner(0))
    chain_id = world.rpc.chain_id()
    stranger = sign_steplog_read(ATTACKER, chain_id, sid, c, world.miner(0), name)
    status, body = http_json(f"{base}/sessions/{name}/log", {AUTH_HEADER: stranger})
    assert status == 403, body  # signed, but not by a bonded validator
    validator = sign_steplog_read(world.net.keyring().signing_key("operator1"), chain_id, sid, c, world.miner(0),
                                  name)
    status, body = http_json(f"{base}/sessions/{name}/log", {AUTH_HEADER: validator})
    assert status == 200 and len(body["steps"]) > 0, body
    wrong_session = sign_steplog_read(world.net.keyring().signing_key("operator1"), chain_id, sid, c,
                                      world.miner(0), chain_session_name(sid, 1, 0))
    status, _ = http_json(f"{base}/sessions/{name}/log", {AUTH_HEADER: wrong_session})
    assert status == 403  # a validator's signature for another session's data does not open this one


def test_a_stranger_cannot_preopen_the_next_sessions_names_nor_be_served_for_free(world: World) -> None:
    """Before: anyone could open any name on a chain miner and be served for free, and opening the names of
    upcoming chain sessions (``chain-{id}-{hop}-{attempt}``, predictable) made the real client get
    ``session_exists`` on every alternate."""
    key = world.client()
    route = world.route()
    sid = world.open_session(key, route)
    for hop, miner in ((0, 0), (1, 1), (1, 2)):
        for attempt in (0, 1, 2):
            msg = _open(chain_session_name(sid, hop, attempt))
            msg["blocks"] = [hop, hop + 1]
            (reply,) = ask(world.url(miner), msg)
            assert reply["op"] == "error" and reply["code"] == "forbidden", reply
    (reply,) = ask(world.url(0), _open("anything-at-all"))  # no chain session at all: not served
    assert reply["op"] == "error" and reply["code"] == "forbidden", reply
    tokens = world.generate(key, route, sid)
    assert len(tokens) == 6
    world.close(key, sid, len(tokens))


def test_only_the_route_miner_or_a_miner_of_those_blocks_is_served_a_hop(world: World) -> None:
    """A client's signature for hop 0 opens hop 0 on the route's miner only: not hop 1 on miner 0 (another
    hop's session), and not on a miner that does not serve the hop's blocks."""
    key = world.client()
    route = world.route()
    sid = world.open_session(key, route)
    chain_id = world.rpc.chain_id()
    wrong_hop = _open(chain_session_name(sid, 1, 1), sign_open(key, chain_id, sid, 1, 1, world.miner(0)))
    (reply,) = ask(world.url(0), wrong_hop)
    assert reply["op"] == "error" and reply["code"] == "forbidden", reply
    settled_name = _open(chain_session_name(sid, 0, 0), sign_open(key, chain_id, sid, 0, 0, world.miner(1)))
    (reply,) = ask(world.url(0), settled_name)  # signed for miner 1, sent to miner 0
    assert reply["op"] == "error" and reply["code"] == "forbidden", reply
    tokens = world.generate(key, route, sid)
    world.close(key, sid, len(tokens))
