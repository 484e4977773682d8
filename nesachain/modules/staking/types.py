"""staking's state records: what the keeper stores (canonical msgpack maps) and how queries and
genesis show them (JSON-able dicts with bech32 addresses and base64 keys)."""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, replace
from typing import Any

from nesachain.types.address import address_from_pubkey, decode_address, encode_address

__all__ = ["Miner", "SigningInfo", "UnbondingEntry", "Validator", "cons_address_hex"]

MINER_ACTIVE = "active"
MINER_INACTIVE = "inactive"
MINER_UNBONDING = "unbonding"
MINER_STATUSES = (MINER_ACTIVE, MINER_INACTIVE, MINER_UNBONDING)


def cons_address_hex(pubkey: bytes) -> str:
    """CometBFT's validator address: upper-case hex of sha256(pubkey)[:20]."""
    return address_from_pubkey(pubkey).hex().upper()


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _unb64(s: object) -> bytes:
    if not isinstance(s, str):
        raise ValueError("expected a base64 string")
    return base64.b64decode(s, validate=True)


@dataclass(frozen=True)
class Validator:
    operator: bytes  # account address (20 bytes) that created it and signs for it
    pubkey: bytes  # ed25519 consensus key (32 bytes) from the node's priv_validator_key.json
    moniker: str
    tokens: int  # unes bonded to it (all delegators together), after slashes
    shares: int  # delegator shares issued; a delegation is worth shares * tokens // self.shares
    jailed: bool = False
    jailed_until: int = 0  # height from which MsgUnjail is accepted
    tombstoned: bool = False
    created_height: int = 0

    @property
    def cons_address(self) -> bytes:
        return address_from_pubkey(self.pubkey)

    def power(self, power_reduction: int) -> int:
        return self.tokens // power_reduction

    def tokens_for(self, shares: int) -> int:
        return 0 if self.shares == 0 else shares * self.tokens // self.shares

    def shares_for(self, amount: int) -> int:
        """Shares minted for a new delegation of ``amount`` (rounded down: never dilutes others)."""
        if self.shares == 0:
            return amount
        return amount * self.shares // self.tokens

    def shares_to_remove(self, amount: int) -> int:
        """Shares burned to take ``amount`` out (rounded up: never takes from others)."""
        return -(-amount * self.shares // self.tokens)

    def with_(self, **changes: Any) -> Validator:
        return replace(self, **changes)

    def to_state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> Validator:
        return cls(**d)

    def to_json(self, power_reduction: int, last_power: int = 0) -> dict[str, Any]:
        if self.tombstoned:
            status = "tombstoned"
        elif self.jailed:
            status = "jailed"
        else:
            status = "bonded" if last_power > 0 else "unbonded"
        return {
            "operator": encode_address(self.operator),
            "pubkey": _b64(self.pubkey),
            "cons_address": cons_address_hex(self.pubkey),
            "moniker": self.moniker,
            "tokens": self.tokens,
            "shares": self.shares,
            "power": self.power(power_reduction),
            "last_power": last_power,
            "status": status,
            "jailed": self.jailed,
            "jailed_until": self.jailed_until,
            "tombstoned": self.tombstoned,
            "created_height": self.created_height,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Validator:
        return cls(
            operator=decode_address(d["operator"]),
            pubkey=_unb64(d["pubkey"]),
            moniker=d["moniker"],
            tokens=d["tokens"],
            shares=d["shares"],
            jailed=d.get("jailed", False),
            jailed_until=d.get("jailed_until", 0),
            tombstoned=d.get("tombstoned", False),
            created_height=d.get("created_height", 0),
        )


@dataclass(frozen=True)
class UnbondingEntry:
    id: int
    delegator: bytes
    validator: bytes
    amount: int
    creation_height: int
    completion_height: int
    bonded_height: int = 0  # the oldest height its shares were bonded at (see tranches.py)

    def to_state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> UnbondingEntry:
        return cls(**d)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "delegator": encode_address(self.delegator),
                "validator": encode_address(self.validator)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> UnbondingEntry:
        return cls(d["id"], decode_address(d["delegator"]), decode_address(d["validator"]), d["amount"],
                   d["creation_height"], d["completion_height"], d.get("bonded_height", 0))


@dataclass(frozen=True)
class SigningInfo:
    """Liveness bookkeeping per consensus address (Cosmos x/slashing's ValidatorSigningInfo)."""

    start_height: int  # misses count toward jailing only after start_height + window
    index_offset: int = 0  # blocks seen since start; index into the missed bitmap modulo the window
    missed: int = 0  # misses inside the current window

    def to_state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> SigningInfo:
        return cls(**d)


@dataclass(frozen=True)
class Miner:
    miner: bytes  # address of the miner key (20 bytes); the miner's identity
    owner: bytes  # the account that bonded and signs its txs
    pubkey: bytes  # the miner's ed25519 key (32 bytes), never the owner's
    endpoint: str
    bond: int
    model_id: str
    block_start: int  # served blocks are [block_start, block_end)
    block_end: int
    memory_mb: int
    throughput: int  # declared, in milli-(forward passes per second) per block
    status: str = MINER_ACTIVE
    last_heartbeat: int = 0
    heartbeat_deadline: int = 0  # after this height without a heartbeat the miner turns inactive
    reputation: int = 0  # fixed point, see reputation.SCALE
    registered_height: int = 0
    unbond_height: int = 0  # completion height once unbonding

    def with_(self, **changes: Any) -> Miner:
        return replace(self, **changes)

    def to_state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> Miner:
        return cls(**d)

    def to_json(self) -> dict[str, Any]:
        from nesachain.modules.staking.reputation import format_reputation

        d = asdict(self)
        d.update(miner=encode_address(self.miner), owner=encode_address(self.owner), pubkey=_b64(self.pubkey),
                 reputation_decimal=format_reputation(self.reputation))
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Miner:
        fields = {k: v for k, v in d.items() if k != "reputation_decimal"}
        fields.update(miner=decode_address(d["miner"]), owner=decode_address(d["owner"]),
                      pubkey=_unb64(d["pubkey"]))
        return cls(**fields)
