"""inference messages. Addresses travel as bech32 strings, hashes and salts as bytes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from nesachain.modules.inference.errors import ErrInvalidModel, ErrInvalidSessionMsg
from nesachain.tx.msg import register_msg
from nesachain.types.address import check_address
from nesachain.types.coin import check_amount
from nesachain.types.sdk_errors import ErrInvalidCoins

__all__ = [
    "MsgAddStandIn", "MsgAddStandInResponse", "MsgCloseSession", "MsgCloseSessionResponse", "MsgCommitResult",
    "MsgCommitResultResponse", "MsgCommitVerdict", "MsgCommitVerdictResponse", "MsgOpenSession",
    "MsgOpenSessionResponse", "MsgRegisterModel", "MsgRegisterModelResponse", "MsgRevealResult",
    "MsgRevealResultResponse", "MsgRevealVerdict", "MsgRevealVerdictResponse",
]

_TYPES: dict[str, Any] = {"str": str, "int": int, "bytes": bytes, "list": list}
MAX_MODEL_BLOCKS = 1024
MAX_TOKENS = 1 << 20


class _Fields:
    """from_fields/to_fields for flat dataclass Msgs: exact field set, exact types (no bool as int)."""

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> Self:
        spec = {f.name: f.type for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        if set(fields) != set(spec):
            raise ValueError(f"expected fields {sorted(spec)}")
        for name, type_name in spec.items():
            kind = _TYPES[str(type_name).split("[")[0]]
            value = fields[name]
            if isinstance(value, bool) or not isinstance(value, kind):
                raise ValueError(f"field {name} must be {kind.__name__}")
        return cls(**fields)

    def to_fields(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload, no-any-return]


def _positive(value: int, what: str, limit: int = 2**64 - 1) -> None:
    if value <= 0 or value > limit:
        raise ErrInvalidSessionMsg.wrap(f"{what} must be in [1, {limit}], got {value}")


def _ids(**values: int) -> None:
    """Session and challenge ids are uint64s, as the chain stores them."""
    for what, value in values.items():
        if not 0 <= value <= 2**64 - 1:
            raise ErrInvalidSessionMsg.wrap(f"{what} must be in [0, 2^64-1], got {value}")


def _hash32(value: bytes, what: str) -> None:
    if len(value) != 32:
        raise ErrInvalidSessionMsg.wrap(f"{what} must be 32 bytes, got {len(value)}")


def _salt(value: bytes) -> None:
    if not 16 <= len(value) <= 64:
        raise ErrInvalidSessionMsg.wrap(f"salt must be 16..64 bytes, got {len(value)}")


@register_msg
@dataclass(frozen=True)
class MsgRegisterModel(_Fields):
    TYPE: ClassVar[str] = "inference/MsgRegisterModel"
    owner: str
    model_id: str
    architecture: str
    n_blocks: int
    block_hashes: list  # type: ignore[type-arg]  # sha256 hex of each block's safetensors file
    price: int  # unes per token per block
    deposit: int

    def validate_basic(self) -> None:
        check_address(self.owner, "owner")
        if not 1 <= len(self.model_id) <= 64 or not all(c.isalnum() or c in "-_." for c in self.model_id):
            raise ErrInvalidModel.wrap("model_id must be 1-64 letters, digits, '-', '_', '.'")
        if not 1 <= len(self.architecture) <= 64:
            raise ErrInvalidModel.wrap("architecture must be 1-64 characters")
        if not 1 <= self.n_blocks <= MAX_MODEL_BLOCKS:
            raise ErrInvalidModel.wrap(f"n_blocks must be in [1, {MAX_MODEL_BLOCKS}]")
        if len(self.block_hashes) != self.n_blocks:
            raise ErrInvalidModel.wrap(f"{len(self.block_hashes)} block hashes for {self.n_blocks} blocks")
        for h in self.block_hashes:
            if not isinstance(h, str) or len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
                raise ErrInvalidModel.wrap("block hashes must be lower-case sha256 hex")
        try:
            check_amount(self.price, allow_zero=True)
            check_amount(self.deposit)
        except ValueError as exc:
            raise ErrInvalidCoins.wrap(str(exc)) from None

    def signer(self) -> str:
        return self.owner


@dataclass(frozen=True)
class MsgRegisterModelResponse:
    model_id: str


@register_msg
@dataclass(frozen=True)
class MsgOpenSession(_Fields):
    TYPE: ClassVar[str] = "inference/MsgOpenSession"
    client: str
    model_id: str
    route: list  # type: ignore[type-arg]  # [[miner address, start, end], ...] in block order
    max_tokens: int
    escrow: int

    def validate_basic(self) -> None:
        check_address(self.client, "client")
        _positive(self.max_tokens, "max_tokens", MAX_TOKENS)
        try:
            check_amount(self.escrow)
        except ValueError as exc:
            raise ErrInvalidCoins.wrap(f"escrow: {exc}") from None
        if not self.route:
            raise ErrInvalidSessionMsg.wrap("route is empty")
        for hop in self.route:
            if (not isinstance(hop, list) or len(hop) != 3 or not isinstance(hop[0], str)
                    or any(isinstance(x, bool) or not isinstance(x, int) for x in hop[1:])):
                raise ErrInvalidSessionMsg.wrap("each route hop must be [miner address, start, end]")
            check_address(hop[0], "route miner")
            if not 0 <= hop[1] < hop[2] <= MAX_MODEL_BLOCKS:
                raise ErrInvalidSessionMsg.wrap(f"route hop block range [{hop[1]}, {hop[2]}) is empty or invalid")

    def signer(self) -> str:
        return self.client


@dataclass(frozen=True)
class MsgOpenSessionResponse:
    session_id: int


@register_msg
@dataclass(frozen=True)
class MsgCloseSession(_Fields):
    TYPE: ClassVar[str] = "inference/MsgCloseSession"
    client: str
    session_id: int
    tokens: int  # tokens actually generated (≤ max_tokens)

    def validate_basic(self) -> None:
        check_address(self.client, "client")
        _ids(session_id=self.session_id)
        if self.tokens < 0:
            raise ErrInvalidSessionMsg.wrap("tokens must not be negative")

    def signer(self) -> str:
        return self.client


@dataclass(frozen=True)
class MsgCloseSessionResponse:
    session_id: int
    tokens: int  # the tokens the session is paid for (capped at max_tokens)


@register_msg
@dataclass(frozen=True)
class MsgAddStandIn(_Fields):
    """Sent by the client before it closes the session: ``miner`` took over route hop ``hop``'s blocks
    after ``from_token`` tokens (a failover), under the client's ``attempt``-th session for that hop."""

    TYPE: ClassVar[str] = "inference/MsgAddStandIn"
    client: str
    session_id: int
    hop: int
    miner: str
    from_token: int
    attempt: int

    def validate_basic(self) -> None:
        check_address(self.client, "client")
        check_address(self.miner, "miner")
        _ids(session_id=self.session_id)
        if min(self.hop, self.from_token) < 0 or self.attempt < 1:
            raise ErrInvalidSessionMsg.wrap("hop and from_token must not be negative, attempt must be ≥ 1")
        if self.from_token > MAX_TOKENS:
            raise ErrInvalidSessionMsg.wrap(f"from_token must be at most {MAX_TOKENS}")

    def signer(self) -> str:
        return self.client


