"""Slashing on a real localnet: a stopped validator of 5 is jailed and slashed while the chain goes
on, and unjails after its jail period; two CometBFT nodes sharing one priv_validator_key produce
DUPLICATE_VOTE evidence and that validator is slashed and tombstoned."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nesachain.localnet.net import VALIDATOR_SELF_BOND, Localnet
from nesachain.wallet import queries
from tests.integration.conftest import start_localnet
from tests.integration.test_staking_localnet import (
    InvariantWatcher,
    cometbft_powers,
    cons_address,
    nesad,
    nesad_tx,
    wait_until,
)

pytestmark = [pytest.mark.localnet, pytest.mark.slow]

DOWNTIME_FRACTION_PPM = 10_000  # genesis/localnet.json
DOUBLE_SIGN_FRACTION_PPM = 50_000
JAIL_BLOCKS = 6


@pytest.fixture
def net5(tmp_path: Path) -> Iterator[Localnet]:
    net = start_localnet(tmp_path / "net", n=5)
    try:
        yield net
    finally:
        net.down()


def test_staking_stopped_validator_is_jailed_and_slashed_then_unjails(net5: Localnet) -> None:
    net = net5
    rpc = net.rpc(0)
    operator = net.keyring().show("operator4").address
    cons = cons_address(net.home(4))
    with InvariantWatcher(net) as watch:
        supply0 = queries.supply(rpc)["supply"]
        net.stop(4)
        stopped_at = rpc.height()
        v = wait_until("operator4's validator to be jailed",
                       lambda: (lambda v: v if v["jailed"] else None)(
                           queries.validator(rpc, operator)), timeout=120)
        cut = VALIDATOR_SELF_BOND * DOWNTIME_FRACTION_PPM // 1_000_000
        assert v["tokens"] == VALIDATOR_SELF_BOND - cut
        assert queries.supply(rpc)["supply"] == supply0 - cut  # burned
        jailed_until = v["jailed_until"]
        jailed_at = jailed_until - JAIL_BLOCKS
        rpc.wait_height(jailed_at + 3, timeout=60)
        assert cons in cometbft_powers(net, jailed_at + 1)
        assert cons not in cometbft_powers(net, jailed_at + 2)
        # the chain kept going the whole time
        assert rpc.height() > stopped_at + 10
        # early unjail is refused with the registered code
        early = nesad(net, "tx", "staking", "unjail", "operator4")
        if rpc.height() < jailed_until - 1:
            assert early.returncode == 1 and "code 12 (staking)" in early.stdout, early.stdout
        net.start(4)
        wait_until("node4 to catch up", lambda: net.rpc(4).height() >= rpc.height() - 1, timeout=120)
        rpc.wait_height(jailed_until, timeout=60)
        out = nesad_tx(net, "staking", "unjail", "operator4")
        assert out["code"] == 0, out
        rpc.wait_height(out["height"] + 3, timeout=60)
        assert cometbft_powers(net, out["height"] + 2)[cons] == (VALIDATOR_SELF_BOND - cut) // 1_000_000
        v = queries.validator(rpc, operator)
        assert v["status"] == "bonded" and not v["jailed"]
    watch.assert_held(min_blocks=15)


def test_staking_two_nodes_sharing_a_key_double_sign_and_get_tombstoned(net5: Localnet) -> None:
    net = net5
    rpc = net.rpc(0)
    operator = net.keyring().show("operator4").address
    with InvariantWatcher(net) as watch:
        supply0 = queries.supply(rpc)["supply"]
        twin = net.add_node(share_key_with=4)
        net.start(twin)
        v = wait_until("DUPLICATE_VOTE evidence to tombstone operator4",
                       lambda: (lambda v: v if v["tombstoned"] else None)(
                           queries.validator(rpc, operator)), timeout=150)
        cut = VALIDATOR_SELF_BOND * DOUBLE_SIGN_FRACTION_PPM // 1_000_000
        assert v["jailed"] and v["status"] == "tombstoned"
        assert v["tokens"] == VALIDATOR_SELF_BOND - cut
        assert queries.supply(rpc)["supply"] == supply0 - cut
        found = rpc.call("block_search", query="tombstone.evidence='duplicate_vote'")
        assert int(found["total_count"]) >= 1
        net.stop(twin)
        h = rpc.height()
        rpc.wait_height(h + 3, timeout=60)
        assert cons_address(net.home(4)) not in cometbft_powers(net, h + 2)
        res = nesad(net, "tx", "staking", "unjail", "operator4")
        assert res.returncode == 1 and "code 13 (staking)" in res.stdout, res.stdout
    watch.assert_held(min_blocks=5)
