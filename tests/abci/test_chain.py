"""State-machine tests: determinism, CheckTx rejections with registered codes, no partial state."""

from __future__ import annotations

import json
import random

import pytest
from nacl.signing import SigningKey

from nesachain.abci.chain import Chain
from nesachain.modules.bank.errors import CODESPACE as BANK
from nesachain.modules.bank.msgs import MsgSend
from nesachain.store import CommitStore
from nesachain.tx.tx import SIGN_PREFIX
from nesachain.types import sdk_errors as sdk
from nesachain.types.address import decode_address
from nesachain.types.encoding import encode
from tests.abci.conftest import CHAIN_ID, FUNDS, addr, key, new_chain, send_tx, signed


def balance(c: Chain, a: str) -> int:
    return int(json.loads(c.query("bank/balance", json.dumps({"address": a}).encode()).value)["amount"])


def random_block(rng: random.Random, seqs: dict[int, int]) -> list[bytes]:
    txs = []
    for _ in range(rng.randint(0, 6)):
        i = rng.randrange(3)
        to = addr(key(rng.randrange(5)))
        amount = rng.choice([1, 500, 10**6, FUNDS * 2])  # some fail for lack of funds
        txs.append(send_tx(key(i), seqs[i], to, amount))
        seqs[i] += 1
    return txs


def test_chain_same_txs_two_apps_same_app_hash_every_height(tmp_path):
    rng = random.Random(7)
    a, b = new_chain(), new_chain(CommitStore(tmp_path / "b.db"))
    seqs = {0: 0, 1: 0, 2: 0}
    hashes = set()
    for height in range(1, 16):
        txs = random_block(rng, seqs)
        ra = a.finalize_block(height, txs, time_ns=height * 10**9, block_hash=bytes([height]) * 32)
        rb = b.finalize_block(height, txs, time_ns=height * 10**9, block_hash=bytes([height]) * 32)
        assert ra.app_hash == rb.app_hash
        assert [r.code for r in ra.tx_results] == [r.code for r in rb.tx_results]
        a.commit()
        b.commit()
        hashes.add(a.app_hash)
        if height == 8:  # restart b from disk mid-way: it must carry on identically
            b.store.close()
            b = Chain(CommitStore(tmp_path / "b.db"))
            assert b.height == 8 and b.app_hash == a.app_hash
    assert len(hashes) > 5  # the state really changed along the way


def test_chain_supply_conserved_after_sends(committed_chain):
    c = committed_chain()
    to = addr(key(9))
    c.finalize_block(2, [send_tx(key(0), 0, to, 12345), send_tx(key(1), 0, to, 5)])
    c.commit()
    assert balance(c, to) == 12350
    total = sum(balance(c, addr(key(i))) for i in range(3)) + balance(c, to) + c.bank.fee_pool(c.store)
    assert total == c.bank.supply(c.store) == 3 * FUNDS
    assert c.bank.fee_pool(c.store) == 2000


def test_chain_failed_msg_keeps_fee_and_sequence_but_no_transfer(committed_chain):
    c = committed_chain()
    to = addr(key(9))
    r = c.finalize_block(2, [send_tx(key(0), 0, to, FUNDS)])  # FUNDS + fee > balance
    c.commit()
    assert (r.tx_results[0].codespace, r.tx_results[0].code) == ("sdk", sdk.ErrInsufficientFunds.code)
    assert balance(c, to) == 0
    assert balance(c, addr(key(0))) == FUNDS - 1000
    assert c.auth.sequence(c.store, decode_address(addr(key(0)))) == 1


def _raw_tx(k: SigningKey, body: dict[str, object], *, sign_with: SigningKey | None = None) -> bytes:
    body_bytes = encode(body)
    sig = (sign_with or k).sign(SIGN_PREFIX + body_bytes).signature
    return encode({"body": body_bytes, "pubkey": bytes(k.verify_key), "signature": bytes(sig)})


def _body(k: SigningKey, **over: object) -> dict[str, object]:
    body: dict[str, object] = {
        "chain_id": CHAIN_ID, "account": addr(k), "sequence": 0, "fee": 1000, "memo": "",
        "msgs": [{"@type": "bank/MsgSend", "from_address": addr(k), "to_address": addr(key(5)), "amount": 10}],
    }
    body.update(over)
    return body


def _msg(k: SigningKey, amount: object) -> list[dict[str, object]]:
    return [{"@type": "bank/MsgSend", "from_address": addr(k), "to_address": addr(key(5)), "amount": amount}]


