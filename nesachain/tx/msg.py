"""The message registry: every Msg type a tx can carry, by its ``@type`` name.

A Msg is a frozen dataclass with ``TYPE``, ``from_fields`` (raises ChainError on malformed fields),
``to_fields``, ``validate_basic`` (stateless checks) and ``signer`` (the account that must sign).
Modules register their Msgs at import of their ``msgs.py``.

Every Msg handler answers with a typed response: a frozen dataclass named after its Msg
(``MsgDelegate`` -> ``MsgDelegateResponse``). ``encode_response`` is the one place a response becomes
the map that goes into the tx result's data (a response with no fields is ``{}``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Protocol, Self

from nesachain.types.errors import ChainError
from nesachain.types.sdk_errors import ErrTxDecode, ErrUnknownRequest

__all__ = ["Msg", "decode_msg", "encode_msg", "encode_response", "register_msg"]


class Msg(Protocol):
    TYPE: ClassVar[str]

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> Self: ...

    def to_fields(self) -> dict[str, Any]: ...

    def validate_basic(self) -> None: ...

    def signer(self) -> str: ...


_MSGS: dict[str, type[Msg]] = {}


def register_msg(cls: type[Msg]) -> type[Msg]:
    if cls.TYPE in _MSGS:
        raise ValueError(f"msg type {cls.TYPE} registered twice")
    _MSGS[cls.TYPE] = cls
    return cls


def decode_msg(obj: object) -> Msg:
    if not isinstance(obj, dict) or not isinstance(obj.get("@type"), str):
        raise ErrTxDecode.wrap("each message must be a map with an '@type' string")
    type_name = obj["@type"]
    cls = _MSGS.get(type_name)
    if cls is None:
        raise ErrUnknownRequest.wrap(f"unknown message type {type_name!r}")
    fields = {k: v for k, v in obj.items() if k != "@type"}
    try:
        return cls.from_fields(fields)
    except ChainError:
        raise
    except (TypeError, ValueError, KeyError) as exc:
        raise ErrTxDecode.wrap(f"malformed {type_name}: {exc}") from None


def encode_msg(msg: Msg) -> dict[str, Any]:
    return {"@type": msg.TYPE, **msg.to_fields()}


def encode_response(response: object) -> dict[str, Any]:
    """A Msg handler's typed response as the map the tx result data carries: its fields by name.

    Anything but a frozen dataclass instance is a programming error in a handler; it raises
    TypeError (which the chain turns into the internal error code), never an empty answer."""
    if not dataclasses.is_dataclass(response) or isinstance(response, type):
        raise TypeError(f"a Msg handler must return a response dataclass, got {type(response).__name__}")
    params = getattr(type(response), "__dataclass_params__", None)
    if params is None or not params.frozen:
        raise TypeError(f"{type(response).__name__} must be a frozen dataclass")
    return {f.name: getattr(response, f.name) for f in dataclasses.fields(response)}
