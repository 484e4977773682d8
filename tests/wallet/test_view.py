"""The chain view the agents poll (``nesachain.wallet.view``), over an in-process chain behind a fake RPC."""

from __future__ import annotations

import pytest

from nesachain.modules.inference.msgs import MsgCloseSession, MsgOpenSession
from nesachain.wallet.view import ChainView
from tests.modules.staking.conftest import Harness, addr, key, miner_key, register_miner_msg
from tests.wallet.fakes import FakeRPC


@pytest.fixture
def h() -> Harness:
    return Harness()


def test_chain_view_reads_sessions_through_the_chains_filters(h: Harness) -> None:
    """What the agents poll: sessions of one status, and the count a retiring miner waits on."""
    h.block()
    for m, (start, end) in enumerate([(0, 10), (10, 20), (20, 30)]):
        assert h.run(key(4 + m), register_miner_msg(4 + m, m, start, end)).ok
    route = [[addr(miner_key(m)), 10 * m, 10 * m + 10] for m in range(3)]
    for _ in range(2):
        assert h.run(key(7), MsgOpenSession(addr(key(7)), "smollm2-135m", route, 20, 10_000)).ok
    assert h.run(key(7), MsgCloseSession(addr(key(7)), 2, 0)).ok
    view = ChainView(FakeRPC(h), key(4))  # type: ignore[arg-type]
    one = addr(miner_key(1))
    assert [s["id"] for s in view.sessions("open")] == [1] and [s["id"] for s in view.sessions("committing")] == [2]
    assert [s["id"] for s in view.sessions(miner=one)] == [1, 2] and list(view.sessions(miner=addr(key(9)))) == []
    assert view.count_sessions("unsettled", one) == 2 and view.count_sessions("settled", one) == 0
    while h.chain.inference.keeper.session(h.chain.store, 2).status != "settled":  # type: ignore[union-attr]
        h.block()
    assert view.count_sessions("unsettled", one) == 1 and view.count_sessions() == 2