@dataclass(frozen=True)
class MsgAddStandInResponse:
    session_id: int
    hop: int  # the stand-in's index in the session's hops


@register_msg
@dataclass(frozen=True)
class MsgCommitResult(_Fields):
    TYPE: ClassVar[str] = "inference/MsgCommitResult"
    owner: str
    miner: str
    session_id: int
    commitment: bytes  # result_commitment(session, miner, root, n_steps, salt)

    def validate_basic(self) -> None:
        check_address(self.owner, "owner")
        check_address(self.miner, "miner")
        _ids(session_id=self.session_id)
        _hash32(self.commitment, "commitment")

    def signer(self) -> str:
        return self.owner


@dataclass(frozen=True)
class MsgCommitResultResponse:
    pass


@register_msg
@dataclass(frozen=True)
class MsgRevealResult(_Fields):
    TYPE: ClassVar[str] = "inference/MsgRevealResult"
    owner: str
    miner: str
    session_id: int
    root: bytes  # merkle root of the miner's step log for the session
    salt: bytes
    n_steps: int  # steps in that log; must be the count committed to, and fit the hop's tokens (the keeper)

    def validate_basic(self) -> None:
        check_address(self.owner, "owner")
        check_address(self.miner, "miner")
        _ids(session_id=self.session_id)
        _hash32(self.root, "root")
        _salt(self.salt)
        if not 0 <= self.n_steps <= MAX_TOKENS * 2:
            raise ErrInvalidSessionMsg.wrap("n_steps out of range")

    def signer(self) -> str:
        return self.owner


@dataclass(frozen=True)
class MsgRevealResultResponse:
    pass


@register_msg
@dataclass(frozen=True)
class MsgCommitVerdict(_Fields):
    TYPE: ClassVar[str] = "inference/MsgCommitVerdict"
    validator: str  # the validator's operator account
    session_id: int
    challenge: int
    commitment: bytes  # verdict_commitment(session, challenge, validator, verdict, salt)

    def validate_basic(self) -> None:
        check_address(self.validator, "validator")
        _ids(session_id=self.session_id, challenge=self.challenge)
        _hash32(self.commitment, "commitment")

    def signer(self) -> str:
        return self.validator


@dataclass(frozen=True)
class MsgCommitVerdictResponse:
    pass


@register_msg
@dataclass(frozen=True)
class MsgRevealVerdict(_Fields):
    TYPE: ClassVar[str] = "inference/MsgRevealVerdict"
    validator: str
    session_id: int
    challenge: int
    verdict: str  # "match", "mismatch" or "abstain" (it could not check: counted apart from a miss)
    salt: bytes

    def validate_basic(self) -> None:
        check_address(self.validator, "validator")
        _ids(session_id=self.session_id, challenge=self.challenge)
        if self.verdict not in ("match", "mismatch", "abstain"):
            raise ErrInvalidSessionMsg.wrap("verdict must be 'match', 'mismatch' or 'abstain'")
        _salt(self.salt)

    def signer(self) -> str:
        return self.validator


@dataclass(frozen=True)
class MsgRevealVerdictResponse:
    pass
