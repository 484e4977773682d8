"""A validator's verifier process (``nesad verifier start``): judge challenges until SIGINT/SIGTERM.

Every ``poll`` seconds it reveals the verdicts whose window is open and judges open challenges
(``verdicts.Verifier.tick``); every 20 passes it loads the block ranges active miners serve, so a
challenge on them is judged within its window.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import structlog
from nacl.signing import SigningKey

from nesachain.errors import NesaError
from nesachain.protocol.steplog import fetch_json, fetch_steps
from nesachain.verifier.replay import ShardReplayer
from nesachain.verifier.verdicts import DEFAULT_TOLERANCE, Verifier
from nesachain.wallet import queries
from nesachain.wallet.rpc import CometRPC
from nesachain.wallet.view import ChainView

__all__ = ["WARM_EVERY", "build_verifier", "run_verifier"]

log = structlog.get_logger("nesachain.verifier")
WARM_EVERY = 20  # passes between loads of the blocks active miners serve


def build_verifier(rpc: CometRPC, key: SigningKey, shards: dict[str, Path], state_file: Path,
                   tolerance: float = DEFAULT_TOLERANCE) -> Verifier:
    """A verifier signing with ``key`` (the validator's operator), replaying on its own ``shards``
    (model id -> shard folder), whose hashes it checks against the chain's."""

    def chain_hashes(model_id: str) -> list[str]:
        hashes: list[str] = queries.model(rpc, model_id)["block_hashes"]
        return hashes

    return Verifier(ChainView(rpc, key), ShardReplayer(shards, chain_hashes), state_file, fetch_json, fetch_steps,
                    tolerance)


async def run_verifier(verifier: Verifier, poll: float) -> None:
    """Pass after pass until SIGINT or SIGTERM; a pass that fails is logged and the next one tries again."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("verifier_start", operator=verifier.operator)
    passes = 0
    while not stop.is_set():
        try:
            if passes % WARM_EVERY == 0:  # new miners get their blocks loaded within WARM_EVERY polls
                await asyncio.to_thread(verifier.warm)
            passes += 1
            await asyncio.to_thread(verifier.tick)
        except NesaError as exc:
            log.warning("verifier_pass_failed", error=str(exc))
        try:
            await asyncio.wait_for(stop.wait(), timeout=poll)
        except TimeoutError:
            pass
