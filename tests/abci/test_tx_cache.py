"""The cache of decoded, signature-checked txs holds only txs that passed the whole check: a refused
tx costs its sender nothing, so it must leave nothing behind on the node."""

from __future__ import annotations

import pytest

from nesachain.abci import chain as chain_mod
from nesachain.modules.bank.msgs import MsgSend
from nesachain.tx.tx import TxBody, sign_tx
from tests.abci.conftest import CHAIN_ID, FUNDS, addr, key, send_tx


def _padded(k_index: int, seq: int, amount: int, *, fee: int = 1000, chain_id: str = CHAIN_ID) -> bytes:
    """A signed tx of 24 sends, about 3.7 KB (near the test genesis' 4096-byte limit)."""
    k = key(k_index)
    body = TxBody(chain_id, addr(k), seq, fee, (MsgSend(addr(k), addr(key(9)), amount),) * 24, "m" * 100)
    return sign_tx(body, k)


def test_check_tx_refused_txs_leave_nothing_in_the_verified_cache(committed_chain) -> None:
    """Before: ``_decode`` cached every tx whose signature verified, before the ante ran, so an unfunded
    account's 4 KB txs (64 KB on a real chain) stayed cached at no cost to their sender: this test saw
    the cache grow to 200 entries."""
    c = committed_chain()
    refused = []
    for i in range(50):
        refused.append(_padded(20, 0, i + 1))  # key 20 holds nothing: unfunded
        refused.append(_padded(0, 5 + i, i + 1))  # funded, wrong sequence
        refused.append(_padded(0, 0, i + 1, fee=1))  # funded, fee below the minimum
        refused.append(_padded(1, 0, FUNDS // 20 + i))  # ante passes, the message fails: refused all the same
    for raw in refused:
        assert not c.check_tx(raw).ok
    assert c.verified_txs == 0
    assert c.prepare_txs(refused, 0) == [] and not c.process_txs(refused[:1])
    assert c.verified_txs == 0


def test_check_tx_admitted_tx_is_cached_and_reused_by_the_block(committed_chain) -> None:
    c = committed_chain()
    raw = send_tx(key(0), 0, addr(key(9)), 5)
    assert c.check_tx(raw).ok
    assert c.verified_txs == 1
    assert c.process_txs([raw])
    [r] = c.finalize_block(2, [raw]).tx_results
    assert r.ok and c.verified_txs == 1


def test_verified_cache_bounded_by_bytes(committed_chain, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chain_mod, "VERIFIED_CACHE_BYTES", 10_000)
    c = committed_chain()
    for seq in range(6):
        assert c.check_tx(_padded(0, seq, 1)).ok
    assert c.verified_txs == 2  # three ~3.7 KB txs would pass 10,000 bytes
