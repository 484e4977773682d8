"""Export and import mirror the whole state: a busy chain exported and imported into a fresh ``Chain``
has the same app hash, exports the same genesis again, and goes on in lockstep with the original.
An inconsistent genesis is refused, naming what is wrong."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nesachain.abci.chain import Chain
from nesachain.modules.bank.msgs import MsgSend
from nesachain.store import CommitStore
from nesachain.types.module import BlockInfo
from tests.abci.busy_chain import BusyChain
from tests.modules.staking.conftest import CHAIN_ID, addr, key

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def exported(busy: BusyChain) -> dict[str, Any]:
    """The busy chain's export, as InitChain gets it (through JSON)."""
    out: dict[str, Any] = json.loads(json.dumps(busy.chain.export_genesis()))
    return out


def imported(app_state: dict[str, Any]) -> tuple[Chain, bytes]:
    chain = Chain(CommitStore())
    app_hash, _ = chain.init_chain(CHAIN_ID, app_state, time_ns=1)
    return chain, app_hash


def state_items(chain: Chain) -> dict[bytes, bytes]:
    """Every key and value of the chain's state at its last height (genesis before block 1)."""
    return dict(chain._base_store().iterate(b"", None))


def test_export_genesis_of_a_busy_chain_imports_to_the_same_app_hash(busy: BusyChain, exported) -> None:
    sessions = exported["inference"]["sessions"]
    assert sorted(s["status"] for s in sessions) == ["challenging", "committing", "open", "settled"]
    assert exported["staking"]["unbonding"] and exported["inference"]["due"]
    assert {m["status"] for m in exported["staking"]["miners"]} == {"active", "inactive", "unbonding"}
    b, app_hash = imported(copy.deepcopy(exported))
    assert state_items(b) == state_items(busy.chain)  # every key: a mismatch shows which one
    assert app_hash == busy.chain.app_hash


def test_export_genesis_again_after_import_is_identical(exported) -> None:
    b, _ = imported(copy.deepcopy(exported))
    assert json.loads(json.dumps(b.export_genesis())) == exported


def test_imported_chain_continues_in_lockstep_with_the_original(busy: BusyChain, exported) -> None:
    """The next blocks, with the same txs and votes, reach the same app hashes on both chains: the
    sessions settle, the unbondings mature and the liveness windows advance identically."""
    a = copy.deepcopy(busy)  # the module's busy chain stays as it was for the other tests
    b, _ = imported(copy.deepcopy(exported))
    signers = sorted(a.cometbft_set().items())
    for height in range(a.height + 1, a.height + 25):
        txs = [a.tx(key(0), [MsgSend(addr(key(0)), addr(key(9)), height)])] if height % 3 == 0 else []
        info = BlockInfo(last_commit=tuple((v, p, True) for v, p in signers))
        ra, rb = (c.finalize_block(height, txs, time_ns=height * 10**9, block_hash=height.to_bytes(32, "big"),
                                   info=info) for c in (a.chain, b))
        assert ra.app_hash == rb.app_hash, height
        assert [r.code for r in ra.tx_results] == [r.code for r in rb.tx_results] == [0] * len(txs)
        a.chain.commit()
        b.commit()
    assert a.chain.export_genesis() == b.export_genesis()
    challenges = [c for s in b.export_genesis()["inference"]["sessions"] for c in s["challenges"]]
    # the challenged session was tallied on both: its undecided challenges were drawn again, as new entries
    assert "undecided" in {c["outcome"] for c in challenges} and any(c["round"] == 2 for c in challenges)


