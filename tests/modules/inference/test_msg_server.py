"""inference msg server (``nesachain.modules.inference.msg_server``): who may report a stand-in, and the
checks of the message's fields."""

from __future__ import annotations

import pytest

from nesachain.types.errors import ChainError
from tests.modules.inference.conftest import CLIENT, OWNER
from tests.modules.inference.keeper_support import ESCROW, ROUTE, STANDINS, rejected


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
