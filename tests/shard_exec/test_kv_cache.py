"""A block range's KV cache: positions without gaps, a bounded length, and a rollback of a failed step
(``nesachain.shard_exec.kv_cache``)."""

from __future__ import annotations

import pytest
import torch

from nesachain.protocol.errors import WireError
from nesachain.shard_exec.kv_cache import BlockKVCache


def test_kv_cache_refuses_gaps_and_overflow_and_rolls_back() -> None:
    c = BlockKVCache(10, 2, 1, 3, 4, max_length=5)
    assert c.nbytes == 2 * 2 * 1 * 3 * 5 * 4 * 4
    with pytest.raises(WireError, match="position"):
        c.begin(1, 1)
    c.begin(0, 3)
    k = torch.randn(1, 3, 3, 4)
    keys, _ = c.update(k, k, 10)
    assert torch.equal(keys, k)
    c.commit()
    c.begin(3, 1)
    c.rollback()
    assert c.length == 3
    with pytest.raises(WireError) as exc:
        c.begin(3, 3)
    assert exc.value.code == "past_max_length"
