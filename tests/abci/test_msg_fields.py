"""Property test: every registered Msg type, correctly signed by a funded account, with fields of
the right types (now and then the wrong one) drawn from plausible and implausible values, against a
chain with validators, models, miners and an open session. CheckTx and FinalizeBlock answer each
with success or a registered code, never the internal error, and nothing escapes as an exception."""

from __future__ import annotations

import dataclasses
import typing

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nesachain.modules.inference.msgs import MsgOpenSession
from nesachain.tx.msg import _MSGS
from nesachain.tx.tx import SIGN_PREFIX
from nesachain.types import sdk_errors as sdk
from nesachain.types.encoding import encode
from nesachain.types.errors import registered
from tests.modules.staking.conftest import (
    CHAIN_ID,
    FEE,
    MODEL,
    Harness,
    addr,
    cons_key,
    key,
    miner_key,
    pub,
    register_miner_msg,
)

CODES = {(e.codespace, e.code) for e in registered()}
INTERNAL = (sdk.ErrInternal.codespace, sdk.ErrInternal.code)
TYPES = sorted(_MSGS)
ACCOUNTS = [key(i) for i in range(8)]
MINERS = [addr(miner_key(m)) for m in range(3)]


def _chain() -> Harness:
    """Four validators, two models (genesis); three miners on the model's blocks; one open session."""
    h = Harness()
    h.block()
    for m, (start, end) in enumerate([(0, 10), (10, 20), (20, 30)]):
        h.run(key(4 + m), register_miner_msg(4 + m, m, start, end))
    route = [[MINERS[0], 0, 10], [MINERS[1], 10, 20], [MINERS[2], 20, 30]]
    res = h.run(key(7), MsgOpenSession(addr(key(7)), MODEL, route, 20, 10_000))
    assert res.code == 0, res.log
    return h


H = _chain()

ints = st.one_of(st.integers(-2, 40), st.integers(-(2**63), 2**64 - 1),
                 st.sampled_from([0, 1, 2**63 - 1, 2**63, 2**64 - 1, 10**12, 2_000_000]))
named = st.sampled_from([addr(k) for k in ACCOUNTS] + MINERS)
strs = st.one_of(named, named, named, st.text(max_size=12), st.sampled_from(
    ["nesa1bogus", "", MODEL, "minilm-l6", "127.0.0.1:7001", "[::1]:1", "match", "mismatch", "x" * 300]))
byts = st.one_of(st.sampled_from([bytes(32), bytes(64), b"\x01" * 32, pub(cons_key(9)), pub(miner_key(5))]),
                 st.binary(max_size=70))
route_hop = st.lists(st.one_of(st.sampled_from(MINERS), ints, strs), min_size=3, max_size=3)
lists = st.one_of(st.lists(route_hop, max_size=4), st.lists(st.one_of(strs, st.just("0" * 64)), max_size=31),
                  st.sampled_from([[[MINERS[0], 0, 10], [MINERS[1], 10, 20], [MINERS[2], 20, 30]], ["0" * 64] * 3]))
anything = st.one_of(ints, strs, byts, lists, st.none(), st.booleans())
BY_TYPE = {int: ints, str: strs, bytes: byts, list: lists}


@st.composite
def msg_tx(draw: st.DrawFn) -> bytes:
    type_name = draw(st.sampled_from(TYPES))
    cls = _MSGS[type_name]
    hints = {f.name: typing.get_type_hints(cls)[f.name] for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    fields = {n: draw(anything if draw(st.integers(0, 19)) == 0 else BY_TYPE[t]) for n, t in hints.items()}
    signer = draw(st.sampled_from(ACCOUNTS))
    first = next(iter(hints))
    if draw(st.integers(0, 3)):  # usually the message names the account that signs it, as it must
        fields[first] = addr(signer)
    if draw(st.integers(0, 19)) == 0:  # now and then a field too many or too few
        fields.pop(first) if draw(st.booleans()) else fields.update(extra=1)
    body = encode({"chain_id": CHAIN_ID, "account": addr(signer), "sequence": H.seqs.get(addr(signer), 0),
                   "fee": FEE, "msgs": [{"@type": type_name, **fields}], "memo": ""})
    signature = bytes(signer.sign(SIGN_PREFIX + body).signature)
    return encode({"body": body, "pubkey": bytes(signer.verify_key), "signature": signature})


@settings(max_examples=2000, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(raw=msg_tx())
def test_signed_messages_with_any_fields_get_registered_codes_never_internal(raw: bytes) -> None:
    r = H.chain.check_tx(raw)
    assert (r.codespace, r.code) != INTERNAL, r.log
    assert r.code == 0 or (r.codespace, r.code) in CODES
    H.chain._check = type(H.chain._check)(H.chain.store)  # forget the check state's sequence bump
    height = H.height + 1  # finalized, never committed: each example starts from the same state
    t = H.chain.finalize_block(height, [raw], time_ns=height * 10**9, block_hash=height.to_bytes(32, "big"))
    assert len(t.tx_results) == 1
    assert (t.tx_results[0].codespace, t.tx_results[0].code) != INTERNAL, t.tx_results[0].log
    assert t.tx_results[0].code == 0 or (t.tx_results[0].codespace, t.tx_results[0].code) in CODES
