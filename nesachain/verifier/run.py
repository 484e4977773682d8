"""A validator's verifier process (``nesad verifier start``): judge challenges until SIGINT/SIGTERM.

Every ``poll`` seconds it reveals the verdicts whose window is open and judges open challenges
(``verdicts.Verifier.tick``); every 20 passes it loads the block ranges active miners serve, so a
challenge on them is judged within its window. A pass that fails, for whatever reason, is logged and
the next one tries again: nothing a miner or the node sends ends the process.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from datetime import datetime
from pathlib import Path

import structlog
from nacl.signing import SigningKey

from nesachain.errors import NesaError, RPCError
from nesachain.verifier.judge import Limits
from nesachain.verifier.replay import DEFAULT_MAX_REPLAY_TOKENS, ShardReplayer
from nesachain.verifier.verdicts import DEFAULT_TOLERANCE, Verifier
from nesachain.wallet import queries
from nesachain.wallet.rpc import CometRPC
from nesachain.wallet.view import ChainView

__all__ = ["WARM_EVERY", "block_time", "build_verifier", "run_verifier"]

log = structlog.get_logger("nesachain.verifier")
WARM_EVERY = 20  # passes between loads of the blocks active miners serve
_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


def block_time(rpc: CometRPC) -> float:
    """Unix seconds of the node's latest block (CometBFT gives RFC 3339 with nanoseconds)."""
    info = rpc.status().get("sync_info")
    text = info.get("latest_block_time") if isinstance(info, dict) else None
    m = _RFC3339.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise RPCError(f"the node's latest_block_time {text!r} is not an RFC 3339 time")
    zone = "+00:00" if m[3] == "Z" else m[3]
    return datetime.fromisoformat(m[1] + zone).timestamp() + (float(f"0.{m[2]}") if m[2] else 0.0)


def build_verifier(rpc: CometRPC, key: SigningKey, shards: dict[str, Path], state_file: Path,
                   tolerance: float = DEFAULT_TOLERANCE, limits: Limits = Limits(),  # noqa: B008 (frozen)
                   max_replay_tokens: int = DEFAULT_MAX_REPLAY_TOKENS) -> Verifier:
    """A verifier signing with ``key`` (the validator's operator), replaying on its own ``shards``
    (model id -> shard folder), whose hashes it checks against the chain's."""

    def chain_hashes(model_id: str) -> list[str]:
        hashes: list[str] = queries.model(rpc, model_id)["block_hashes"]
        return hashes

    def clock_skew() -> float:
        return time.time() - block_time(rpc)

    replayer = ShardReplayer(shards, chain_hashes, max_tokens=max_replay_tokens)
    return Verifier(ChainView(rpc, key), replayer, state_file, limits=limits, tolerance=tolerance,
                    clock_skew=clock_skew)


async def run_verifier(verifier: Verifier, poll: float, stop: asyncio.Event | None = None) -> None:
    """Pass after pass until SIGINT or SIGTERM (or until ``stop`` is set, where given); a pass that fails is
    logged and the next one tries again."""
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    log.info("verifier_start", operator=verifier.operator)
    passes = 0
    try:
        while not stop.is_set():
            try:
                if passes % WARM_EVERY == 0:  # new miners get their blocks loaded within WARM_EVERY polls
                    await asyncio.to_thread(verifier.warm)
                passes += 1
                await asyncio.to_thread(verifier.tick)
            except NesaError as exc:  # the node did not answer, a tx could not be sent, ...
                log.warning("verifier_pass_failed", error=str(exc))
            except Exception:  # a bug of its own: logged with its traceback, and the next pass goes on
                log.exception("verifier_pass_failed")
            try:
                await asyncio.wait_for(stop.wait(), timeout=poll)
            except TimeoutError:
                pass
    finally:
        verifier.close()
