"""staking messages: validators, delegations and miners. Each ``validate_basic`` is stateless; the
msg server does the stateful checks."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Self

from nacl.bindings import crypto_core_ed25519_is_valid_point

from nesachain.modules.staking.errors import (
    ErrInvalidBlockRange,
    ErrInvalidConsPossession,
    ErrInvalidConsPubKey,
    ErrInvalidEndpoint,
    ErrInvalidMinerKey,
    ErrInvalidMinerSpec,
    ErrInvalidMoniker,
    ErrUnknownModel,
)
from nesachain.tx.msg import register_msg
from nesachain.types.address import check_address
from nesachain.types.coin import check_amount
from nesachain.types.errors import ErrorCode
from nesachain.types.sdk_errors import ErrInvalidCoins

__all__ = [
    "MINER_POP_PREFIX",
    "VALIDATOR_POP_PREFIX",
    "MsgCreateValidator",
    "MsgCreateValidatorResponse",
    "MsgDelegate",
    "MsgDelegateResponse",
    "MsgMinerHeartbeat",
    "MsgMinerHeartbeatResponse",
    "MsgRegisterMiner",
    "MsgRegisterMinerResponse",
    "MsgUnbondMiner",
    "MsgUnbondMinerResponse",
    "MsgUndelegate",
    "MsgUndelegateResponse",
    "MsgUnjail",
    "MsgUnjailResponse",
    "MsgUpdateMiner",
    "MsgUpdateMinerResponse",
    "miner_pop_bytes",
    "validator_pop_bytes",
]

MAX_MONIKER = 64
MAX_ENDPOINT = 256
_ENDPOINT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):([0-9]{1,5})", re.ASCII)
MAX_MEMORY_MB = 16 * 1024 * 1024  # 16 TiB
MAX_THROUGHPUT = 10**12
MINER_POP_PREFIX = b"nesachain/miner-pop/v1\x00"
VALIDATOR_POP_PREFIX = b"nesachain/validator-pop/v1\x00"
_INT64 = 2**63 - 1


def miner_pop_bytes(chain_id: str, owner: str) -> bytes:
    """What the miner key signs to prove the owner holds it: binds key, owner and chain."""
    return MINER_POP_PREFIX + chain_id.encode() + b"\x00" + owner.encode()


def validator_pop_bytes(chain_id: str, operator: str) -> bytes:
    """What the consensus key signs to prove the operator holds it (no one can bond behind a node's key
    that is not theirs): binds key, operator and chain."""
    return VALIDATOR_POP_PREFIX + chain_id.encode() + b"\x00" + operator.encode()


def check_pubkey(value: bytes, what: str, err: ErrorCode = ErrInvalidConsPubKey) -> bytes:
    if not isinstance(value, bytes) or len(value) != 32:
        n = len(value) if isinstance(value, bytes) else type(value).__name__
        raise err.wrap(f"{what} must be 32 bytes of ed25519 public key, got {n}")
    if not crypto_core_ed25519_is_valid_point(value):
        raise err.wrap(f"{what} is not a valid ed25519 point")
    return value


def _amount(value: int, what: str) -> None:
    try:
        check_amount(value)
    except ValueError as exc:
        raise ErrInvalidCoins.wrap(f"{what}: {exc}") from None


def _fields(cls: type[Any], given: dict[str, Any]) -> Any:
    """Build a Msg from decoded fields, checking names and types (raises ValueError)."""
    spec = {f.name: f.type for f in fields(cls)}
    if set(given) != set(spec):
        raise ValueError(f"expected fields {', '.join(sorted(spec))}")
    kinds = {"str": str, "int": int, "bytes": bytes}
    for name, kind in spec.items():
        want = kinds[str(kind)]
        value = given[name]
        if isinstance(value, bool) or not isinstance(value, want):
            raise ValueError(f"{name} must be {want.__name__}")
    return cls(**given)


class _Base:
    @classmethod
    def from_fields(cls, f: dict[str, Any]) -> Self:
        out: Self = _fields(cls, f)
        return out

    def to_fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]


# validators -------------------------------------------------------------------------------------
@register_msg
@dataclass(frozen=True)
class MsgCreateValidator(_Base):
    TYPE: ClassVar[str] = "staking/MsgCreateValidator"
    operator: str  # the account that self-bonds and later unjails
    pubkey: bytes  # ed25519 consensus key, priv_validator_key.json's pub_key
    moniker: str
    amount: int  # self-bond in unes
    pop: bytes  # the consensus key's ed25519 signature over validator_pop_bytes(chain id, operator)

    def validate_basic(self) -> None:
        check_address(self.operator, "operator")
        check_pubkey(self.pubkey, "consensus pubkey")
        if len(self.pop) != 64:
            raise ErrInvalidConsPossession.wrap(f"the proof of possession must be a 64-byte ed25519 signature, "
                                                f"got {len(self.pop)} bytes")
        if not 0 < len(self.moniker) <= MAX_MONIKER or not self.moniker.isprintable():
            raise ErrInvalidMoniker.wrap(f"moniker must be 1-{MAX_MONIKER} printable characters")
        _amount(self.amount, "self-bond")

    def signer(self) -> str:
        return self.operator


@dataclass(frozen=True)
class MsgCreateValidatorResponse:
    cons_address: str


MAX_MODEL_ID = 128


def check_model_id(model_id: object) -> str:
    if not isinstance(model_id, str) or not 0 < len(model_id) <= MAX_MODEL_ID or not model_id.isprintable():
        raise ValueError(f"model id must be 1-{MAX_MODEL_ID} printable characters, got {model_id!r}")
    return model_id


@register_msg
@dataclass(frozen=True)
class MsgDelegate(_Base):
    TYPE: ClassVar[str] = "staking/MsgDelegate"
    delegator: str
    validator: str  # operator address
    amount: int

    def validate_basic(self) -> None:
        check_address(self.delegator, "delegator")
        check_address(self.validator, "validator")
        _amount(self.amount, "amount")

    def signer(self) -> str:
        return self.delegator


@dataclass(frozen=True)
class MsgDelegateResponse:
    shares: int


@register_msg
@dataclass(frozen=True)
class MsgUndelegate(_Base):
    TYPE: ClassVar[str] = "staking/MsgUndelegate"
    delegator: str
    validator: str
    amount: int  # unes to take out; returned after the unbonding period

    def validate_basic(self) -> None:
        check_address(self.delegator, "delegator")
        check_address(self.validator, "validator")
        _amount(self.amount, "amount")

    def signer(self) -> str:
        return self.delegator


@dataclass(frozen=True)
class MsgUndelegateResponse:
    completion_height: int


@register_msg
@dataclass(frozen=True)
class MsgUnjail(_Base):
    TYPE: ClassVar[str] = "staking/MsgUnjail"
    operator: str

    def validate_basic(self) -> None:
        check_address(self.operator, "operator")

    def signer(self) -> str:
        return self.operator


@dataclass(frozen=True)
class MsgUnjailResponse:
    pass


# miners -----------------------------------------------------------------------------------------
def _check_model_and_range(model_id: str, start: int, end: int) -> None:
    try:
        check_model_id(model_id)
    except ValueError as exc:
        raise ErrUnknownModel.wrap(str(exc)) from None
    if not 0 <= start < end <= _INT64:
        raise ErrInvalidBlockRange.wrap(f"block range [{start}, {end}) is empty or negative")


def _check_endpoint(endpoint: str) -> None:
    """HOST:PORT, where clients reach the miner (they add ws:// or http://): a DNS name or IPv4 address,
    or an IPv6 address in brackets, and a port in 1..65535. Pure string rules, no resolving."""
    m = _ENDPOINT.fullmatch(endpoint) if len(endpoint) <= MAX_ENDPOINT else None
    if m is None or not 1 <= int(m.group(2)) <= 65535:
        raise ErrInvalidEndpoint.wrap(f"endpoint {endpoint[:64]!r} must be HOST:PORT (port 1..65535), "
                                      "e.g. 127.0.0.1:7001, miner.example.org:443 or [::1]:7001")


def _check_spec(memory_mb: int, throughput: int) -> None:
    if not 0 < memory_mb <= MAX_MEMORY_MB:
        raise ErrInvalidMinerSpec.wrap(f"memory_mb must be in [1, {MAX_MEMORY_MB}], got {memory_mb}")
    if not 0 < throughput <= MAX_THROUGHPUT:
        raise ErrInvalidMinerSpec.wrap(f"throughput must be in [1, {MAX_THROUGHPUT}], got {throughput}")


@register_msg
@dataclass(frozen=True)
class MsgRegisterMiner(_Base):
    TYPE: ClassVar[str] = "staking/MsgRegisterMiner"
    owner: str  # the account that bonds and signs; distinct from the miner key
    pubkey: bytes  # the miner's own ed25519 key
    pop: bytes  # signature by the miner key over miner_pop_bytes(chain_id, owner)
    endpoint: str  # where clients reach the miner, e.g. "127.0.0.1:7001"
    bond: int
    model_id: str
    block_start: int  # serves blocks [block_start, block_end)
    block_end: int
    memory_mb: int
    throughput: int  # milli-(forward passes per second), per block

    def validate_basic(self) -> None:
        check_address(self.owner, "owner")
        check_pubkey(self.pubkey, "miner pubkey", ErrInvalidMinerKey)
        if len(self.pop) != 64:
            raise ErrInvalidMinerKey.wrap(f"proof of possession must be a 64-byte signature, got {len(self.pop)}")
        _check_endpoint(self.endpoint)
        _amount(self.bond, "bond")
        _check_model_and_range(self.model_id, self.block_start, self.block_end)
        _check_spec(self.memory_mb, self.throughput)

    def signer(self) -> str:
        return self.owner


@dataclass(frozen=True)
class MsgRegisterMinerResponse:
    miner: str


@register_msg
@dataclass(frozen=True)
class MsgUpdateMiner(_Base):
    """Move to other blocks of the same model, or change endpoint or declared capacity. Also counts
    as a heartbeat."""

    TYPE: ClassVar[str] = "staking/MsgUpdateMiner"
    owner: str
    miner: str
    endpoint: str
    block_start: int
    block_end: int
    memory_mb: int
    throughput: int

    def validate_basic(self) -> None:
        check_address(self.owner, "owner")
        check_address(self.miner, "miner")
        _check_endpoint(self.endpoint)
        if not 0 <= self.block_start < self.block_end <= _INT64:
            raise ErrInvalidBlockRange.wrap(f"block range [{self.block_start}, {self.block_end}) is empty or negative")
        _check_spec(self.memory_mb, self.throughput)

    def signer(self) -> str:
        return self.owner


@dataclass(frozen=True)
class MsgUpdateMinerResponse:
    miner: str


@register_msg
@dataclass(frozen=True)
class MsgMinerHeartbeat(_Base):
    TYPE: ClassVar[str] = "staking/MsgMinerHeartbeat"
    owner: str
    miner: str

    def validate_basic(self) -> None:
        check_address(self.owner, "owner")
        check_address(self.miner, "miner")

    def signer(self) -> str:
        return self.owner


@dataclass(frozen=True)
class MsgMinerHeartbeatResponse:
    miner: str


@register_msg
@dataclass(frozen=True)
class MsgUnbondMiner(_Base):
    TYPE: ClassVar[str] = "staking/MsgUnbondMiner"
    owner: str
    miner: str

    def validate_basic(self) -> None:
        check_address(self.owner, "owner")
        check_address(self.miner, "miner")

    def signer(self) -> str:
        return self.owner


@dataclass(frozen=True)
class MsgUnbondMinerResponse:
    miner: str
    completion_height: int  # the height at which the bond is returned (later while a session still names it)
