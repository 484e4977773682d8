"""Staking hygiene (issue 28), through Chain.finalize_block: at most ``max_entries`` unbonding entries per
(delegator, validator) pair, a proof of possession of the consensus key in create-validator, a minimum
self-delegation, and a double-sign slash that takes only the stake bonded at the infraction height."""

from __future__ import annotations

from dataclasses import replace

from nesachain.modules.staking.errors import CODESPACE
from nesachain.modules.staking.msgs import MsgDelegate, MsgUndelegate, MsgUnjail
from tests.modules.staking.conftest import (
    SELF_BOND,
    Harness,
    addr,
    cons_addr,
    cons_key,
    create_validator_msg,
    genesis,
    key,
    pub,
)

DOUBLE_SIGN_PPM = 50_000
MIN_SELF = 1_000_000  # min_self_delegation's default


def _entries(h: Harness, delegator: int, validator: int | None = None) -> list[dict[str, object]]:
    found = h.q("staking/unbonding", delegator=addr(key(delegator)))["entries"]
    return [e for e in found if validator is None or e["validator"] == addr(key(validator))]


# max_entries ------------------------------------------------------------------------------------
def test_undelegate_past_max_entries_for_the_pair_is_refused_until_one_completes(h: Harness) -> None:
    """Before: unbonding entries per pair were unlimited (the 8th, and the 800th, were taken), and
    ``slash`` walked them all."""
    d, val = key(6), addr(key(0))
    h.block([h.tx(d, [MsgDelegate(addr(d), val, 5_000_000), MsgDelegate(addr(d), addr(key(1)), 1_000_000)])])
    r = h.block([h.tx(d, [MsgUndelegate(addr(d), val, 1_000 + i)]) for i in range(8)])
    assert [x.ok for x in r.tx_results] == [True] * 7 + [False]
    refused = r.tx_results[7]
    assert (refused.codespace, refused.code) == (CODESPACE, 16) and "has 7 entries unbonding" in refused.log
    assert len(_entries(h, 6, 0)) == 7
    assert h.run(d, MsgUndelegate(addr(d), addr(key(1)), 5)).ok  # another pair has its own 7
    h.blocks(5)  # the unbonding period: the 7 entries complete
    assert _entries(h, 6, 0) == []
    assert h.run(d, MsgUndelegate(addr(d), val, 1_000)).ok


def test_max_entries_is_a_param(h: Harness) -> None:
    h = Harness(genesis(max_entries=2))
    d = key(6)
    h.block([h.tx(d, [MsgDelegate(addr(d), addr(key(0)), 5_000_000)])])
    r = h.block([h.tx(d, [MsgUndelegate(addr(d), addr(key(0)), 10 + i)]) for i in range(3)])
    assert [x.code for x in r.tx_results] == [0, 0, 16]


# proof of possession ----------------------------------------------------------------------------
def test_create_validator_without_possession_of_the_consensus_key_is_refused(h: Harness) -> None:
    """Before: MsgCreateValidator carried no proof of possession, so anyone could bond behind a node's
    consensus key (say, a new node's, read from its announcements) and squat it: the node's real
    operator was then refused with "consensus public key already used"."""
    node_key = cons_key(6)  # a node that key(6) runs; key(5) would squat its consensus key
    squat = create_validator_msg(key(5), node_key, "squat", SELF_BOND)
    own_sig = replace(squat, pop=bytes(key(5).sign(b"anything").signature))
    replayed = replace(squat, pop=create_validator_msg(key(6), node_key, "x", SELF_BOND).pop)  # another operator's
    other_chain = create_validator_msg(key(5), cons_key(7), "elsewhere", SELF_BOND, chain_id="other-chain")
    for msg in (own_sig, replayed, other_chain):
        res = h.run(key(5), msg)
        assert (res.codespace, res.code) == (CODESPACE, 17), res.log
    short = h.chain.check_tx(h.tx(key(5), [replace(squat, pop=b"\x01" * 63)]))
    assert (short.codespace, short.code) == (CODESPACE, 17)  # stateless: a signature has 64 bytes
    h.seqs[addr(key(5))] -= 1  # that one was only checked
    assert h.q("staking/validators")["total"] == 4
    res = h.run(key(6), create_validator_msg(key(6), node_key, "six", SELF_BOND))
    assert res.ok, res.log
    assert h.validator(6)["pubkey"] and h.validator(6)["cons_address"] == cons_addr(node_key).hex().upper()


