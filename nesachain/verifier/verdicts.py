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
gives a median near 7e-3.

Whose fault decides the verdict (``nesachain.verifier.errors``; the checks are in ``judge``):

- **mismatch**: the miner served no valid data. A log or frames that are malformed (wrong types, ranges,
  digests, steps out of order), over the byte caps, cut short or not complete by the fetch deadline; a log
  whose root or step count is not the one revealed, or with more steps than the session's ``max_tokens``;
  frames that do not hash to the logged digests, do not decode, or that the blocks refuse; a 404, or any
  status but 200, 403 and 5xx; a miner with no usable registered endpoint.
- **nothing yet (retry)**: the miner did not answer: connection refused or reset, no answer by the deadline,
  HTTP 5xx, or HTTP 403. Later passes try again; once the chain is within ``margin_blocks`` of the verdict
  commit deadline and the miner has failed at least twice, it is judged "mismatch": it did not serve its data
  to validators. A 403 counts as a refusal because the verifier's requests are always signed by its operator
  for that very challenge; it is tried again first because a miner whose node lags a block or two does not yet
  see the challenge. Where this verifier's own clock is more than half the allowed skew from its node's last
  block time, a 403 is its own fault: it tries again, never "mismatch".
- **abstain (commit and reveal "abstain")**: this verifier cannot check: no shards of the model, its copy's hashes are
  not the chain's, or the replay is over its own caps on tokens or state, or an unexpected error in its own code
  (logged with its traceback). Never "mismatch". The abstain decides nothing, but the chain counts it apart from a
  miss (no verdict at all). Its node not answering or its clock being off are retried, never abstained.

Challenges are judged in a bounded pool (``Limits.workers``, of which ``Limits.replays`` replay at once),
earliest verdict deadline first; a judgement still running at the end of a pass is collected by a later one.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Protocol

import structlog
import torch

from nesachain.errors import NesaError, RPCError
from nesachain.files import read_json, write_json_atomic
from nesachain.modules.inference.msgs import MsgCommitVerdict, MsgRevealVerdict
from nesachain.modules.inference.types import verdict_commitment
from nesachain.tx.msg import Msg
from nesachain.types.address import decode_address
from nesachain.verifier.errors import CannotCheck, MinerFault, MinerUnavailable
from nesachain.verifier.judge import (
    ABSTAIN,
    MATCH,
    MISMATCH,
    RETRY,
    HTTPStepLogSource,
    Judgement,
    Limits,
    StepLogSource,
    challenge_deadlines,
    check_challenge,
    relative_deviation,
)
from nesachain.wallet.txs import account_of
from nesachain.wallet.view import ChainView, in_phase, send_batches

__all__ = ["ABSTAIN", "DEFAULT_TOLERANCE", "MATCH", "MISMATCH", "RETRY", "Judgement", "Limits", "Replayer",
           "Verifier", "relative_deviation"]

log = structlog.get_logger("nesachain.verifier")
DEFAULT_TOLERANCE = 2e-3


