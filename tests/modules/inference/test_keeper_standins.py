"""inference keeper: stand-ins that took over a dead miner's blocks, their pay and the checks on reporting them."""

from __future__ import annotations

import pytest

from nesachain.modules.inference import errors as E
from nesachain.types.errors import ChainError
from tests.modules.inference.conftest import CLIENT, MINERS, OWNER, PRICE
from tests.modules.inference.keeper_support import (
    ESCROW,
    ROUTE,
    STANDINS,
    all_match,
    commit_reveal,
    rejected,
)


def test_stand_ins_are_paid_for_the_tokens_they_served_and_a_dead_primary_is_penalized(env):
    from tests.modules.inference.conftest import FakeMiner

    for m in STANDINS:  # two more miners for blocks [2, 4), hop 1's
        env.miners.miners[m] = FakeMiner(m, OWNER, 10_000, "toy", 2, 4)
    k = env.keeper
    s = k.open_session(env.ctx(), CLIENT, "toy", ROUTE, 20, ESCROW)
    s = k.add_stand_in(env.ctx(), s, 1, STANDINS[0], 4, 1)  # hop 1's miner died after 4 tokens
    s = k.add_stand_in(env.ctx(), s, 1, STANDINS[1], 7, 3)  # and its stand-in after 7 (attempt 2 was refused)
    s = k.close_session(env.ctx(), s, 10)
    assert [(h.tokens, h.stands_in_for) for h in s.hops] == [(10, -1), (4, -1), (10, -1), (3, 1), (3, 1)]
    for m in (MINERS[0], MINERS[2], *STANDINS):  # the dead miner commits nothing
        commit_reveal(env, s.id, m)
    env.end_block(s.reveal_deadline)
    s = k.session(env.store, s.id)
    assert s.hops[1].failed == "no_commit" and (MINERS[1], True) in env.miners.outcomes
    assert {s.hops[c.hop].miner for c in s.challenges} == {MINERS[0], MINERS[2], *STANDINS}
    s = all_match(env, s)
    assert s.status == "settled"
    assert [h.paid for h in s.hops] == [2 * n * PRICE for n in (10, 0, 10, 3, 3)]
    assert s.refund == ESCROW - sum(h.paid for h in s.hops) - s.fee  # hop 1's first 4 tokens go back


def test_stand_in_rejections_change_nothing(env):
    from tests.modules.inference.conftest import FakeMiner

    env.miners.miners[STANDINS[0]] = FakeMiner(STANDINS[0], OWNER, 10_000, "toy", 2, 4)
    env.miners.miners[STANDINS[1]] = FakeMiner(STANDINS[1], OWNER, 10_000, "toy", 2, 4, status="inactive")
    k = env.keeper
    s = k.open_session(env.ctx(), CLIENT, "toy", ROUTE, 20, ESCROW)
    rejected(env, E.ErrInvalidStandIn, k.add_stand_in, s, 3, STANDINS[0], 1, 1)  # the route has hops 0-2
    rejected(env, E.ErrInvalidStandIn, k.add_stand_in, s, 1, MINERS[2], 1, 1)  # in the route already
    rejected(env, E.ErrMinerUnavailable, k.add_stand_in, s, 0, STANDINS[0], 1, 1)  # serves other blocks
    rejected(env, E.ErrMinerUnavailable, k.add_stand_in, s, 1, STANDINS[1], 1, 1)  # inactive
    rejected(env, E.ErrInvalidStandIn, k.add_stand_in, s, 1, STANDINS[0], 21, 1)  # past max_tokens
    rejected(env, E.ErrInvalidStandIn, k.add_stand_in, s, 1, STANDINS[0], 1, 0)  # attempt 0 is the route's
    s = k.add_stand_in(env.ctx(), s, 1, STANDINS[0], 5, 1)
    rejected(env, E.ErrInvalidStandIn, k.add_stand_in, s, 1, STANDINS[0], 6, 2)  # twice
    env.miners.miners[STANDINS[1]] = FakeMiner(STANDINS[1], OWNER, 10_000, "toy", 2, 4)
    rejected(env, E.ErrInvalidStandIn, k.add_stand_in, s, 1, STANDINS[1], 4, 2)  # before the last one took over
    rejected(env, E.ErrInvalidStandIn, k.add_stand_in, s, 1, STANDINS[1], 6, 1)  # attempts only go up
    s = k.close_session(env.ctx(), s, 3)  # closed before the stand-in's token 5: it served none
    assert [h.tokens for h in s.hops] == [3, 3, 3, 0]
    rejected(env, E.ErrWrongPhase, k.add_stand_in, s, 1, STANDINS[1], 6, 2)


