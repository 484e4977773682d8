"""Property test: at least 1,000 generated malformed txs at CheckTx and FinalizeBlock. Nothing
escapes as an exception, every one gets a non-zero registered code, and the app hash is unchanged."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nesachain.abci.chain import Chain
from nesachain.types.encoding import encode
from nesachain.types.errors import registered
from tests.abci.conftest import addr, key, new_chain, send_tx

VALID = [send_tx(key(i % 3), 0, addr(key(5)), 10 + i) for i in range(3)]
CODES = {(e.codespace, e.code) for e in registered()}

json_like = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=20) | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def malformed(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["random", "mutate", "truncate", "structure", "body"]))
    base = draw(st.sampled_from(VALID))
    if kind == "random":
        return draw(st.binary(max_size=300))
    if kind == "mutate":
        pos = draw(st.integers(0, len(base) - 1))
        delta = draw(st.integers(1, 255))
        return base[:pos] + bytes([(base[pos] + delta) % 256]) + base[pos + 1 :]
    if kind == "truncate":
        return base[: draw(st.integers(0, len(base) - 1))]
    if kind == "structure":
        return encode(draw(json_like))
    # a well-formed envelope around an arbitrary body
    body = encode(draw(st.dictionaries(st.sampled_from(["chain_id", "account", "sequence", "fee", "msgs", "memo", "x"]),
                                       json_like, max_size=7)))
    return encode({"body": body, "pubkey": bytes(key(0).verify_key), "signature": b"\x00" * 64})


def _fresh() -> Chain:
    c = new_chain()
    c.finalize_block(1, [])
    c.commit()
    return c


CHAIN = _fresh()
EMPTY_BLOCK_HASH = CHAIN.finalize_block(2, []).app_hash


@settings(max_examples=1200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(txs=st.lists(malformed(), min_size=1, max_size=3))
def test_malformed_txs_get_codes_and_leave_app_hash_unchanged(txs):
    for raw in txs:
        r = CHAIN.check_tx(raw)
        assert r.code != 0
        assert (r.codespace, r.code) in CODES
        assert r.log
    assert CHAIN._check.writes() == {}
    result = CHAIN.finalize_block(2, txs)
    assert all(t.code != 0 for t in result.tx_results)
    assert len(result.tx_results) == len(txs)
    assert result.app_hash == EMPTY_BLOCK_HASH