class Replayer(Protocol):
    """Recomputes a miner's steps on this verifier's own copy of the blocks. Raises ``CannotCheck`` for its own
    troubles and ``MinerFault`` for the miner's data (``nesachain.verifier.replay``)."""

    def models(self) -> list[str]:
        """Models this verifier holds shards of."""
        ...

    def prepare(self, model_id: str, start: int, end: int) -> None:
        """Load (and hash-check) blocks [start, end) ahead of any challenge on them."""
        ...

    def replay(self, model_id: str, start: int, end: int,
               steps: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """Run every step's inputs in order; return the last step's outputs, compressed and
        decompressed with the scheme of the miner's output frames (so both sides compare alike)."""
        ...

    def decode_outputs(self, step: Mapping[str, Any]) -> dict[str, torch.Tensor]: ...


class Verifier:
    """Judges the open challenges it can, commits and reveals its verdicts (see the module's doc).

    ``source``: where it reads miners' step data (the HTTP endpoints within ``limits`` by default);
    ``clock_skew``: this host's clock minus its node's last block time (asked when a miner answers 403);
    ``clock``: monotonic seconds, for a pass's budget."""

    def __init__(self, chain: ChainView, replayer: Replayer, state_file: Path, source: StepLogSource | None = None,
                 *, limits: Limits = Limits(), tolerance: float = DEFAULT_TOLERANCE,  # noqa: B008 (frozen)
                 clock_skew: Callable[[], float] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        limits.validate()
        self.chain = chain
        self.replayer = replayer
        self.operator = account_of(chain.key)
        self.state_file = state_file
        self.limits = limits
        self.source: StepLogSource = source if source is not None else HTTPStepLogSource(limits)
        self.tolerance = tolerance
        self.clock_skew = clock_skew
        self.clock = clock
        self._state: dict[str, dict[str, str]] = read_json(state_file, {})
        self._replay_slots = threading.BoundedSemaphore(limits.replays)
        self._lock = threading.Lock()  # guards _unanswered (judges run in the pool)
        self._unanswered: dict[str, int] = {}  # challenge key -> passes its miner did not answer
        self._abstained: dict[str, str] = {}  # challenge key -> why this verifier cannot check it
        self._running: dict[str, tuple[Future[Judgement], dict[str, Any], int]] = {}
        self._pool: ThreadPoolExecutor | None = None

    def _save(self) -> None:
        write_json_atomic(self.state_file, self._state)

    def close(self) -> None:
        """Stop judging: queued judgements are dropped, running ones end at their fetch deadlines."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def warm(self) -> None:
        """Load the block ranges active miners serve now, so a challenge is judged within its window."""
        for model_id in self.replayer.models():
            for m in self.chain.active_miners(model_id):
                try:
                    self.replayer.prepare(model_id, int(m["block_start"]), int(m["block_end"]))
                except NesaError as exc:
                    log.warning("verifier_cannot_load", model=model_id, error=str(exc))

    def tick(self, budget_s: float = 3.0) -> int:
        """One pass: reveal every verdict whose reveal window is open, then judge open challenges (earliest
        deadline first, ``limits.workers`` at once) for up to ``budget_s`` seconds, and commit the verdicts
        reached, including those of judgements a previous pass left running. Verdicts travel in as few txs as
        possible (MAX_MSGS each), and a busy verifier sends what it has judged every pass, so a backlog does
        not push them all past their deadlines. Returns txs sent."""
        height = self.chain.height()
        pending: list[tuple[int, str, dict[str, Any], int]] = []
        reveals: list[Msg] = []
        challenging = list(self.chain.sessions("challenging"))
        for s in challenging:
            for idx, c in enumerate(s["challenges"]):
                if c.get("outcome"):  # tallied: a later round's challenge is a new entry
                    continue
                key = f"{s['id']}/{idx}"
                commit_deadline, reveal_deadline = challenge_deadlines(s, idx)
                if self.operator not in c["commits"] and height < commit_deadline:
                    if key not in self._abstained and key not in self._running:
                        pending.append((commit_deadline, key, s, idx))
                elif (self.operator in c["commits"] and self.operator not in c["reveals"] and key in self._state
                      and commit_deadline < height <= reveal_deadline):
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
        with self._lock:
            self._unanswered = {k: v for k, v in self._unanswered.items() if k.split("/")[0] in listed}
        self._abstained = {k: v for k, v in self._abstained.items() if k.split("/")[0] in listed}
        commits: list[Msg] = []
        for key, s, idx, j in self._judge_pending(pending, height, budget_s):
            commit = self._conclude(key, s, idx, j, height)
            if commit is not None:
                commits.append(commit)
        if commits:
            self._save()
        return sent + send_batches(self.chain, commits, "verdicts_committed", log)[0]

    def _judge_pending(self, pending: list[tuple[int, str, dict[str, Any], int]], height: int,
                       budget_s: float) -> list[tuple[str, dict[str, Any], int, Judgement]]:
        """Judge ``pending`` in the pool, earliest deadline first, until all are judged or ``budget_s`` is
        spent; returns every judgement finished meanwhile (also those of earlier passes)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.limits.workers, thread_name_prefix="judge")
        queue = sorted(pending, key=lambda p: (p[0], p[1]))
        end = self.clock() + budget_s
        finished: list[tuple[str, dict[str, Any], int, Judgement]] = []
        while True:
            for key in [k for k, (f, _, _) in self._running.items() if f.done()]:
                future, s, idx = self._running.pop(key)
                exc = future.exception()
                j = future.result() if exc is None else Judgement(ABSTAIN, f"internal error: {exc!r}")
                finished.append((key, s, idx, j))
            while queue and len(self._running) < self.limits.workers:
                _, key, s, idx = queue.pop(0)
                self._running[key] = (self._pool.submit(self.judge, s, idx, height), s, idx)
            left = end - self.clock()
            if (not self._running and not queue) or left <= 0:
                return finished
            wait([f for f, _, _ in self._running.values()], timeout=left, return_when=FIRST_COMPLETED)

    def _conclude(self, key: str, s: dict[str, Any], idx: int, j: Judgement, height: int) -> Msg | None:
        """The commit of a judgement reached in time; for no verdict, what to remember and log."""
        miner = s["hops"][s["challenges"][idx]["hop"]]["miner"]
        if j.outcome in (MATCH, MISMATCH, ABSTAIN):
            if height >= challenge_deadlines(s, idx)[0]:
                log.warning("verdict_too_late", session=s["id"], challenge=idx, miner=miner, verdict=j.outcome)
                return None
            if j.outcome == ABSTAIN:  # said on chain, so the chain counts it apart from a miss; decides nothing
                self._abstained[key] = j.reason
                log.warning("verdict_abstain", session=s["id"], challenge=idx, miner=miner, reason=j.reason)
            else:
                log.info("verdict", session=s["id"], challenge=idx, miner=miner, verdict=j.outcome, reason=j.reason)
            return self._commit_msg(s, idx, key, j.outcome)
        log.warning("verdict_retry", session=s["id"], challenge=idx, miner=miner, reason=j.reason)
        return None

    def judge(self, s: dict[str, Any], idx: int, height: int | None = None) -> Judgement:
        """The judgement of challenge ``idx`` of session ``s`` (as the chain's ``inference/session`` gives it),
        at chain ``height`` (this verifier's node's, when not given). Never raises: whatever happens is one of
        the outcomes the module's doc lists."""
        key = f"{s['id']}/{idx}"
        try:
            worst = check_challenge(self.chain, self.replayer, self.source, s, idx, self._replay_slots,
                                    self.clock_skew)
        except MinerFault as exc:
            return Judgement(MISMATCH, str(exc))
        except MinerUnavailable as exc:
            return self._unanswered_judgement(key, s, height, str(exc))
        except CannotCheck as exc:
            return Judgement(RETRY if exc.retry else ABSTAIN, str(exc))
        except RPCError as exc:
            return Judgement(RETRY, f"this verifier's node: {exc}")
        except Exception as exc:  # a bug of its own must neither slash a miner nor stop the verifier
            log.exception("verifier_internal_error", session=s.get("id"), challenge=idx)
            return Judgement(ABSTAIN, f"internal error: {exc!r}")
        if worst <= self.tolerance:
            return Judgement(MATCH, f"relative deviation {worst:.2e}")
        return Judgement(MISMATCH, f"relative deviation {worst:.2e} > {self.tolerance:.0e}")

    def _unanswered_judgement(self, key: str, s: dict[str, Any], height: int | None, why: str) -> Judgement:
        """RETRY, or MISMATCH ("did not serve") once the miner has failed twice and the commit deadline is near."""
        with self._lock:
            tries = self._unanswered[key] = self._unanswered.get(key, 0) + 1
        try:
            now = self.chain.height() if height is None else height
        except RPCError as exc:
            return Judgement(RETRY, f"{why}; and this verifier's node: {exc}")
        idx = int(key.split("/")[1])
        near = now >= challenge_deadlines(s, idx)[0] - self.limits.margin_blocks
        if near and tries >= 2:
            return Judgement(MISMATCH, f"did not serve its step data to validators ({tries} tries): {why}")
        return Judgement(RETRY, f"try {tries}: {why}")

    def _commit_msg(self, s: dict[str, Any], idx: int, key: str, verdict: str) -> Msg:
        salt = secrets.token_bytes(32)
        self._state[key] = {"verdict": verdict, "salt": salt.hex()}
        return MsgCommitVerdict(self.operator, s["id"], idx,
                                verdict_commitment(s["id"], idx, decode_address(self.operator), verdict, salt))
