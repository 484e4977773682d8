"""Typed queries of the chain's state: one function per ABCI query path, and the only place that names one.

Each answers what the chain's query answers (JSON objects, addresses as ``nesa1…`` strings, amounts as
integers), pages through lists for its caller, and says "not found" with None where a caller may ask about
something that does not exist. A refused query raises ``RPCError`` with the chain's code and log.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from nesachain.tx.fees import FeeRule
from nesachain.types.sdk_errors import ErrNotFound
from nesachain.wallet.rpc import CometRPC

__all__ = [
    "account",
    "account_sequence",
    "auth_params",
    "balance",
    "count_sessions",
    "delegations",
    "fee_rule",
    "inference_params",
    "iter_sessions",
    "miner",
    "miners",
    "model",
    "models",
    "pool",
    "session",
    "sessions_page",
    "staking_params",
    "supply",
    "unbonding",
    "validator",
    "validators",
    "verifier_stats",
    "verifier_stats_all",
]

STAKING_PAGE = 1000  # the staking module's largest page
INFERENCE_PAGE = 100  # the inference module's largest page


def _get(rpc: CometRPC, path: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = rpc.abci_query(path, data).json()
    return answer


def _find(rpc: CometRPC, path: str, data: dict[str, Any]) -> dict[str, Any] | None:
    """The answer, or None where the chain says the item is not found."""
    res = rpc.abci_query(path, data)
    if res.code == ErrNotFound.code and res.codespace == ErrNotFound.codespace:
        return None
    answer: dict[str, Any] = res.json()
    return answer


def _pages(rpc: CometRPC, path: str, key: str, data: dict[str, Any], page: int) -> Iterator[dict[str, Any]]:
    """Every item of a paginated list, in the chain's order."""
    offset = 0
    while True:
        answer = _get(rpc, path, {**data, "limit": page, "offset": offset})
        yield from answer[key]
        offset += page
        if offset >= int(answer["total"]) or not answer[key]:
            return


def _where(**filters: object) -> dict[str, Any]:
    return {k: v for k, v in filters.items() if v is not None}


# auth ---------------------------------------------------------------------------------------------------
def account(rpc: CometRPC, address: str) -> dict[str, Any]:
    """``{"address", "sequence"}``: the sequence the account's next tx must carry (committed state)."""
    return _get(rpc, "auth/account", {"address": address})


def account_sequence(rpc: CometRPC, address: str) -> int:
    return int(account(rpc, address)["sequence"])


def auth_params(rpc: CometRPC) -> dict[str, Any]:
    return _get(rpc, "auth/params")


def fee_rule(rpc: CometRPC) -> FeeRule:
    """The chain's fee rule (``nesachain.tx.fees``): base, per raw byte, per message."""
    return FeeRule.from_params(auth_params(rpc))


# bank ---------------------------------------------------------------------------------------------------
def balance(rpc: CometRPC, address: str) -> dict[str, Any]:
    """``{"address", "amount", "denom"}``."""
    return _get(rpc, "bank/balance", {"address": address})


def supply(rpc: CometRPC) -> dict[str, Any]:
    """``{"supply", "fee_pool", "denom"}``."""
    return _get(rpc, "bank/supply")


# staking ------------------------------------------------------------------------------------------------
def validators(rpc: CometRPC, status: str | None = None) -> list[dict[str, Any]]:
    """Every validator (of ``status``), by power."""
    return list(_pages(rpc, "staking/validators", "validators", _where(status=status), STAKING_PAGE))


def validator(rpc: CometRPC, address: str) -> dict[str, Any]:
    """A validator by operator address or consensus address (hex), with its signing info."""
    return _get(rpc, "staking/validator", {"address": address})


def delegations(rpc: CometRPC, *, delegator: str | None = None, validator: str | None = None) -> list[dict[str, Any]]:
    """A delegator's delegations, or a validator's."""
    return list(_pages(rpc, "staking/delegations", "delegations", _where(delegator=delegator, validator=validator),
                       STAKING_PAGE))


def unbonding(rpc: CometRPC, delegator: str | None = None) -> list[dict[str, Any]]:
    return list(_pages(rpc, "staking/unbonding", "entries", _where(delegator=delegator), STAKING_PAGE))


def staking_params(rpc: CometRPC) -> dict[str, Any]:
    return _get(rpc, "staking/params")


def pool(rpc: CometRPC) -> dict[str, Any]:
    """Where every token is (balances, bonded, unbonding, miner bonds, fee pool, held by modules) and the supply."""
    return _get(rpc, "staking/pool")


def miners(rpc: CometRPC, model_id: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
    """Every miner (of ``model_id``, of ``status``: "active", "inactive", "unbonding")."""
    return list(_pages(rpc, "staking/miners", "miners", _where(model_id=model_id, status=status), STAKING_PAGE))


def miner(rpc: CometRPC, address: str) -> dict[str, Any] | None:
    """A miner by its address; None if the chain has no such miner."""
    return _find(rpc, "staking/miner", {"address": address})


# inference ----------------------------------------------------------------------------------------------
def model(rpc: CometRPC, model_id: str) -> dict[str, Any]:
    """A registered model (``RPCError`` "not found" otherwise): blocks, their sha256, price."""
    return _get(rpc, "inference/model", {"model_id": model_id})


def models(rpc: CometRPC) -> list[dict[str, Any]]:
    return list(_pages(rpc, "inference/models", "models", {}, INFERENCE_PAGE))


def inference_params(rpc: CometRPC) -> dict[str, Any]:
    return _get(rpc, "inference/params")


def session(rpc: CometRPC, session_id: int) -> dict[str, Any] | None:
    """A session with its route, commitments, challenges, verdicts and payments; None if there is none."""
    return _find(rpc, "inference/session", {"session_id": session_id})


def sessions_page(rpc: CometRPC, status: str | None = None, miner: str | None = None, limit: int = INFERENCE_PAGE,
                  offset: int = 0) -> dict[str, Any]:
    """``{"sessions", "total"}``: one page of the sessions of ``status`` (or "unsettled") naming ``miner``,
    oldest first."""
    return _get(rpc, "inference/sessions", {**_where(status=status, miner=miner), "limit": limit, "offset": offset})


def iter_sessions(rpc: CometRPC, status: str | None = None, miner: str | None = None) -> Iterator[dict[str, Any]]:
    """Every session of ``status`` naming ``miner``, oldest first; the chain filters them through its indexes,
    so a poll costs what matches, not every session ever opened."""
    return _pages(rpc, "inference/sessions", "sessions", _where(status=status, miner=miner), INFERENCE_PAGE)


def verifier_stats(rpc: CometRPC, validator: str) -> dict[str, Any]:
    """What a validator's verifier did with the challenges tallied while it had power (agreed, disagreed,
    undecided, abstained, missed), its rewards, and its verdict ``window`` (misses among the last challenges)."""
    return _get(rpc, "inference/verifier_stats", {"validator": validator})


def verifier_stats_all(rpc: CometRPC) -> list[dict[str, Any]]:
    """Every counted validator's ``verifier_stats``, by operator address bytes."""
    return list(_pages(rpc, "inference/verifier_stats", "verifier_stats", {}, INFERENCE_PAGE))


def count_sessions(rpc: CometRPC, status: str | None = None, miner: str | None = None) -> int:
    return int(sessions_page(rpc, status, miner, limit=1)["total"])
