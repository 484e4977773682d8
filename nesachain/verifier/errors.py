"""Errors of the verifier: whose fault a challenge that cannot be judged "match" is decides what it commits.

    NesaError
    └── VerifierError
        ├── MinerFault         the miner served no valid data (malformed, oversize, cut short or too slow,
        │                      inconsistent with its revealed root or its logged digests, not replayable
        │                      through the blocks): judged "mismatch"
        ├── MinerUnavailable   the miner did not answer (connection refused or reset, no answer by the deadline,
        │                      HTTP 5xx, HTTP 403 to a properly signed request): tried again on later passes,
        │                      judged "mismatch" only near the verdict commit deadline
        └── CannotCheck        the verifier's own trouble (no shards of the model, its copy's hashes differ
                               from the chain's, its own node unreachable, its clock off, its own limits):
                               it commits nothing; ``retry`` says whether a later pass may do better
"""

from __future__ import annotations

from nesachain.errors import NesaError

__all__ = ["CannotCheck", "MinerFault", "MinerUnavailable", "VerifierError"]


class VerifierError(NesaError):
    """Root of the errors raised by nesachain.verifier."""


class MinerFault(VerifierError):
    """The miner served no valid data for the challenge: a mismatch."""


class MinerUnavailable(VerifierError):
    """The miner did not answer (yet): retried, and a mismatch only when the verdict deadline is near."""


class CannotCheck(VerifierError):
    """This verifier cannot check the challenge for reasons of its own: it abstains (commits nothing)."""

    def __init__(self, message: str, retry: bool = False) -> None:
        super().__init__(message)
        self.retry = retry
