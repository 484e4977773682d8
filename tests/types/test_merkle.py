"""Step-log merkle trees: every leaf's proof verifies; any change breaks it."""

from __future__ import annotations

import hashlib

from nesachain.types.merkle import leaf_hash, merkle_proof, merkle_root, verify_proof


def leaves(n: int) -> list[bytes]:
    return [leaf_hash(i, hashlib.sha256(b"in%d" % i).digest(), hashlib.sha256(b"out%d" % i).digest())
            for i in range(n)]


def test_merkle_every_leaf_proves_for_all_sizes():
    for n in range(1, 18):
        ls = leaves(n)
        root = merkle_root(ls)
        for i in range(n):
            assert verify_proof(root, ls[i], merkle_proof(ls, i))


def test_merkle_tampering_fails():
    ls = leaves(7)
    root = merkle_root(ls)
    proof = merkle_proof(ls, 3)
    assert not verify_proof(root, ls[4], proof)
    assert not verify_proof(root, leaf_hash(3, b"x" * 32, b"y" * 32), proof)
    assert merkle_root([*ls[:6], ls[6][::-1]]) != root
