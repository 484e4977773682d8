"""A miner's result agent: after a session closes, commit H(merkle root of the step log ‖ salt),
then reveal root and salt (DESIGN §4.6).

The step log comes from the miner's own HTTP endpoint (``/sessions/chain-<id>/log``), so the
agent can run inside the miner process or beside it. Salts are kept in a JSON file written
atomically, so a restart between commit and reveal still reveals.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from nesachain.agents.chain_view import ChainView, in_phase, send_batches
from nesachain.agents.fetch import fetch_json
from nesachain.client.txs import account_of
from nesachain.files import read_json, write_json_atomic
from nesachain.modules.inference.msgs import MsgCommitResult, MsgRevealResult
from nesachain.modules.inference.types import result_commitment
from nesachain.tx.msg import Msg
from nesachain.types.address import decode_address
from nesachain.types.merkle import leaf_hash, merkle_root

__all__ = ["ResultAgent", "chain_session_base", "chain_session_name", "hop_session_name", "step_log_leaves",
           "step_log_root"]

log = structlog.get_logger("nesachain.results")


def chain_session_base(session_id: int) -> str:
    """The session base a client uses on miners for chain session ``session_id``."""
    return f"chain-{session_id}"


def chain_session_name(session_id: int, hop: int, attempt: int = 0) -> str:
    """The session route hop ``hop`` of chain session ``session_id`` has on its miner: the client
    pipeline names them base-hop-failovers, so a stand-in that took over after a failover has its
    ``attempt`` (> 0) in the name."""
    return f"{chain_session_base(session_id)}-{hop}-{attempt}"


def hop_session_name(s: dict[str, Any], index: int) -> str:
    """The miner-side session name of ``s["hops"][index]`` (a route hop or a stand-in)."""
    h = s["hops"][index]
    route_hop = index if h["stands_in_for"] < 0 else h["stands_in_for"]
    return chain_session_name(s["id"], route_hop, h["attempt"])


def step_log_leaves(steps: list[dict[str, Any]]) -> list[bytes]:
    ordered = sorted(steps, key=lambda s: int(s["step"]))
    return [leaf_hash(int(s["step"]), bytes.fromhex(s["in_digest"]), bytes.fromhex(s["out_digest"]))
            for s in ordered]


def step_log_root(steps: list[dict[str, Any]]) -> tuple[bytes, int]:
    leaves = step_log_leaves(steps)
    return merkle_root(leaves), len(leaves)


class ResultAgent:
    def __init__(self, chain: ChainView, miner: str, miner_url: str, state_file: Path,
                 fetch: Callable[[str], Any] = fetch_json, withhold_reveals: bool = False) -> None:
        self.chain = chain
        self.miner = miner
        self.owner = account_of(chain.key)
        self.miner_url = miner_url.rstrip("/")
        self.state_file = state_file
        self.fetch = fetch
        self.withhold_reveals = withhold_reveals  # TEST ONLY: a miner that commits and never reveals
        self._state: dict[str, dict[str, Any]] = read_json(state_file, {})

    def _save(self) -> None:
        write_json_atomic(self.state_file, self._state)

    def tick(self) -> int:
        """One pass: commit the step-log root of every closed session this miner served, reveal
        every root committed earlier; each kind in as few txs as possible. Returns txs sent."""
        commits: list[Msg] = []
        reveals: list[Msg] = []
        committing = list(self.chain.sessions("committing"))
        for s in committing:
            index = next((i for i, h in enumerate(s["hops"]) if h["miner"] == self.miner), None)
            if index is None or s["hops"][index]["revealed"]:
                continue
            key = str(s["id"])
            if not s["hops"][index]["commitment"]:
                if s["hops"][index]["tokens"] > 0:
                    commits.append(self._commit_msg(s, index, key))
            elif key in self._state and not self.withhold_reveals:
                st = self._state[key]
                reveals.append(MsgRevealResult(self.owner, self.miner, s["id"], bytes.fromhex(st["root"]),
                                               bytes.fromhex(st["salt"]), st["n_steps"]))
        if commits:
            self._save()
        sent, _ = send_batches(self.chain, commits, "results_committed", log)
        sent_reveals, finished = send_batches(self.chain, reveals, "results_revealed", log)
        # a salt is kept until its reveal is taken (or refused for good), so a reveal that lost a sequence
        # race to another tx of the owner is sent again next pass; salts of sessions that have left the
        # commit-reveal phase are dropped, each checked on its own
        listed = {str(s["id"]) for s in committing}
        done = {str(m.session_id) for m in finished if isinstance(m, MsgRevealResult)}
        done |= {k for k in self._state
                 if k not in listed and not (k.isdigit() and in_phase(self.chain, int(k), "committing"))}
        if done & self._state.keys():
            self._state = {k: v for k, v in self._state.items() if k not in done}
            self._save()
        return sent + sent_reveals

    def _commit_msg(self, s: dict[str, Any], hop: int, key: str) -> Msg:
        log_doc = self.fetch(f"{self.miner_url}/sessions/{hop_session_name(s, hop)}/log")
        steps = [] if log_doc is None else log_doc["steps"]
        root, n = step_log_root(steps)
        salt = secrets.token_bytes(32)
        self._state[key] = {"root": root.hex(), "salt": salt.hex(), "n_steps": n}
        return MsgCommitResult(self.owner, self.miner, s["id"], result_commitment(s["id"], decode_address(self.miner),
                                                                                  root, salt))
