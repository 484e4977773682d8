"""A block's entropy comes from the previous block's hash and the block's time (the weighted median of
the last commit's precommit timestamps), never from the block's own hash, which its proposer shapes by
choosing txs."""

from __future__ import annotations

from collections.abc import Sequence

from nesachain.abci.chain import Chain
from nesachain.abci.entropy import block_entropy
from nesachain.store import CommitStore
from nesachain.types.context import Context
from nesachain.types.module import BlockInfo
from tests.abci.conftest import addr, key, new_chain, send_tx


def _spy(chain: Chain) -> list[bytes]:
    """The entropy each block's context carries, as the modules see it."""
    seen: list[bytes] = []
    auth = chain.modules[0]
    inner = auth.begin_block

    def begin_block(ctx: Context, info: BlockInfo) -> None:
        seen.append(ctx.entropy)
        inner(ctx, info)

    auth.begin_block = begin_block  # type: ignore[method-assign]
    return seen


def _run(chain: Chain, blocks: Sequence[tuple[list[bytes], bytes]], start: int = 1) -> None:
    for height, (txs, block_hash) in enumerate(blocks, start):
        chain.finalize_block(height, txs, time_ns=height * 10**9 + 7, block_hash=block_hash)
        chain.commit()


def test_entropy_unchanged_when_the_blocks_txs_and_hash_change() -> None:
    """Before: entropy was sha256(this block's hash ‖ height), so a proposer trying other txs (another block
    hash) drew other challenges; this test saw two different entropies."""
    a, b = new_chain(), new_chain()
    seen_a, seen_b = _spy(a), _spy(b)
    _run(a, [([], b"\x01" * 32)])
    _run(b, [([], b"\x01" * 32)])
    a.finalize_block(2, [send_tx(key(0), 0, addr(key(9)), 5)], time_ns=2 * 10**9, block_hash=b"\xaa" * 32)
    b.finalize_block(2, [send_tx(key(0), 0, addr(key(9)), 6), send_tx(key(1), 0, addr(key(8)), 1)],
                     time_ns=2 * 10**9, block_hash=b"\xbb" * 32)
    assert seen_a[1] == seen_b[1] == block_entropy(2, b"\x01" * 32, 2 * 10**9)


def test_entropy_follows_the_previous_block_hash_and_the_block_time() -> None:
    a, b = new_chain(), new_chain()
    seen_a, seen_b = _spy(a), _spy(b)
    _run(a, [([], b"\x01" * 32)])
    _run(b, [([], b"\x02" * 32)])
    a.finalize_block(2, [], time_ns=5, block_hash=b"\x03" * 32)
    b.finalize_block(2, [], time_ns=5, block_hash=b"\x03" * 32)
    assert seen_a[1] != seen_b[1]  # another previous block
    assert block_entropy(2, b"\x01" * 32, 5) != block_entropy(2, b"\x01" * 32, 6)  # another time
    assert block_entropy(2, b"\x01" * 32, 5) != block_entropy(3, b"\x01" * 32, 5)  # another height


def test_entropy_same_blocks_two_fresh_apps_and_a_restart_same_entropy(tmp_path) -> None:
    """Two apps replaying the same blocks see the same entropy at every height, also when one restarts
    from disk mid-way: the previous block's hash is persisted with the height at Commit."""
    blocks = [([send_tx(key(0), h - 1, addr(key(9)), h)], bytes([h]) * 32) for h in range(1, 9)]
    a = new_chain()
    seen_a = _spy(a)
    _run(a, blocks)
    b = new_chain(CommitStore(tmp_path / "b.db"))
    seen_b = _spy(b)
    _run(b, blocks[:4])
    b.store.close()
    b = Chain(CommitStore(tmp_path / "b.db"))
    assert b.store.block_hash == bytes([4]) * 32
    seen_after = _spy(b)
    _run(b, blocks[4:], start=5)
    assert seen_a == seen_b + seen_after and len(set(seen_a)) == len(blocks)
    assert a.app_hash == b.app_hash
