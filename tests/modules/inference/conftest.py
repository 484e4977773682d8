"""An inference keeper over an in-memory store, with fake miner and validator registries."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from nesachain.modules.bank.keeper import BankKeeper
from nesachain.modules.inference.keeper import InferenceKeeper
from nesachain.modules.inference.params import Params
from nesachain.modules.inference.types import Model
from nesachain.store import CacheStore, CommitStore
from nesachain.store.kv import KVReader
from nesachain.types.context import Context


@dataclass(frozen=True)
class FakeMiner:
    miner: bytes
    owner: bytes
    bond: int
    model_id: str
    block_start: int
    block_end: int
    status: str = "active"


@dataclass
class FakeMiners:
    miners: dict[bytes, FakeMiner] = field(default_factory=dict)
    outcomes: list[tuple[bytes, bool]] = field(default_factory=list)
    slashed: dict[bytes, int] = field(default_factory=dict)

    def get_miner(self, store: KVReader, miner: bytes) -> FakeMiner | None:
        return self.miners.get(miner)

    def record_miner_outcome(self, ctx: Context, miner: bytes, failed: bool) -> None:
        self.outcomes.append((miner, failed))

    def slash_miner(self, ctx: Context, miner: bytes, fraction_ppm: int) -> int:
        m = self.miners[miner]
        amount = m.bond * fraction_ppm // 1_000_000
        self.miners[miner] = replace(m, bond=m.bond - amount)
        self.slashed[miner] = self.slashed.get(miner, 0) + amount
        return amount


@dataclass
class FakeValidators:
    powers: dict[bytes, int] = field(default_factory=dict)
    slashes: list[tuple[bytes, int, int, str]] = field(default_factory=list)
    jailed: dict[bytes, int] = field(default_factory=dict)  # operator -> jailed until

    def voting_power(self, store: KVReader, operator: bytes) -> int:
        return self.powers.get(operator, 0)

    def total_voting_power(self, store: KVReader) -> int:
        return sum(self.powers.values())

    def last_powers(self, store: KVReader) -> dict[bytes, int]:
        return dict(self.powers) | dict.fromkeys(self.jailed, 0)

    def slash(self, ctx: Context, operator: bytes, infraction_height: int, fraction_ppm: int, reason: str) -> int:
        self.slashes.append((operator, infraction_height, fraction_ppm, reason))
        return 7

    def jail(self, ctx: Context, operator: bytes, until: int, reason: str) -> None:
        """Jailed: no voting power (it stays in the last set it was sent in, with power 0 here)."""
        self.jailed[operator] = until
        self.powers.pop(operator, None)


CLIENT, OWNER = b"\x01" * 20, b"\x02" * 20
MINERS = [b"\x10" * 20, b"\x11" * 20, b"\x12" * 20]
VALIDATORS = [b"\x20" * 20, b"\x21" * 20, b"\x22" * 20, b"\x23" * 20]
PRICE = 3
PARAMS = Params(commit_window=2, reveal_window=2, challenge_rate_ppm=1_000_000, verdict_commit_window=2,
                verdict_reveal_window=2, slash_fraction_ppm=100_000, protocol_fee_ppm=20_000,
                session_timeout=50, min_model_deposit=100)


@dataclass
class Env:
    keeper: InferenceKeeper
    bank: BankKeeper
    miners: FakeMiners
    validators: FakeValidators
    store: CacheStore
    height: int = 1

    def ctx(self, height: int | None = None) -> Context:
        return Context(self.store, "test", self.height if height is None else height, entropy=b"e" * 32)

    def branch(self) -> Context:
        """A tx-like branch: merge it only on success (as the chain does)."""
        return Context(CacheStore(self.store), "test", self.height, entropy=b"e" * 32)

    def end_block(self, height: int) -> Context:
        from nesachain.modules.inference import lifecycle

        self.height = height
        ctx = self.ctx(height)
        lifecycle.end_block(self.keeper, ctx)
        return ctx

    def balance(self, who: bytes) -> int:
        return self.bank.balance(self.store, who)


def new_env() -> Env:
    """A keeper over a fresh store: three miners of model "toy" (blocks 0:2, 2:4, 4:6), four validators."""
    store = CacheStore(CommitStore())
    bank = BankKeeper()
    miners = FakeMiners({m: FakeMiner(m, OWNER, 10_000, "toy", i * 2, i * 2 + 2) for i, m in enumerate(MINERS)})
    validators = FakeValidators({v: 10 for v in VALIDATORS})
    keeper = InferenceKeeper(bank, miners, validators)
    for who in (CLIENT, OWNER):
        bank.mint_genesis(store, who, 10**9)
    keeper.set_params(store, PARAMS)
    e = Env(keeper, bank, miners, validators, store)
    keeper.register_model(e.ctx(), Model("toy", OWNER, "llama", 6, tuple("ab" * 32 for _ in range(6)), PRICE, 100))
    return e


@pytest.fixture
def env() -> Env:
    return new_env()
