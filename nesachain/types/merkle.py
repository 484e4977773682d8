"""Merkle trees over a miner's step log (RFC 6962 style: 0x00 leaf prefix, 0x01 node prefix,
an odd last node is promoted unchanged). Miners commit the root; verifiers check a step's proof.

A leaf is sha256(0x00 ‖ u64(step) ‖ input_digest ‖ output_digest), binding the step number and
the digests of the exact bytes that went in and came out.
"""

from __future__ import annotations

import hashlib

from nesachain.types.keys import u64

__all__ = ["leaf_hash", "merkle_proof", "merkle_root", "verify_proof"]

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(step: int, input_digest: bytes, output_digest: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + u64(step) + input_digest + output_digest).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _levels(leaves: list[bytes]) -> list[list[bytes]]:
    levels = [leaves]
    while len(levels[-1]) > 1:
        cur = levels[-1]
        nxt = [_node(cur[i], cur[i + 1]) for i in range(0, len(cur) - 1, 2)]
        if len(cur) % 2:
            nxt.append(cur[-1])
        levels.append(nxt)
    return levels


def merkle_root(leaves: list[bytes]) -> bytes:
    if not leaves:
        return EMPTY_ROOT
    return _levels(list(leaves))[-1][0]


def merkle_proof(leaves: list[bytes], index: int) -> list[tuple[bool, bytes]]:
    """Sibling hashes from the leaf up: (sibling is on the left, hash)."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} of {len(leaves)}")
    proof: list[tuple[bool, bytes]] = []
    for level in _levels(list(leaves))[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            proof.append((sibling < index, level[sibling]))
        index //= 2
    return proof


def verify_proof(root: bytes, leaf: bytes, proof: list[tuple[bool, bytes]]) -> bool:
    h = leaf
    for left, sibling in proof:
        h = _node(sibling, h) if left else _node(h, sibling)
    return h == root
