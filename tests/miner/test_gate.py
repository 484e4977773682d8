"""The chain's rules for a chain miner (``nesachain.miner.gate``), against a fake node: who may open which
session, read which step data, and push where."""

from __future__ import annotations

import json
from typing import Any

import pytest
from nacl.signing import SigningKey

from nesachain.miner.gate import ChainGate
from nesachain.protocol.auth import sign_open, sign_steplog_read
from nesachain.protocol.errors import WireError
from nesachain.types.address import address_from_pubkey, encode_address
from nesachain.types.sdk_errors import ErrNotFound
from nesachain.wallet.rpc import QueryResponse


def addr(key: SigningKey) -> str:
    return encode_address(address_from_pubkey(bytes(key.verify_key)))


CLIENT, STRANGER, OPERATOR = SigningKey(b"\x01" * 32), SigningKey(b"\x02" * 32), SigningKey(b"\x03" * 32)
ME, NEXT, SPARE = "nesa1me", "nesa1next", "nesa1spare"


def hop(miner: str, start: int, end: int, **kw: Any) -> dict[str, Any]:
    return {"miner": miner, "start": start, "end": end, "stands_in_for": -1, "attempt": 0, **kw}


class FakeNode:
    def __init__(self) -> None:
        self.sessions = {7: {"id": 7, "status": "open", "client": addr(CLIENT), "model_id": "m",
                             "hops": [hop(ME, 0, 1), hop(NEXT, 1, 2)], "challenges": []}}
        self.miners = {ME: {"miner": ME, "status": "active", "model_id": "m", "block_start": 0, "block_end": 2,
                            "endpoint": "127.0.0.1:7000"},
                       NEXT: {"miner": NEXT, "status": "active", "model_id": "m", "block_start": 1, "block_end": 2,
                              "endpoint": "127.0.0.1:7001"},
                       SPARE: {"miner": SPARE, "status": "active", "model_id": "m", "block_start": 1, "block_end": 2,
                               "endpoint": "127.0.0.1:7002"}}
        self.bonded = [{"operator": addr(OPERATOR), "status": "bonded"}]
        self.queries = 0

    def chain_id(self) -> str:
        return "c"

    def abci_query(self, path: str, data: dict[str, Any] | None = None, height: int = 0) -> QueryResponse:
        self.queries += 1
        data = data or {}
        found: Any = None
        if path == "inference/session":
            found = self.sessions.get(data["session_id"])
        elif path == "staking/miner":
            found = self.miners.get(data["address"])
        elif path == "staking/miners":
            rows = [m for m in self.miners.values() if m["status"] == data.get("status", m["status"])]
            found = {"miners": rows, "total": len(rows)}
        elif path == "staking/validators":
            found = {"validators": self.bonded, "total": len(self.bonded)}
        if found is None:
            return QueryResponse(ErrNotFound.code, ErrNotFound.codespace, "not found", b"", 1)
        return QueryResponse(0, "", "", json.dumps(found).encode(), 1)


@pytest.fixture
def node() -> FakeNode:
    return FakeNode()


def gate(node: FakeNode, clock: list[float] | None = None) -> ChainGate:
    t = clock if clock is not None else [0.0]

    def sleep(seconds: float) -> None:
        t[0] += seconds

    return ChainGate(node, ME, clock=lambda: t[0], sleep=sleep)  # type: ignore[arg-type]


def test_gate_admits_the_sessions_client_for_its_route_hop(node: FakeNode) -> None:
    admission = gate(node).admit_open("chain-7-0-0", sign_open(CLIENT, "c", 7, 0, 0, ME))
    assert admission.chain and admission.client == addr(CLIENT)


@pytest.mark.parametrize(("name", "auth", "why"), [
    ("chain-7-0-0", sign_open(STRANGER, "c", 7, 0, 0, ME), "opened by"),
    ("chain-7-0-0", sign_open(CLIENT, "other", 7, 0, 0, ME), "chain"),
    ("chain-7-0-0", sign_open(CLIENT, "c", 7, 0, 0, NEXT), "miner"),
    ("chain-7-0-1", sign_open(CLIENT, "c", 7, 0, 0, ME), "signature is for session"),
    ("chain-8-0-0", sign_open(CLIENT, "c", 8, 0, 0, ME), "no session 8"),
    ("chain-7-5-0", sign_open(CLIENT, "c", 7, 5, 0, ME), "route hops"),
    ("chain-7-1-0", sign_open(CLIENT, "c", 7, 1, 0, ME), "cannot stand in"),  # attempt 0 is the route miner's
    ("chain-7-0-0", None, "signed auth"),
])
def test_gate_refuses_every_other_open(node: FakeNode, name: str, auth: Any, why: str) -> None:
    with pytest.raises(WireError, match=why) as exc:
        gate(node).admit_open(name, auth)
    assert exc.value.code == "forbidden"


