"""The randomness of a block: what challenges are drawn from (``Context.entropy``).

``entropy(H) = sha256("nesachain/entropy/v2" ‖ u64(H) ‖ u8(len) ‖ hash of block H-1 ‖ u64(time of H in ns))``
(the hash is empty for the first block of a chain, or of a chain started from an export).

Both inputs are fixed before block H's proposer acts, and neither is its choice:

- the previous block's hash is decided (by consensus on block H-1) before block H is proposed;
- block H's time is, under CometBFT v0.38's BFT time, the stake-weighted median of the timestamps of the
  precommits for block H-1 that block H carries as its last commit, and every validator checks it. The
  proposer of H-1 shapes H-1's hash through its txs, but fixes it before those precommits exist, so it cannot
  know the time of H; the proposer of H knows both but cannot change the hash, nor the timestamps, only which
  precommits beyond 2/3 it includes, so it picks among at most as many times as there are validators.

Block H's own hash, which its proposer shapes freely through its choice of txs, is not an input. See
docs/protocol.md ("Challenge entropy") for what the remaining choices buy and what would close them.
"""

from __future__ import annotations

import hashlib

__all__ = ["block_entropy"]

DOMAIN = b"nesachain/entropy/v2"


def block_entropy(height: int, prev_block_hash: bytes, time_ns: int) -> bytes:
    """32 bytes of randomness for block ``height``, from the previous block's hash and this block's time."""
    return hashlib.sha256(DOMAIN + (height % 2**64).to_bytes(8, "big") + len(prev_block_hash).to_bytes(1, "big")
                          + prev_block_hash + (time_ns % 2**64).to_bytes(8, "big")).digest()
