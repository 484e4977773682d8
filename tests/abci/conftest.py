"""Fixtures for state-machine tests: fresh in-memory chains, funded keys, signed txs."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from nacl.signing import SigningKey

from nesachain.abci.chain import Chain
from nesachain.modules.bank.msgs import MsgSend
from nesachain.store import CommitStore
from nesachain.tx.msg import Msg
from nesachain.tx.tx import TxBody, sign_tx
from nesachain.types.address import address_from_pubkey, encode_address
from tests.abci.busy_chain import BusyChain, busy_chain

CHAIN_ID = "test-chain-1"
FUNDS = 10**12


def key(i: int) -> SigningKey:
    return SigningKey(bytes([i + 1]) * 32)


def addr(k: SigningKey) -> str:
    return encode_address(address_from_pubkey(bytes(k.verify_key)))


def genesis(n_keys: int = 3) -> dict[str, object]:
    return {
        "auth": {"params": {"min_fee": 1000, "max_tx_bytes": 4096}},
        "bank": {"balances": [{"address": addr(key(i)), "amount": FUNDS} for i in range(n_keys)]},
    }


def new_chain(store: CommitStore | None = None) -> Chain:
    chain = Chain(store or CommitStore())
    chain.init_chain(CHAIN_ID, genesis())
    return chain


def send_tx(k: SigningKey, seq: int, to: str, amount: int, *, fee: int = 1000, chain_id: str = CHAIN_ID) -> bytes:
    return signed(k, seq, [MsgSend(addr(k), to, amount)], fee=fee, chain_id=chain_id)


def signed(k: SigningKey, seq: int, msgs: list[Msg], *, fee: int = 1000, chain_id: str = CHAIN_ID) -> bytes:
    return sign_tx(TxBody(chain_id, addr(k), seq, fee, tuple(msgs)), k)


@pytest.fixture
def chain() -> Chain:
    return new_chain()


@pytest.fixture
def committed_chain() -> Callable[[], Chain]:
    """A chain with genesis committed at height 1, so check-state sees genesis balances."""

    def make() -> Chain:
        c = new_chain()
        c.finalize_block(1, [])
        c.commit()
        return c

    return make


@pytest.fixture(scope="session")
def busy() -> BusyChain:
    """One busy chain (see busy_chain.py) for the whole run; a test that drives it further copies it."""
    return busy_chain()
