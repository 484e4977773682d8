"""How one challenge is checked: what the verifier reads from the chain and the miner, in what order, and whose
fault each failure is (``nesachain.verifier.errors``). ``verdicts.Verifier.judge`` turns the outcome into a
verdict; nothing here commits anything.

The order puts the verifier's own troubles first, so that it never asks a miner for data it cannot check:
its own copy of the blocks (``CannotCheck``), the miner's endpoint from its own node (an ``RPCError`` is its
own), then the miner's step log and frames (``StepLogSource``, each read signed for the challenge, bounded by
``Limits``), then the replay.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Final, NamedTuple, Protocol

import torch
from nacl.signing import SigningKey

from nesachain.errors import ConfigError
from nesachain.modules.inference.types import MATCH, MISMATCH
from nesachain.protocol.auth import AUTH_HEADER, STEPLOG_SKEW_S, sign_steplog_read
from nesachain.protocol.endpoints import http_url
from nesachain.protocol.errors import ProtocolError, StepLogInvalid, StepLogRefused, StepLogUnavailable
from nesachain.protocol.sessions import hop_session_name
from nesachain.protocol.steplog import (
    LogRecord,
    StepFrames,
    fetch_frames,
    fetch_log,
    log_url,
    step_log_root,
    steps_url,
)
from nesachain.verifier.errors import CannotCheck, MinerFault, MinerUnavailable

__all__ = ["ABSTAIN", "MATCH", "MISMATCH", "RETRY", "HTTPStepLogSource", "Judgement", "Limits", "StepLogSource",
           "challenge_deadlines", "check_challenge", "relative_deviation"]

ABSTAIN: Final = "abstain"  # this verifier cannot check the challenge: it commits nothing, and does not try again
RETRY: Final = "retry"  # not judged yet (the miner or this verifier's node did not answer): tried again next pass
LOG_BYTES_PER_STEP: Final = 512  # a step-log record's JSON is about 220 bytes


class Judgement(NamedTuple):
    """What judging one challenge came to: ``outcome`` is MATCH or MISMATCH (committed), or ABSTAIN or RETRY
    (nothing committed), and ``reason`` says why, for the log."""

    outcome: str
    reason: str


@dataclass(frozen=True)
class Limits:
    """What one verifier spends on challenges, and how long it waits for a miner."""

    fetch_timeout_s: float = 10.0  # each read of a miner's log or frames, start to end
    max_log_bytes: int = 64 << 20  # a step log's body; the miner's is allowed 4 KiB + 512 bytes a revealed step
    max_frames_bytes: int = 256 << 20  # the frames of steps 0..k in one body
    workers: int = 4  # challenges judged at once
    replays: int = 1  # of which replaying at once (each uses the CPU threads torch has)
    margin_blocks: int = 3  # a miner that has not answered is judged "mismatch" this close to the commit deadline

    def validate(self) -> None:
        """``ConfigError`` for a limit that is not a positive number (margin: not negative; counts: integers)."""
        for f in fields(self):
            v = getattr(self, f.name)
            low = 0 if f.name == "margin_blocks" else 1e-9
            kinds = float | int if f.name == "fetch_timeout_s" else int
            if isinstance(v, bool) or not isinstance(v, kinds) or not math.isfinite(v) or v < low:
                raise ConfigError(f"the verifier's {f.name} must be a{' whole' if kinds is int else ''} number "
                                  f">= {low:g}, got {v!r}")


class StepLogSource(Protocol):
    """Where a verifier reads a miner's step data (the HTTP endpoints; a fake in tests). Each method returns
    checked data (``nesachain.protocol.steplog``'s schemas) or raises a ``StepLogFetchError``."""

    def log(self, url: str, auth: str, max_steps: int) -> list[LogRecord]: ...

    def frames(self, url: str, auth: str, records: Sequence[LogRecord]) -> list[StepFrames]: ...


class HTTPStepLogSource:
    """The miner's HTTP endpoints, through ``steplog.fetch_log`` and ``fetch_frames`` within ``limits``."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    def log(self, url: str, auth: str, max_steps: int) -> list[LogRecord]:
        """A log of ``max_steps`` steps is allowed 4 KiB + 512 bytes a step (more is the miner's fault); where that
        is over this verifier's own ``max_log_bytes``, it cannot check (``CannotCheck``)."""
        cap = 4096 + LOG_BYTES_PER_STEP * max_steps
        if cap > self.limits.max_log_bytes:
            raise CannotCheck(f"a log of {max_steps} steps may take {cap} bytes, over this verifier's cap of "
                              f"{self.limits.max_log_bytes}")
        return fetch_log(url, max_steps=max_steps, deadline_s=self.limits.fetch_timeout_s, max_bytes=cap,
                         headers={AUTH_HEADER: auth})

    def frames(self, url: str, auth: str, records: Sequence[LogRecord]) -> list[StepFrames]:
        return fetch_frames(url, records, deadline_s=self.limits.fetch_timeout_s,
                            max_bytes=self.limits.max_frames_bytes, headers={AUTH_HEADER: auth})


class Chain(Protocol):
    """What judging reads of the chain (``wallet.view.ChainView``)."""

    key: SigningKey

    def miner(self, address: str) -> dict[str, Any] | None: ...

    def chain_id(self) -> str: ...


class Replaying(Protocol):
    """What judging asks of the replayer (``verdicts.Replayer``)."""

    def prepare(self, model_id: str, start: int, end: int) -> None: ...

    def replay(self, model_id: str, start: int, end: int,
               steps: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]: ...

    def decode_outputs(self, step: Mapping[str, Any]) -> dict[str, torch.Tensor]: ...


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


def challenge_deadlines(s: Mapping[str, Any], idx: int) -> tuple[int, int]:
    """(verdict commit, verdict reveal) deadlines of challenge ``idx`` of session ``s`` as the chain's
    ``inference/session`` gives it: each challenge's own (a round drawn after an undecided one has later ones),
    or the session's where a chain gives none."""
    c = s["challenges"][idx]
    if c.get("reveal_deadline"):
        return int(c["commit_deadline"]), int(c["reveal_deadline"])
    return int(s["verdict_commit_deadline"]), int(s["verdict_reveal_deadline"])


def check_challenge(chain: Chain, replayer: Replaying, source: StepLogSource, s: Mapping[str, Any], idx: int,
                    replay_slots: threading.Semaphore, clock_skew: Callable[[], float] | None = None) -> float:
    """The largest relative deviation of the replay of challenge ``idx`` of session ``s`` from the miner's
    output; ``MinerFault``, ``MinerUnavailable`` or ``CannotCheck`` where there is none to give (an ``RPCError``
    of this verifier's node as it comes). ``clock_skew``: this verifier's clock minus its node's last block
    time, asked only when a miner refuses a signed request."""
    c = s["challenges"][idx]
    hop_index = int(c["hop"])
    hop = s["hops"][hop_index]
    k, n, max_tokens = int(c["step"]), int(hop["n_steps"]), int(s["max_tokens"])
    if n > max_tokens:
        raise MinerFault(f"it revealed {n} steps, more than the session's max_tokens {max_tokens}")
    if not 0 <= k < n:
        raise CannotCheck(f"a challenge of step {k} of a log of {n} steps (this verifier's node says so)")
    model_id, start, end = str(s["model_id"]), int(hop["start"]), int(hop["end"])
    replayer.prepare(model_id, start, end)
    registered = chain.miner(str(hop["miner"]))
    if registered is None:
        raise MinerFault(f"miner {hop['miner']} is not registered: it serves no step data")
    try:
        endpoint = http_url(str(registered["endpoint"]))
    except ProtocolError as exc:
        raise MinerFault(f"its registered endpoint is unusable: {exc}") from None
    name = hop_session_name(s, hop_index)
    chain_id = chain.chain_id()

    def auth() -> str:  # signed afresh for each request: the miner checks the time
        return sign_steplog_read(chain.key, chain_id, int(s["id"]), idx, str(hop["miner"]), name)

    try:
        records = source.log(log_url(endpoint, name), auth(), n)
        root, count = step_log_root(records)
        if root.hex() != hop["root"] or count != n:
            raise MinerFault(f"its step log ({count} steps, root {root.hex()[:16]}...) does not match the revealed "
                             f"root ({n} steps, {str(hop['root'])[:16]}...)")
        frames = source.frames(steps_url(endpoint, name, k), auth(), records[: k + 1])
    except StepLogInvalid as exc:
        raise MinerFault(str(exc)) from None
    except StepLogRefused as exc:
        raise _refused(exc, clock_skew) from None
    except StepLogUnavailable as exc:
        raise MinerUnavailable(str(exc)) from None
    with replay_slots:
        mine = replayer.replay(model_id, start, end, frames)
        theirs = replayer.decode_outputs(frames[-1])
    if set(mine) != set(theirs):
        raise MinerFault(f"its step {k} outputs {sorted(theirs)}, the blocks give {sorted(mine)}")
    return max((relative_deviation(mine[x], theirs[x]) for x in mine), default=float("inf"))


def _refused(exc: StepLogRefused, clock_skew: Callable[[], float] | None) -> MinerUnavailable | CannotCheck:
    """A 403 to this verifier's signed request. Its own fault where its clock is far enough from its node's last
    block time for a miner to reject the signed time; otherwise the miner's refusal (or its node lagging behind
    the challenge), which later passes try again until the deadline margin."""
    skew = clock_skew() if clock_skew is not None else 0.0
    if abs(skew) > STEPLOG_SKEW_S / 2:
        return CannotCheck(f"this verifier's clock is {skew:+.0f} s from its node's last block: a miner refuses its "
                           f"signed requests ({exc})", retry=True)
    return MinerUnavailable(f"it refused a validator's signed request: {exc}")