def _mutate(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set ``value`` at a dotted path (list indexes as numbers)."""

    def apply(state: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = state
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return apply


def _session(state: dict[str, Any], status: str) -> int:
    return next(i for i, s in enumerate(state["inference"]["sessions"]) if s["status"] == status)


BAD_GENESIS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "supply above what the modules hold": (lambda g: g["bank"].update(supply=g["bank"]["supply"] + 1),
                                           "does not match what the modules hold"),
    "escrow not matching the supply": (lambda g: g["inference"]["sessions"][_session(g, "open")].update(
        escrow=g["inference"]["sessions"][_session(g, "open")]["escrow"] + 5), "does not match what the modules hold"),
    "due entry naming a missing session": (lambda g: g["inference"]["due"].append({"height": 10**6, "session_id": 99}),
                                           "names session 99"),
    "session id at or above next_session": (lambda g: g["inference"].update(next_session=2), "next_session"),
    "duplicate session": (lambda g: g["inference"]["sessions"].append(g["inference"]["sessions"][0]),
                          "duplicate session"),
    "session of an unknown model": (lambda g: g["inference"]["sessions"][0].update(model_id="nope"), "model_id"),
    "settled session whose pay does not add up": (lambda g: g["inference"]["sessions"][_session(g, "settled")].update(
        refund=0), "add up to its escrow"),
    "open session that paid": (lambda g: (g["inference"]["sessions"][_session(g, "open")]["hops"][0].update(paid=5),
                                          g["inference"]["sessions"][_session(g, "open")].update(paid=5)),
                               "paid nothing yet"),
    "session paid not its hops' pay": (lambda g: g["inference"]["sessions"][_session(g, "settled")].update(paid=1),
                                       "sum of its hops' pay"),
    "route with a gap": (lambda g: g["inference"]["sessions"][0]["hops"][1].update(start=11), "route"),
    "challenge of a missing hop": (lambda g: g["inference"]["sessions"][_session(g, "challenging")]["challenges"][0]
                                   .update(hop=9), "hop"),
    "malformed session": (lambda g: g["inference"]["sessions"][0].update(client="nesa1bogus"), "malformed"),
    "unbonding entry of an unknown validator": (lambda g: g["staking"]["unbonding"][0].update(
        validator=addr(key(9))), "unknown validator"),
    "unbonding id not below next_id": (lambda g: g["staking"].update(next_id=1), "next_id"),
    "miner under its owner's key": (
        lambda g: g["staking"]["miners"][0].update(miner=g["staking"]["miners"][0]["owner"]), "own key"),
    "missed blocks not counted": (lambda g: g["staking"]["signing_infos"][0].update(
        missed=g["staking"]["signing_infos"][0]["missed"] + 1), "missed"),
    "account sequence 0": (lambda g: g["auth"]["accounts"][0].update(sequence=0), "sequence"),
    "duplicate account": (lambda g: g["auth"]["accounts"].append(g["auth"]["accounts"][0]), "duplicate address"),
}


@pytest.mark.parametrize("case", sorted(BAD_GENESIS))
def test_validate_genesis_inconsistent_export_refused_with_its_reason(exported, case: str) -> None:
    mutate, message = BAD_GENESIS[case]
    state = copy.deepcopy(exported)
    mutate(state)
    chain = Chain(CommitStore())
    with pytest.raises(ValueError, match=message):
        chain.validate_genesis(state)
    with pytest.raises(ValueError, match=message):
        chain.init_chain(CHAIN_ID, state)


@pytest.mark.parametrize("template", ["default.json", "localnet.json"])
def test_genesis_templates_filled_as_localnet_init_fills_them_are_valid(template: str) -> None:
    """The repo's templates, with what ``localnet init`` adds (balances, validators, model owners and
    block hashes) and without the ``_comment`` keys, load into a chain."""
    from tests.modules.staking.conftest import genesis

    app_state = {k: v for k, v in json.loads((REPO / "genesis" / template).read_text()).items()
                 if not k.startswith("_")}
    filled = genesis()
    app_state["bank"]["balances"] = filled["bank"]["balances"]
    app_state["staking"]["create_validators"] = filled["staking"]["create_validators"]
    for model in app_state["inference"]["models"]:
        model.setdefault("owner", addr(key(7)))
        model.setdefault("block_hashes", ["0" * 64] * model["n_blocks"])
    chain = Chain(CommitStore())
    chain.validate_genesis(app_state)
    _, updates = chain.init_chain(CHAIN_ID, app_state)
    assert len(updates) == 4
