"""Events keep the names and attributes clients and ``tx_search`` rely on: each module declares them
in its ``events.py``, and everything a busy chain emits is declared there, attribute for attribute."""

from __future__ import annotations

from nesachain.modules.bank import events as bank_events
from nesachain.modules.inference import events as inference_events
from nesachain.modules.staking import events as staking_events
from nesachain.types import events as app_events
from tests.abci.busy_chain import BusyChain

DECLARED = {app_events.EVENT_MESSAGE: (app_events.ATTR_ACTION, app_events.ATTR_SENDER, app_events.ATTR_MODULE),
            **bank_events.ATTRIBUTES, **staking_events.ATTRIBUTES, **inference_events.ATTRIBUTES}


def test_events_declared_once_across_modules() -> None:
    tables = [bank_events.ATTRIBUTES, staking_events.ATTRIBUTES, inference_events.ATTRIBUTES]
    assert sum(len(t) for t in tables) + 1 == len(DECLARED)  # no type declared by two modules


def test_events_every_constant_is_in_its_modules_table() -> None:
    for module in (bank_events, staking_events, inference_events):
        names = {getattr(module, n) for n in dir(module) if n.startswith("EVENT_")}
        assert names == set(module.ATTRIBUTES), module.__name__


def test_events_busy_chain_emits_only_declared_types_with_declared_attributes(busy: BusyChain) -> None:
    seen = set()
    for event in busy.events:
        assert event.type in DECLARED, event.type
        assert tuple(k for k, _ in event.attributes) == DECLARED[event.type], event
        seen.add(event.type)
    # what clients search stays as it was
    assert {"message", "transfer", "fee", "tombstone", "slash", "jail", "session_opened", "session_settled",
            "challenge_decided", "miner_slashed", "miner_inactive"} <= seen
    assert len(seen) >= 30


def test_events_names_clients_search_are_unchanged() -> None:
    assert (app_events.EVENT_MESSAGE, app_events.ATTR_SENDER) == ("message", "sender")
    assert (bank_events.EVENT_TRANSFER, bank_events.ATTR_RECIPIENT) == ("transfer", "recipient")
    assert (staking_events.EVENT_TOMBSTONE, staking_events.EVENT_MINER_INACTIVE) == ("tombstone", "miner_inactive")
    assert staking_events.ATTRIBUTES["tombstone"][2] == "evidence"
    assert (inference_events.EVENT_SESSION_OPENED, inference_events.ATTR_SESSION_ID) == ("session_opened",
                                                                                        "session_id")


def test_events_staking_lifecycle_emits_only_declared_types_with_declared_attributes() -> None:
    """Unjail, matured unbondings, a miner back from inactive: the events the busy chain does not reach."""
    from nesachain.modules.staking.msgs import MsgDelegate, MsgMinerHeartbeat, MsgUnbondMiner, MsgUndelegate, MsgUnjail
    from tests.modules.staking.conftest import Harness, addr, cons_addr, cons_key, key, miner_key, register_miner_msg

    h = Harness()
    seen: list[app_events.Event] = []

    def block(*txs: bytes, absent: tuple[bytes, ...] = ()) -> None:
        r = h.block(list(txs), absent=absent)
        assert all(t.code == 0 for t in r.tx_results), [t.log for t in r.tx_results]
        seen.extend([*r.events, *(e for t in r.tx_results for e in t.events)])

    down = (cons_addr(cons_key(3)),)
    block()
    block(h.tx(key(4), [register_miner_msg(4, 0, 0, 15)]), h.tx(key(6), [MsgDelegate(addr(key(6)), addr(key(0)), 2)]))
    block(h.tx(key(6), [MsgUndelegate(addr(key(6)), addr(key(0)), 1)]))
    for _ in range(12):
        block(absent=down)
    block(h.tx(key(4), [MsgMinerHeartbeat(addr(key(4)), addr(miner_key(0)))]))
    for _ in range(6):
        block()
    block(h.tx(key(3), [MsgUnjail(addr(key(3)))]), h.tx(key(4), [MsgUnbondMiner(addr(key(4)), addr(miner_key(0)))]))
    for _ in range(5):
        block()
    types = set()
    for event in seen:
        assert event.type in DECLARED, event.type
        assert tuple(k for k, _ in event.attributes) == DECLARED[event.type], event
        types.add(event.type)
    assert {"unjail", "complete_unbonding", "miner_active", "miner_inactive", "complete_miner_unbonding"} <= types
