"""A miner's result agent: after a session closes, commit H(merkle root of the step log ‖ step count ‖
salt), then reveal root, step count and salt (docs/protocol.md).

The step log comes from the miner's own log store (``ServerHandle.step_log``), where chain sessions'
logs stay until they settle. A session whose log the store no longer has (or never had) is committed
nothing: the agent cannot prove that work, so it claims none (the chain then counts the hop as not
committed: unpaid, with the reputation penalty), instead of committing an empty log. Salts are kept in a
JSON file written atomically, so a restart between commit and reveal still reveals.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from nesachain.files import read_json, write_json_atomic
from nesachain.modules.inference.msgs import MsgCommitResult, MsgRevealResult
from nesachain.modules.inference.types import result_commitment
from nesachain.protocol.sessions import hop_session_name
from nesachain.protocol.steplog import step_log_root
from nesachain.tx.msg import Msg
from nesachain.types.address import decode_address
from nesachain.wallet.txs import account_of
from nesachain.wallet.view import ChainView, in_phase, send_batches

__all__ = ["ResultAgent"]

log = structlog.get_logger("nesachain.results")


class ResultAgent:
    def __init__(self, chain: ChainView, miner: str, read_log: Callable[[str], list[dict[str, Any]] | None],
                 state_file: Path) -> None:
        self.chain = chain
        self.miner = miner
        self.owner = account_of(chain.key)
        self.read_log = read_log  # a session's step log by name: the miner's own store (``ServerHandle.step_log``)
        self.state_file = state_file
        self._state: dict[str, dict[str, Any]] = read_json(state_file, {})
        self._no_log: set[str] = set()  # sessions already logged as having no step log to commit

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
                    commit = self._commit_msg(s, index, key)
                    if commit is not None:
                        commits.append(commit)
            elif key in self._state:
                reveal = self.reveal_msg(s["id"], self._state[key])
                if reveal is not None:
                    reveals.append(reveal)
        if commits:
            self._save()
        sent, _ = send_batches(self.chain, commits, "results_committed", log)
        sent_reveals, finished = send_batches(self.chain, reveals, "results_revealed", log)
        # a salt is kept until its reveal is taken (or refused for good), so a reveal that lost a sequence
        # race to another tx of the owner is sent again next pass; salts of sessions that have left the
        # commit-reveal phase are dropped, each checked on its own
        listed = {str(s["id"]) for s in committing}
        self._no_log &= listed
        done = {str(m.session_id) for m in finished if isinstance(m, MsgRevealResult)}
        done |= {k for k in self._state
                 if k not in listed and not (k.isdigit() and in_phase(self.chain, int(k), "committing"))}
        if done & self._state.keys():
            self._state = {k: v for k, v in self._state.items() if k not in done}
            self._save()
        return sent + sent_reveals

    def reveal_msg(self, session_id: int, kept: dict[str, Any]) -> Msg | None:
        """The reveal of a committed root, from what the commit kept (root, salt, steps). Tests put a miner that
        commits and never reveals here (a subclass answering None), no flag of a production entry point."""
        return MsgRevealResult(self.owner, self.miner, session_id, bytes.fromhex(kept["root"]),
                               bytes.fromhex(kept["salt"]), kept["n_steps"])

    def _commit_msg(self, s: dict[str, Any], hop: int, key: str) -> Msg | None:
        """The commitment of this miner's step log of hop ``hop``, binding its step count; None without a log."""
        steps = self.read_log(hop_session_name(s, hop))
        if not steps:
            if key not in self._no_log:
                self._no_log.add(key)
                log.warning("result_no_step_log", session=s["id"], hop=hop, tokens=s["hops"][hop]["tokens"])
            return None
        root, n = step_log_root(steps)
        salt = secrets.token_bytes(32)
        self._state[key] = {"root": root.hex(), "salt": salt.hex(), "n_steps": n}
        return MsgCommitResult(self.owner, self.miner, s["id"],
                               result_commitment(s["id"], decode_address(self.miner), root, n, salt))