def test_only_the_client_reports_stand_ins_and_the_message_checks_its_fields(env):
    from nesachain.modules.inference.msg_server import MsgServer
    from nesachain.modules.inference.msgs import MsgAddStandIn, MsgAddStandInResponse
    from nesachain.types.address import encode_address
    from nesachain.types.sdk_errors import ErrUnauthorized
    from tests.modules.inference.conftest import FakeMiner

    env.miners.miners[STANDINS[0]] = FakeMiner(STANDINS[0], OWNER, 10_000, "toy", 2, 4)
    s = env.keeper.open_session(env.ctx(), CLIENT, "toy", ROUTE, 20, ESCROW)
    server = MsgServer(env.keeper)
    msg = MsgAddStandIn(encode_address(OWNER), s.id, 1, encode_address(STANDINS[0]), 2, 1)
    rejected(env, ErrUnauthorized, server.add_stand_in, msg)
    ok = MsgAddStandIn(encode_address(CLIENT), s.id, 1, encode_address(STANDINS[0]), 2, 1)
    ok.validate_basic()
    assert server.add_stand_in(env.ctx(), ok) == MsgAddStandInResponse(session_id=s.id, hop=3)
    for bad in (MsgAddStandIn(ok.client, s.id, 1, ok.miner, 2, 0), MsgAddStandIn(ok.client, s.id, -1, ok.miner, 2, 1),
                MsgAddStandIn(ok.client, s.id, 1, "nesa1bad", 2, 1)):
        with pytest.raises(ChainError):
            bad.validate_basic()


def test_a_stand_in_the_chain_refuses_does_not_unpay_the_others(env):
    """The client's close: one stand-in the chain will not take refuses the whole tx, so the client
    reports each stand-in alone and then closes; the good one is kept and paid for its tokens."""
    from nesachain.client.request import close_with_stand_ins
    from nesachain.modules.inference.msg_server import MsgServer
    from nesachain.modules.inference.msgs import MsgAddStandIn, MsgCloseSession
    from nesachain.types.address import encode_address
    from nesachain.wallet.txs import TxOutcome
    from tests.modules.inference.conftest import FakeMiner

    env.miners.miners[STANDINS[0]] = FakeMiner(STANDINS[0], OWNER, 10_000, "toy", 4, 6)
    env.miners.miners[STANDINS[1]] = FakeMiner(STANDINS[1], OWNER, 10_000, "toy", 2, 4, status="jailed")
    s = env.keeper.open_session(env.ctx(), CLIENT, "toy", ROUTE, 20, ESCROW)
    server = MsgServer(env.keeper)
    handlers = {MsgAddStandIn: server.add_stand_in, MsgCloseSession: server.close_session}
    sent: list[list[str]] = []

    def send(msgs):  # a tx: every message on one branch, merged only if all succeed
        sent.append([type(m).__name__ for m in msgs])
        ctx = env.ctx().branch()
        try:
            for m in msgs:
                handlers[type(m)](ctx, m)
        except ChainError as err:
            return TxOutcome("", 0, err.code, err.codespace, err.log, "deliver")
        env.ctx().merge(ctx)
        return TxOutcome("", env.height, 0, "", "", "deliver")

    client = encode_address(CLIENT)
    bad = MsgAddStandIn(client, s.id, 1, encode_address(STANDINS[1]), 2, 1)
    good = MsgAddStandIn(client, s.id, 2, encode_address(STANDINS[0]), 6, 1)
    closed, kept = close_with_stand_ins(send, [bad, good], MsgCloseSession(client, s.id, 10))
    assert closed.ok and kept == [good]
    assert sent == [["MsgAddStandIn", "MsgAddStandIn", "MsgCloseSession"], ["MsgAddStandIn"], ["MsgAddStandIn"],
                    ["MsgCloseSession"]]
    s = env.keeper.session(env.store, s.id)
    assert s.status == "committing"
    assert [(h.miner, h.tokens) for h in s.hops] == [(MINERS[0], 10), (MINERS[1], 10), (MINERS[2], 6),
                                                     (STANDINS[0], 4)]
    # all good: one tx, nothing sent again
    s2 = env.keeper.open_session(env.ctx(), CLIENT, "toy", ROUTE, 20, ESCROW)
    sent.clear()
    good2 = MsgAddStandIn(client, s2.id, 2, encode_address(STANDINS[0]), 3, 1)
    closed, kept = close_with_stand_ins(send, [good2], MsgCloseSession(client, s2.id, 5))
    assert closed.ok and kept == [good2] and len(sent) == 1
