"""A staking test harness: an in-memory chain driven block by block, with CometBFT's validator-set
delay (updates returned at height H sign from H+2) and last commits built from the set in force."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

import pytest
from nacl.signing import SigningKey

from nesachain.abci.chain import Chain, FinalizeResult, TxResult
from nesachain.modules.staking.msgs import MsgCreateValidator, MsgRegisterMiner, miner_pop_bytes, validator_pop_bytes
from nesachain.store import CommitStore
from nesachain.tx.msg import Msg
from nesachain.tx.tx import TxBody, sign_tx
from nesachain.types.address import address_from_pubkey, encode_address
from nesachain.types.module import BlockInfo

CHAIN_ID = "staking-test-1"
FUNDS = 10**12
FEE = 1000
SELF_BOND = 10_000_000  # power 10
MODEL = "smollm2-135m"
MODEL_BLOCKS = 30
PARAMS: dict[str, int] = {
    "power_reduction": 1_000_000,
    "max_validators": 10,
    "unbonding_blocks": 5,
    "signed_blocks_window": 10,
    "min_signed_per_window": 500_000,
    "downtime_jail_blocks": 5,
    "slash_fraction_downtime": 10_000,
    "slash_fraction_double_sign": 50_000,
    "min_miner_bond": 1_000_000,
    "miner_unbonding_blocks": 4,
    "miner_heartbeat_timeout": 5,
}


def key(i: int) -> SigningKey:
    """Account keys."""
    return SigningKey(bytes([i + 1]) * 32)


def cons_key(i: int) -> SigningKey:
    """Consensus keys (a node's priv_validator_key)."""
    return SigningKey(bytes([100 + i]) * 32)


def miner_key(i: int) -> SigningKey:
    return SigningKey(bytes([200 + i]) * 32)


def addr(k: SigningKey) -> str:
    return encode_address(address_from_pubkey(bytes(k.verify_key)))


def pub(k: SigningKey) -> bytes:
    return bytes(k.verify_key)


def cons_addr(k: SigningKey) -> bytes:
    return address_from_pubkey(pub(k))


def genesis(n_vals: int = 4, n_accounts: int = 8, **params: int) -> dict[str, Any]:
    return {
        "auth": {"params": {"min_fee": FEE, "max_tx_bytes": 8192}},
        "bank": {"balances": [{"address": addr(key(i)), "amount": FUNDS} for i in range(n_accounts)]},
        "staking": {
            "params": {**PARAMS, **params},
            "create_validators": [
                {"operator": addr(key(i)), "pubkey": base64.b64encode(pub(cons_key(i))).decode(),
                 "moniker": f"val{i}", "amount": SELF_BOND}
                for i in range(n_vals)
            ],
        },
        "inference": {"models": [model_entry(MODEL, MODEL_BLOCKS, addr(key(n_accounts - 1))),
                                 model_entry("minilm-l6", 6, addr(key(n_accounts - 1)))]},
    }


def model_entry(model_id: str, n_blocks: int, owner: str) -> dict[str, Any]:
    """A registered model (block hashes are placeholders: these tests serve no shard files)."""
    return {"owner": owner, "model_id": model_id, "architecture": "test", "n_blocks": n_blocks,
            "block_hashes": ["0" * 64] * n_blocks, "price": 1, "deposit": 1_000_000}


def create_validator_msg(operator: SigningKey, cons: SigningKey, moniker: str, amount: int, *,
                         chain_id: str = CHAIN_ID) -> MsgCreateValidator:
    """A create-validator whose consensus key proves possession (signs the chain id and the operator)."""
    o = addr(operator)
    pop = cons.sign(validator_pop_bytes(chain_id, o)).signature
    return MsgCreateValidator(o, pub(cons), moniker, amount, bytes(pop))


def register_miner_msg(owner: int, m: int, start: int, end: int, *, bond: int = 2_000_000, model: str = MODEL,
                       throughput: int = 1000, chain_id: str = CHAIN_ID) -> MsgRegisterMiner:
    o = addr(key(owner))
    pop = miner_key(m).sign(miner_pop_bytes(chain_id, o)).signature
    return MsgRegisterMiner(o, pub(miner_key(m)), bytes(pop), f"127.0.0.1:{7000 + m}", bond, model, start, end,
                            4096, throughput)


class Harness:
    def __init__(self, app_state: dict[str, Any] | None = None, store: CommitStore | None = None) -> None:
        self.chain = Chain(store or CommitStore())
        self.app_state = app_state or genesis()
        _, updates = self.chain.init_chain(CHAIN_ID, self.app_state, time_ns=1)
        self.genesis_updates = updates
        s0 = {address_from_pubkey(u.pubkey): u.power for u in updates}
        self.sets: dict[int, dict[bytes, int]] = {1: dict(s0), 2: dict(s0)}
        self.height = 0
        self.seqs: dict[str, int] = {}
        self.app_hashes: list[bytes] = []

    # txs
    def tx(self, k: SigningKey, msgs: Sequence[Msg], fee: int = FEE) -> bytes:
        a = addr(k)
        seq = self.seqs.get(a, 0)
        self.seqs[a] = seq + 1
        return sign_tx(TxBody(CHAIN_ID, a, seq, fee, tuple(msgs)), k)

    def block(self, txs: Sequence[bytes] = (), *, absent: Sequence[bytes] = (),
              misbehavior: Sequence[tuple[str, bytes, int, int]] = ()) -> FinalizeResult:
        h = self.height + 1
        last = self.sets.get(h - 1, {}) if h >= 2 else {}
        info = BlockInfo(
            proposer=b"",
            last_commit=tuple(sorted((a, p, a not in absent) for a, p in last.items())),
            misbehavior=tuple(misbehavior),
        )
        res = self.chain.finalize_block(h, list(txs), time_ns=h * 10**9, block_hash=h.to_bytes(32, "big"), info=info)
        self.chain.commit()
        nxt = dict(self.sets[h + 1])
        for u in res.validator_updates:
            a = address_from_pubkey(u.pubkey)
            if u.power:
                nxt[a] = u.power
            else:
                nxt.pop(a, None)
        self.sets[h + 2] = nxt
        self.height = h
        self.app_hashes.append(res.app_hash)
        self.check_invariant()
        return res

    def run(self, k: SigningKey, *msgs: Msg) -> TxResult:
        """One tx in its own block; returns its result."""
        return self.block([self.tx(k, msgs)]).tx_results[0]

    def blocks(self, n: int, **kw: Any) -> list[FinalizeResult]:
        return [self.block(**kw) for _ in range(n)]

    # reads
    def q(self, path: str, **params: Any) -> Any:
        r = self.chain.query(path, json.dumps(params).encode())
        assert r.code == 0, r.log
        return json.loads(r.value)

    def balance(self, k: SigningKey | str) -> int:
        a = k if isinstance(k, str) else addr(k)
        return int(self.q("bank/balance", address=a)["amount"])

    def validator(self, i: int) -> dict[str, Any]:
        result: dict[str, Any] = self.q("staking/validator", address=addr(key(i)))
        return result

    def cometbft_set(self, height: int | None = None) -> dict[bytes, int]:
        return self.sets[(self.height if height is None else height)]

    def check_invariant(self) -> None:
        pool = self.q("staking/pool")
        assert pool["invariant_holds"], pool
        assert pool["balances"] + pool["bonded"] + pool["unbonding"] + pool["miner_bonds"] + pool["fee_pool"] \
            + sum(pool["other_holders"].values()) == pool["supply"]

    def staking_state(self) -> dict[str, Any]:
        """Staking's exported state minus the liveness counters every block advances."""
        state: dict[str, Any] = self.chain.export_genesis()["staking"]
        return {k: v for k, v in state.items() if k != "signing_infos"}


@pytest.fixture
def h() -> Harness:
    return Harness()
