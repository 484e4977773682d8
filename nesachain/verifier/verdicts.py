"""A validator's verifier (`nesad verifier start`): re-executes challenged steps and commits,
then reveals, a verdict (docs/protocol.md).

For a challenge on (session, miner, step k) it fetches the miner's step log and the retained
frames of steps 0..k, checks that the log's merkle root is the root the miner revealed on chain
and that every frame hashes to its logged digest, replays the inputs through its own
hash-checked copy of those blocks (rebuilding the KV cache), and compares step k's output with
what the miner sent. Recomputation on other hardware is not bit-exact, so outputs are compared
after the recomputation passes through the quantizer of the miner's frame (``kernels.requantize``:
a coded mixed8 frame's own step, which re-encoding could move), by the median over elements of
|mine − theirs| / max(|mine|, 1 % of mine's median magnitude), against ``tolerance`` (2e-3).
A median is used because a residual stream's few huge channels dominate any norm: measured as
relative L2 error, a 1 % perturbation came out as low as 1.5e-3 whenever the noise on those
channels happened to be small. The honest replays seen in the tests matched exactly (0.0); a rerun
on other hardware or thread counts differs by float rounding, far below the tolerance; 1 % noise
gives a median near 7e-3. A miner that does not serve the
data, or serves data that does not match its commitments, gets "mismatch".
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import structlog
import torch

from nesachain.errors import NesaError
from nesachain.files import read_json, write_json_atomic
from nesachain.modules.inference.msgs import MsgCommitVerdict, MsgRevealVerdict
from nesachain.modules.inference.types import MATCH, MISMATCH, verdict_commitment
from nesachain.protocol.endpoints import http_url
from nesachain.protocol.sessions import hop_session_name
from nesachain.protocol.steplog import log_url, step_log_root, steps_url
from nesachain.tx.msg import Msg
from nesachain.types.address import decode_address
from nesachain.wallet.txs import account_of
from nesachain.wallet.view import ChainView, in_phase, send_batches

__all__ = ["Replayer", "Verifier", "relative_deviation"]

log = structlog.get_logger("nesachain.verifier")
DEFAULT_TOLERANCE = 2e-3


def relative_deviation(mine: torch.Tensor, theirs: torch.Tensor) -> float:
    """Median element-wise deviation of ``theirs`` from ``mine``, relative to each element's size
    (floored at 1 % of the median magnitude, so near-zero elements do not blow up and a few huge
    channels do not set the floor). inf for a shape mismatch or non-finite values."""
    if mine.shape != theirs.shape:
        return float("inf")
    a, b = mine.float().flatten(), theirs.float().flatten()
    if not torch.isfinite(b).all():
        return float("inf")
    if a.numel() == 0:
        return 0.0
    floor = 1e-2 * float(a.abs().median()) + 1e-12
    return float(((a - b).abs() / a.abs().clamp_min(floor)).median())


class Replayer(Protocol):
    """Recomputes a miner's steps on this verifier's own copy of the blocks."""

    def models(self) -> list[str]:
        """Models this verifier holds shards of."""
        ...

    def prepare(self, model_id: str, start: int, end: int) -> None:
        """Load (and hash-check) blocks [start, end) ahead of any challenge on them."""
        ...

    def replay(self, model_id: str, start: int, end: int, steps: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Run every step's inputs in order; return the last step's outputs, compressed and
        decompressed with the scheme of the miner's output frames (so both sides compare alike)."""
        ...

    def decode_outputs(self, step: dict[str, Any]) -> dict[str, torch.Tensor]: ...

    def digests_match(self, step: dict[str, Any], logged: dict[str, Any]) -> bool: ...