# min_self_delegation ----------------------------------------------------------------------------
def test_operator_undelegating_below_min_self_delegation_is_jailed_until_it_bonds_again(h: Harness) -> None:
    """Before: an operator could undelegate all but 1 une of its self-bond and go on validating with
    its delegators' stake alone (no minimum self-delegation after creation)."""
    h.block([h.tx(key(6), [MsgDelegate(addr(key(6)), addr(key(1)), 20_000_000)])])
    op = addr(key(1))
    r = h.block([h.tx(key(1), [MsgUndelegate(op, op, SELF_BOND - MIN_SELF)])])  # keeps exactly the minimum
    assert r.tx_results[0].ok and not h.validator(1)["jailed"]
    r = h.block([h.tx(key(1), [MsgUndelegate(op, op, MIN_SELF - 1)])])  # keeps 1 une
    assert r.tx_results[0].ok, r.tx_results[0].log
    assert h.validator(1)["jailed"] and h.validator(1)["status"] == "jailed"
    assert [(u.pubkey, u.power) for u in r.validator_updates] == [(pub(cons_key(1)), 0)]  # out, 21 NES behind it
    jail = next(e for e in r.tx_results[0].events if e.type == "jail")
    assert dict(jail.attributes)["reason"] == "self_delegation_below_min"
    res = h.run(key(1), MsgUnjail(op))
    assert (res.codespace, res.code) == (CODESPACE, 18) and "worth 1unes" in res.log
    assert h.run(key(1), MsgDelegate(op, op, MIN_SELF)).ok
    r = h.block([h.tx(key(1), [MsgUnjail(op)])])
    assert r.tx_results[0].ok, r.tx_results[0].log
    assert [(u.pubkey, u.power) for u in r.validator_updates] == [(pub(cons_key(1)), 21)]


def test_others_undelegating_never_jail_and_create_validator_needs_the_minimum() -> None:
    h = Harness(genesis(min_self_delegation=5_000_000))
    h.block([h.tx(key(6), [MsgDelegate(addr(key(6)), addr(key(2)), 8_000_000)])])
    assert h.run(key(6), MsgUndelegate(addr(key(6)), addr(key(2)), 8_000_000)).ok
    assert not h.validator(2)["jailed"]
    res = h.run(key(5), create_validator_msg(key(5), cons_key(5), "small", 4_000_000))
    assert (res.codespace, res.code) == (CODESPACE, 18)
    assert h.run(key(5), create_validator_msg(key(5), cons_key(5), "enough", 5_000_000)).ok


# slashing the stake at the infraction height ----------------------------------------------------
def test_double_sign_slash_leaves_stake_bonded_after_the_infraction_untouched(h: Harness) -> None:
    """Before: the slash cut the validator's current tokens, so a delegator who joined after the
    infraction (here key(6), two blocks later, before the evidence arrived) lost 5 % with the others."""
    before, after, left_after = key(7), key(6), key(5)
    h.block([h.tx(before, [MsgDelegate(addr(before), addr(key(2)), 4_000_000)]),
             h.tx(left_after, [MsgDelegate(addr(left_after), addr(key(2)), 2_000_000)])])
    h.block()
    infraction = h.height
    h.block([h.tx(after, [MsgDelegate(addr(after), addr(key(2)), 4_000_000)]),
             h.tx(left_after, [MsgUndelegate(addr(left_after), addr(key(2)), 2_000_000)])])
    supply0 = h.q("bank/supply")["supply"]
    r = h.block(misbehavior=[("duplicate_vote", cons_addr(cons_key(2)), 10, infraction)])
    assert any(e.type == "tombstone" for e in r.events)
    worth = {d["delegator"]: d["tokens"] for d in h.q("staking/delegations", validator=addr(key(2)))["delegations"]}
    assert worth[addr(after)] == 4_000_000  # bonded after the infraction: untouched
    assert worth[addr(before)] == 4_000_000 - 4_000_000 * DOUBLE_SIGN_PPM // 1_000_000
    assert worth[addr(key(2))] == SELF_BOND - SELF_BOND * DOUBLE_SIGN_PPM // 1_000_000
    entry = _entries(h, 5, 2)[0]  # bonded before, unbonded after the infraction: at stake, so cut
    assert entry["amount"] == 2_000_000 - 100_000 and entry["bonded_height"] == infraction - 1
    burned = (4_000_000 + SELF_BOND + 2_000_000) * DOUBLE_SIGN_PPM // 1_000_000
    assert h.q("bank/supply")["supply"] == supply0 - burned
    assert h.validator(2)["tokens"] == sum(worth.values())


def test_unbonding_entry_of_stake_bonded_after_the_infraction_is_not_slashed(h: Harness) -> None:
    h.block()
    infraction = h.height
    d = key(6)
    h.block([h.tx(d, [MsgDelegate(addr(d), addr(key(3)), 3_000_000)])])
    h.block([h.tx(d, [MsgUndelegate(addr(d), addr(key(3)), 3_000_000)])])
    h.block(misbehavior=[("duplicate_vote", cons_addr(cons_key(3)), 10, infraction)])
    assert _entries(h, 6, 3)[0]["amount"] == 3_000_000
    assert h.validator(3)["tokens"] == SELF_BOND - SELF_BOND * DOUBLE_SIGN_PPM // 1_000_000