K = key(0)
VALID = send_tx(K, 0, addr(key(5)), 10)
BAD_TXS = {
    "random bytes": (bytes(random.Random(1).randrange(256) for _ in range(200)), sdk.ErrTxDecode),
    "truncated": (VALID[:-7], sdk.ErrTxDecode),
    "bad signature": (_raw_tx(K, _body(K), sign_with=key(1)), sdk.ErrWrongSignature),
    "wrong chain id": (send_tx(K, 0, addr(key(5)), 10, chain_id="other-chain"), sdk.ErrInvalidChainID),
    "sequence gap": (send_tx(K, 3, addr(key(5)), 10), sdk.ErrInvalidSequence),
    "unknown message type": (_raw_tx(K, _body(K, msgs=[{"@type": "bank/MsgSteal", "x": 1}])), sdk.ErrUnknownRequest),
    "zero amount": (_raw_tx(K, _body(K, msgs=_msg(K, 0))), sdk.ErrInvalidCoins),
    "negative amount": (_raw_tx(K, _body(K, msgs=_msg(K, -5))), sdk.ErrInvalidCoins),
    "amount 2^64 (as text)": (_raw_tx(K, _body(K, msgs=_msg(K, str(2**64)))), sdk.ErrInvalidCoins),
    "amount 2^64-1 beyond funds": (_raw_tx(K, _body(K, msgs=_msg(K, 2**64 - 1))), sdk.ErrInsufficientFunds),
    "insufficient funds": (send_tx(K, 0, addr(key(5)), FUNDS), sdk.ErrInsufficientFunds),
    "fee below minimum": (send_tx(K, 0, addr(key(5)), 10, fee=999), sdk.ErrInsufficientFee),
    "oversized": (signed(K, 0, [MsgSend(addr(K), addr(key(5)), 1)] * 32), sdk.ErrTxTooLarge),
    "pubkey of another account": (_raw_tx(key(1), _body(K)), sdk.ErrUnauthorized),
    "signer is not the account": (_raw_tx(K, _body(K, msgs=_msg(key(1), 5))), sdk.ErrUnauthorized),
}


@pytest.mark.parametrize("case", sorted(BAD_TXS))
def test_check_tx_bad_tx_registered_code_and_no_state_change(committed_chain, case):
    c = committed_chain()
    raw, expected = BAD_TXS[case]
    before = (c.app_hash, dict(c._check.writes()))
    r = c.check_tx(raw)
    assert (r.codespace, r.code) == (expected.codespace, expected.code), r.log
    assert r.log and expected.description in r.log
    assert (c.app_hash, dict(c._check.writes())) == before
    # the same account can still use sequence 0: nothing was consumed
    assert c.check_tx(VALID).ok


def test_check_tx_reused_sequence_rejected(committed_chain):
    c = committed_chain()
    assert c.check_tx(VALID).ok
    r = c.check_tx(send_tx(K, 0, addr(key(6)), 10))
    assert (r.codespace, r.code) == ("sdk", sdk.ErrInvalidSequence.code)
    assert "expects sequence 1, tx has 0" in r.log
    c.finalize_block(2, [VALID])
    c.commit()
    r = c.check_tx(VALID)  # replay after commit
    assert r.code == sdk.ErrInvalidSequence.code


def test_check_tx_non_canonical_encoding_rejected(committed_chain):
    c = committed_chain()
    import msgpack

    env = msgpack.unpackb(VALID, raw=False)
    reordered = msgpack.packb({"signature": env["signature"], "pubkey": env["pubkey"], "body": env["body"]})
    r = c.check_tx(reordered)
    assert r.code == sdk.ErrTxDecode.code and "not canonical" in r.log


def test_finalize_block_internal_error_is_code_1_without_traceback(committed_chain, monkeypatch):
    c = committed_chain()

    def boom(ctx, msg):
        raise RuntimeError("secret internals")

    monkeypatch.setitem(c.router._msgs, MsgSend.TYPE, boom)
    r = c.finalize_block(2, [VALID])
    res = r.tx_results[0]
    assert (res.codespace, res.code) == ("sdk", 1)
    assert "secret internals" not in res.log and "Traceback" not in res.log


def test_bank_codespace_registered():
    assert BANK == "bank"


def test_query_unknown_path_and_bad_data_are_codes(chain):
    r = chain.query("bank/nope", b"")
    assert r.code == sdk.ErrUnknownRequest.code and "bank/balance" in r.log
    r = chain.query("bank/balance", b"{not json")
    assert r.code == sdk.ErrInvalidRequest.code
    r = chain.query("bank/balance", b'{"address": "nesa1bogus"}')
    assert r.code == sdk.ErrInvalidAddress.code


BAD_VALUES = [-1, 2**64, 2**70, -(2**70), 1.5, True, None, "", "x" * 5000, "nesa1bogus", [], {}, "0"]
PARAM_NAMES = ["address", "validator", "delegator", "session_id", "model_id", "limit", "offset", "status", "miner"]


def test_every_query_answers_bad_parameters_with_a_code_not_an_internal_error(committed_chain):
    """Any JSON a client sends to any query path: an answer or a registered error, never sdk/1."""
    chain = committed_chain()
    paths = chain.router.query_paths()
    assert "inference/session" in paths and "staking/delegations" in paths
    for path in paths:
        for name in PARAM_NAMES:
            for value in BAD_VALUES:
                r = chain.query(path, json.dumps({name: value}).encode())
                assert r.code != sdk.ErrInternal.code, (path, name, value, r.log)
