"""Session names: how a client names each hop's session on its miner, and how a miner's result agent and a
validator's verifier find the session of a chain session's hop.

A client names hop ``i``'s session ``{base}-{i}-{attempt}``: ``attempt`` counts the failovers of that hop, so a
stand-in that took over has its own name. A chain session's base is ``chain-{session id}``; an off-chain
session's is random.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["chain_session_base", "chain_session_name", "hop_session_name", "parse_chain_session_name",
           "session_name"]

_CHAIN_NAME = re.compile(r"chain-(\d{1,20})-(\d{1,5})-(\d{1,5})")


def session_name(base: str, hop: int, attempt: int = 0) -> str:
    """The session hop ``hop`` has on its miner after ``attempt`` failovers."""
    return f"{base}-{hop}-{attempt}"


def chain_session_base(session_id: int) -> str:
    """The session base a client uses on miners for chain session ``session_id``."""
    return f"chain-{session_id}"


def chain_session_name(session_id: int, hop: int, attempt: int = 0) -> str:
    """The session route hop ``hop`` of chain session ``session_id`` has on its miner (``attempt`` > 0 for a
    stand-in that took over after a failover)."""
    return session_name(chain_session_base(session_id), hop, attempt)


def hop_session_name(session: Mapping[str, Any], index: int) -> str:
    """The miner-side session name of ``session["hops"][index]`` (a route hop or a stand-in), for a session as
    the chain's ``inference/session`` query returns it."""
    h = session["hops"][index]
    route_hop = index if h["stands_in_for"] < 0 else h["stands_in_for"]
    return chain_session_name(int(session["id"]), int(route_hop), int(h["attempt"]))


def parse_chain_session_name(name: str) -> tuple[int, int, int] | None:
    """(session id, hop, attempt) of a chain session's name on a miner; None for any other name."""
    m = _CHAIN_NAME.fullmatch(name)
    return None if m is None else (int(m.group(1)), int(m.group(2)), int(m.group(3)))
