"""Downtime and double-signing, driven through Chain.finalize_block with the BlockInfo CometBFT
would send (last commit votes, misbehavior)."""

from __future__ import annotations

from nesachain.modules.staking.errors import CODESPACE
from nesachain.modules.staking.msgs import MsgDelegate, MsgUndelegate, MsgUnjail
from tests.modules.staking.conftest import SELF_BOND, Harness, addr, cons_addr, cons_key, create_validator_msg, key, pub

DOWNTIME_CUT = SELF_BOND * 10_000 // 1_000_000  # 1 %
DOUBLE_SIGN_CUT = SELF_BOND * 50_000 // 1_000_000  # 5 %


def test_downtime_jails_and_slashes_then_unjail_after_the_jail_period(h: Harness) -> None:
    down = cons_addr(cons_key(3))
    r = h.block(absent=[down])
    supply0 = h.q("bank/supply")["supply"]
    jailed_at = 0
    for _ in range(30):
        r = h.block(absent=[down])
        if any(e.type == "jail" for e in r.events):
            jailed_at = h.height
            assert [(u.pubkey, u.power) for u in r.validator_updates] == [(pub(cons_key(3)), 0)]
            break
    # window 10, must sign 5 of 10: jailed on the first block past the first full window
    assert jailed_at == 11
    v = h.validator(3)
    assert v["jailed"] and v["status"] == "jailed" and v["jailed_until"] == jailed_at + 5
    assert v["tokens"] == SELF_BOND - DOWNTIME_CUT
    assert h.q("bank/supply")["supply"] == supply0 - DOWNTIME_CUT  # burned
    slash = next(e for e in r.events if e.type == "slash")
    assert dict(slash.attributes)["reason"] == "missing_signature"
    h.blocks(2, absent=[down])
    assert down not in h.cometbft_set()  # gone from CometBFT's set two heights later
    # the others keep signing; the chain goes on; early unjail is refused
    early = h.run(key(3), MsgUnjail(addr(key(3))))
    assert (early.codespace, early.code) == (CODESPACE, 12)
    while h.height < jailed_at + 5:
        h.block()
    r = h.block([h.tx(key(3), [MsgUnjail(addr(key(3)))])])
    assert r.tx_results[0].ok, r.tx_results[0].log
    assert [(u.pubkey, u.power) for u in r.validator_updates] == [(pub(cons_key(3)), 9)]  # 9.9 NES -> power 9
    assert not h.validator(3)["jailed"]
    h.blocks(12)  # signing again: not jailed a second time
    assert not h.validator(3)["jailed"]


def test_a_few_misses_inside_the_window_are_tolerated(h: Harness) -> None:
    down = cons_addr(cons_key(1))
    for i in range(40):
        h.block(absent=[down] if i % 3 == 0 else [])  # misses 1 block in 3 (< 5 of 10)
    assert not h.validator(1)["jailed"]
    assert h.validator(1)["tokens"] == SELF_BOND


def test_double_sign_slashes_jails_and_tombstones_forever(h: Harness) -> None:
    h.blocks(3)
    # a delegator unbonds before the infraction and another after it: only the later entry is cut
    h.block([h.tx(key(6), [MsgDelegate(addr(key(6)), addr(key(2)), 2_000_000)]),
             h.tx(key(7), [MsgDelegate(addr(key(7)), addr(key(2)), 2_000_000)])])
    h.block([h.tx(key(6), [MsgUndelegate(addr(key(6)), addr(key(2)), 2_000_000)])])
    infraction = h.height + 1
    h.block()
    h.block([h.tx(key(7), [MsgUndelegate(addr(key(7)), addr(key(2)), 2_000_000)])])
    supply0 = h.q("bank/supply")["supply"]
    evidence = ("duplicate_vote", cons_addr(cons_key(2)), 10, infraction)
    r = h.block(misbehavior=[evidence])
    assert [(u.pubkey, u.power) for u in r.validator_updates] == [(pub(cons_key(2)), 0)]
    types = [e.type for e in r.events]
    assert "slash" in types and "jail" in types and "tombstone" in types
    v = h.validator(2)
    assert v["tombstoned"] and v["jailed"] and v["status"] == "tombstoned"
    assert v["tokens"] == SELF_BOND - DOUBLE_SIGN_CUT
    entries = {e["delegator"]: e["amount"] for e in h.q("staking/unbonding")["entries"]}
    assert entries[addr(key(6))] == 2_000_000  # left before the infraction
    assert entries[addr(key(7))] == 2_000_000 - 2_000_000 * 50_000 // 1_000_000
    burned = DOUBLE_SIGN_CUT + 100_000
    assert h.q("bank/supply")["supply"] == supply0 - burned
    # the same evidence again changes nothing; unjail is refused for good
    r = h.block(misbehavior=[evidence])
    assert not any(e.type == "slash" for e in r.events)
    h.blocks(20)
    res = h.run(key(2), MsgUnjail(addr(key(2))))
    assert (res.codespace, res.code) == (CODESPACE, 13)
    # the consensus key can never come back under another operator
    res = h.run(key(5), create_validator_msg(key(5), cons_key(2), "again", SELF_BOND))
    assert (res.codespace, res.code) == (CODESPACE, 3)


def test_evidence_for_an_unknown_address_is_ignored(h: Harness) -> None:
    h.block()
    r = h.block(misbehavior=[("duplicate_vote", b"\x07" * 20, 10, 1)])
    assert r.validator_updates == () and not any(e.type == "slash" for e in r.events)


def test_light_client_attack_is_punished_like_a_duplicate_vote(h: Harness) -> None:
    h.blocks(2)
    h.block(misbehavior=[("light_client_attack", cons_addr(cons_key(0)), 10, 1)])
    assert h.validator(0)["tombstoned"]
