"""auth through the chain: the ante handler uses a sequence per accepted tx (even when its message
fails), never for a refused one, and the account query reports it."""

from __future__ import annotations

import json

from nesachain.abci.chain import Chain
from nesachain.types import sdk_errors as sdk
from tests.abci.conftest import FUNDS, addr, key, new_chain, send_tx

TO = addr(key(5))


def _sequence(c: Chain, who: str) -> int:
    r = c.query("auth/account", json.dumps({"address": who}).encode())
    assert r.code == 0, r.log
    return int(json.loads(r.value)["sequence"])


def test_ante_sequence_increments_per_accepted_tx_even_when_its_message_fails() -> None:
    c = new_chain()
    txs = [send_tx(key(0), 0, TO, 1), send_tx(key(0), 1, TO, FUNDS), send_tx(key(0), 2, TO, 1)]
    results = c.finalize_block(1, txs).tx_results
    c.commit()
    assert [r.code for r in results] == [0, sdk.ErrInsufficientFunds.code, 0]
    assert _sequence(c, addr(key(0))) == 3
    assert c.bank.fee_pool(c.store) == 3 * 1000  # the failed message's fee was taken too


def test_ante_refused_tx_uses_no_sequence_and_no_fee() -> None:
    c = new_chain()
    refused = [send_tx(key(1), 5, TO, 1), send_tx(key(1), 0, TO, 1, fee=10), send_tx(key(1), 0, TO, 1, chain_id="x")]
    results = c.finalize_block(1, refused).tx_results
    c.commit()
    assert [r.code for r in results] == [sdk.ErrInvalidSequence.code, sdk.ErrInsufficientFee.code,
                                         sdk.ErrInvalidChainID.code]
    assert _sequence(c, addr(key(1))) == 0 and c.bank.fee_pool(c.store) == 0


def test_account_query_bad_address_is_invalid_address() -> None:
    r = new_chain().query("auth/account", b'{"address": "nesa1bogus"}')
    assert r.code == sdk.ErrInvalidAddress.code
