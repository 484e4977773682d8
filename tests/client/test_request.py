"""The client's close of a chain session (``nesachain.client.request.close_with_stand_ins``) against the
inference keeper of tests/modules/inference (its ``env``): each stand-in the chain refuses is reported
alone, and the good ones are kept and paid."""

from __future__ import annotations

import pytest

from nesachain.types.errors import ChainError
from tests.modules.inference.conftest import CLIENT, MINERS, OWNER, Env, new_env
from tests.modules.inference.keeper_support import ESCROW, ROUTE, STANDINS


@pytest.fixture
def env() -> Env:
    return new_env()


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