def test_gate_waits_a_little_for_its_node_to_show_a_session_just_opened(node: FakeNode) -> None:
    """The client opened session 9 through another node; this one shows it a block later."""
    clock = [0.0]
    g = gate(node, clock)
    calls = {"n": 0}
    real = node.abci_query

    def lagging(path: str, data: dict[str, Any] | None = None, height: int = 0) -> Any:
        if path == "inference/session" and (data or {}).get("session_id") == 9:
            calls["n"] += 1
            if calls["n"] == 3:
                node.sessions[9] = {**node.sessions[7], "id": 9}
        return real(path, data, height)

    node.abci_query = lagging  # type: ignore[method-assign]
    assert g.admit_open("chain-9-0-0", sign_open(CLIENT, "c", 9, 0, 0, ME)).chain
    assert calls["n"] == 3 and clock[0] == 0.5
    with pytest.raises(WireError, match="no session 10"):  # never there: refused after the catch-up time
        g.admit_open("chain-10-0-0", sign_open(CLIENT, "c", 10, 0, 0, ME))
    assert clock[0] >= 2.5


def test_gate_admits_a_stand_in_only_for_blocks_it_serves_and_only_while_the_session_is_open(node: FakeNode) -> None:
    g = gate(node)
    assert g.admit_open("chain-7-1-1", sign_open(CLIENT, "c", 7, 1, 1, ME)).chain  # serves 0:2, covers hop 1's 1:2
    node.miners[ME]["block_end"] = 1
    with pytest.raises(WireError, match="cannot stand in"):
        gate(node).admit_open("chain-7-1-2", sign_open(CLIENT, "c", 7, 1, 2, ME))
    node.sessions[7]["status"] = "committing"
    with pytest.raises(WireError, match="not open"):
        gate(node).admit_open("chain-7-0-0", sign_open(CLIENT, "c", 7, 0, 0, ME))


def test_gate_lets_bonded_validators_read_a_challenged_session_only(node: FakeNode) -> None:
    node.sessions[7]["challenges"] = [{"miner": ME, "hop": 0}, {"miner": NEXT, "hop": 1}]
    g = gate(node)
    g.admit_read("chain-7-0-0", sign_steplog_read(OPERATOR, "c", 7, 0, ME, "chain-7-0-0"))
    for header, why in [
        (None, "bonded validators only"),
        (sign_steplog_read(STRANGER, "c", 7, 0, ME, "chain-7-0-0"), "not a bonded validator"),
        (sign_steplog_read(OPERATOR, "c", 7, 1, ME, "chain-7-0-0"), "not about"),  # the other miner's challenge
        (sign_steplog_read(OPERATOR, "c", 7, 5, ME, "chain-7-0-0"), "no challenge 5"),
        (sign_steplog_read(OPERATOR, "c", 7, 0, ME, "chain-7-1-0"), "not this one"),
        (sign_steplog_read(OPERATOR, "x", 7, 0, ME, "chain-7-0-0"), "chain"),
    ]:
        with pytest.raises(WireError, match=why):
            g.admit_read("chain-7-0-0", header)


def test_gate_allows_pushes_to_the_next_hops_miners_only_and_caches_the_node(node: FakeNode) -> None:
    clock = [0.0]
    g = gate(node, clock)
    assert g.may_push("chain-7-0-0", "ws://127.0.0.1:7001/ws")  # the route's next miner
    assert g.may_push("chain-7-0-1", "ws://127.0.0.1:7002/ws")  # an active miner of exactly those blocks
    assert not g.may_push("chain-7-0-0", "ws://127.0.0.1:7000/ws")  # itself: it does not serve hop 1's 1:2 only
    assert not g.may_push("chain-7-0-0", "ws://10.0.0.1:80/ws")
    assert not g.may_push("chain-7-1-0", "ws://127.0.0.1:7001/ws")  # the last hop pushes to no one
    assert not g.may_push("not-a-chain-session", "ws://127.0.0.1:7001/ws")
    asked = node.queries
    g.may_push("chain-7-0-0", "ws://127.0.0.1:7001/ws")
    assert node.queries == asked  # answered from the cache
    clock[0] = 10.0
    g.may_push("chain-7-0-0", "ws://127.0.0.1:7001/ws")
    assert node.queries > asked  # asked again once the cache aged