class Verifier:
    def __init__(self, chain: ChainView, replayer: Replayer, state_file: Path,
                 fetch_json: Callable[[str], Any], fetch_steps: Callable[[str], dict[int, dict[str, Any]] | None],
                 tolerance: float = DEFAULT_TOLERANCE) -> None:
        self.chain = chain
        self.replayer = replayer
        self.operator = account_of(chain.key)
        self.state_file = state_file
        self.fetch_json = fetch_json
        self.fetch_steps = fetch_steps
        self.tolerance = tolerance
        self._state: dict[str, dict[str, str]] = read_json(state_file, {})

    def _save(self) -> None:
        write_json_atomic(self.state_file, self._state)

    def warm(self) -> None:
        """Load the block ranges active miners serve now, so a challenge is judged within its window."""
        for model_id in self.replayer.models():
            for m in self.chain.active_miners(model_id):
                try:
                    self.replayer.prepare(model_id, int(m["block_start"]), int(m["block_end"]))
                except NesaError as exc:
                    log.warning("verifier_cannot_load", model=model_id, error=str(exc))

    def tick(self, budget_s: float = 3.0) -> int:
        """One pass: reveal every verdict whose reveal window is open, then judge and commit open
        challenges (earliest deadline first) for about ``budget_s`` seconds. Verdicts travel in as
        few txs as possible (MAX_MSGS each), and a busy verifier sends what it has judged every
        pass, so a backlog does not push them all past their deadlines. Returns txs sent."""
        height = self.chain.height()
        pending: list[tuple[int, dict[str, Any], int, dict[str, Any], str]] = []
        reveals: list[Msg] = []
        challenging = list(self.chain.sessions("challenging"))
        for s in challenging:
            for idx, c in enumerate(s["challenges"]):
                key = f"{s['id']}/{idx}"
                if self.operator not in c["commits"] and height < s["verdict_commit_deadline"]:
                    pending.append((s["verdict_commit_deadline"], s, idx, c, key))
                elif (self.operator in c["commits"] and self.operator not in c["reveals"] and key in self._state
                      and s["verdict_commit_deadline"] < height <= s["verdict_reveal_deadline"]):
                    st = self._state[key]
                    reveals.append(MsgRevealVerdict(self.operator, s["id"], idx, st["verdict"],
                                                    bytes.fromhex(st["salt"])))
        sent, finished = send_batches(self.chain, reveals, "verdicts_revealed", log)
        # a salt is kept until its reveal is taken (or refused for good): one that lost a sequence race
        # to another tx of the operator is sent again next pass; salts of sessions past the verdict
        # phase are dropped, each checked on its own
        listed = {str(s["id"]) for s in challenging}
        done = {f"{m.session_id}/{m.challenge}" for m in finished if isinstance(m, MsgRevealVerdict)}
        stale = {k.split("/")[0] for k in self._state if k.split("/")[0] not in listed}
        gone = {sid for sid in stale if not (sid.isdigit() and in_phase(self.chain, int(sid), "challenging"))}
        done |= {k for k in self._state if k.split("/")[0] in gone}
        if done & self._state.keys():
            self._state = {k: v for k, v in self._state.items() if k not in done}
            self._save()
        commits: list[Msg] = []
        t0 = time.monotonic()
        for _, s, idx, c, key in sorted(pending, key=lambda p: (p[0], p[4])):
            if time.monotonic() - t0 > budget_s:
                break
            commits.append(self._commit_msg(s, idx, c, key))
        if commits:
            self._save()
        return sent + send_batches(self.chain, commits, "verdicts_committed", log)[0]

    def judge(self, s: dict[str, Any], c: dict[str, Any]) -> tuple[str, str]:
        """(verdict, reason) for one challenge."""
        hop = s["hops"][c["hop"]]
        try:
            registered = self.chain.miner(hop["miner"])
            if registered is None:
                raise NesaError(f"miner {hop['miner']} is not registered")
            endpoint = http_url(registered["endpoint"])
            name = hop_session_name(s, int(c["hop"]))
            log_doc = self.fetch_json(log_url(endpoint, name))
            if log_doc is None:
                return MISMATCH, "miner has no log for the session"
            steps = sorted(log_doc["steps"], key=lambda r: int(r["step"]))
            root, n = step_log_root(steps)
            if root.hex() != hop["root"] or n != hop["n_steps"]:
                return MISMATCH, "step log does not match the revealed root"
            wanted = steps[: int(c["step"]) + 1]
            served = self.fetch_steps(steps_url(endpoint, name, int(wanted[-1]["step"])))
            fetched = []
            for rec in wanted:
                data = (served or {}).get(int(rec["step"]))
                if data is None:
                    return MISMATCH, f"step {rec['step']} not served"
                if not self.replayer.digests_match(data, rec):
                    return MISMATCH, f"step {rec['step']} frames do not match the logged digests"
                fetched.append({**data, "position": rec["position"]})
            mine = self.replayer.replay(s["model_id"], hop["start"], hop["end"], fetched)
            theirs = self.replayer.decode_outputs(fetched[-1])
        except NesaError as exc:
            return MISMATCH, f"could not check: {exc}"
        worst = max((relative_deviation(mine[name_], theirs.get(name_, torch.empty(0))) for name_ in mine),
                    default=float("inf"))
        if worst <= self.tolerance:
            return MATCH, f"relative deviation {worst:.2e}"
        return MISMATCH, f"relative deviation {worst:.2e} > {self.tolerance:.0e}"

    def _commit_msg(self, s: dict[str, Any], idx: int, c: dict[str, Any], key: str) -> Msg:
        verdict, reason = self.judge(s, c)
        salt = secrets.token_bytes(32)
        self._state[key] = {"verdict": verdict, "salt": salt.hex()}
        log.info("verdict", session=s["id"], challenge=idx, miner=s["hops"][c["hop"]]["miner"], verdict=verdict,
                 reason=reason)
        return MsgCommitVerdict(self.operator, s["id"], idx,
                                verdict_commitment(s["id"], idx, decode_address(self.operator), verdict, salt))
