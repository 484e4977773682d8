"""The verifier's replay: a decoder session's steps in one forward pass, as the miner's step by step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from nesachain.protocol.frames import decode_tensor, encode_tensor
from nesachain.shard_exec.shard_files import load_stage, read_manifest
from nesachain.verifier.errors import CannotCheck, MinerFault
from nesachain.verifier.replay import ShardReplayer


def miner_steps(shards: Path, prompt: int, decode: int, scheme: str = "none") -> list[dict[str, Any]]:
    """What a miner serving block 1 logs and retains: a prefill, then one token per step."""
    stage = load_stage(shards, 1, 2)
    state = stage.new_state(1, prompt + decode)
    gen = torch.Generator().manual_seed(5)
    steps, pos = [], 0
    for n in [prompt] + [1] * decode:
        frame = encode_tensor(torch.randn(1, n, 64, generator=gen) * 3, scheme)  # as the miner received it
        out, _ = stage.run({"hidden": decode_tensor(frame)}, {}, pos, state)
        steps.append({"in": {"hidden": frame}, "out": {"hidden": encode_tensor(out["hidden"], scheme)},
                      "position": pos, "mine": out["hidden"]})
        pos += n
    return steps


def replayer(shards: Path) -> ShardReplayer:
    hashes = [b["sha256"] for b in sorted(read_manifest(shards)["blocks"], key=lambda b: b["index"])]
    return ShardReplayer({"tiny-llama": shards}, lambda model_id: hashes)


@pytest.mark.parametrize("k", [0, 1, 9])
def test_replay_of_steps_0_to_k_in_one_pass_gives_step_ks_output(tiny_llama: Path, k: int) -> None:
    steps = miner_steps(tiny_llama, 5, 9)
    r = replayer(tiny_llama)
    runs: list[int] = []
    stage = r._stage("tiny-llama", 1, 2)
    original = stage.run
    stage.run = lambda *a: runs.append(a[0]["hidden"].shape[1]) or original(*a)  # type: ignore[method-assign]
    got = r.replay("tiny-llama", 1, 2, steps[: k + 1])["hidden"]
    assert runs == [5 + k]  # one forward pass over the prompt and k decode tokens
    want = steps[k]["mine"][:, -got.shape[1]:]
    assert got.shape == want.shape
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)


def test_replay_steps_with_values_run_one_by_one(tiny_llama: Path) -> None:
    steps = miner_steps(tiny_llama, 5, 3)
    steps[2] = {**steps[2], "in_values": {"note": 1}}  # a step with values is not plain hidden states
    r = replayer(tiny_llama)
    runs: list[int] = []
    stage = r._stage("tiny-llama", 1, 2)
    original = stage.run
    stage.run = lambda *a: runs.append(a[0]["hidden"].shape[1]) or original(*a)  # type: ignore[method-assign]
    r.replay("tiny-llama", 1, 2, steps)
    assert runs == [5, 1, 1, 1]


def test_replay_output_goes_through_the_miners_compression(tiny_llama: Path) -> None:
    steps = miner_steps(tiny_llama, 5, 6, "mixed8")
    got = replayer(tiny_llama).replay("tiny-llama", 1, 2, steps)["hidden"]
    theirs = decode_tensor(steps[-1]["out"]["hidden"])
    assert (got != theirs).float().mean() < 0.02  # the same codes but where rounding tips one over
    assert (got - theirs).abs().max() <= 0.02 * theirs.abs().max()


def test_replay_kv_cache_is_sized_by_the_frames_not_by_a_stated_position(tiny_llama: Path) -> None:
    """A last step stated at position 2**30: the cache holds the frames' 8 tokens, and the blocks refuse the step
    (the miner's fault). Failed before (by reading, not run: it would take the machine down): the cache was sized
    from the stated position, 2**30 tokens, 512 GiB of keys and values for these two layers, allocated by the
    first step."""
    steps = miner_steps(tiny_llama, 5, 3)
    steps[-1] = {**steps[-1], "position": 2**30}
    r = replayer(tiny_llama)
    stage = r._stage("tiny-llama", 1, 2)
    sizes: list[int] = []
    original = stage.new_state
    stage.new_state = lambda batch, length: sizes.append(length) or original(batch, length)  # type: ignore[method-assign]
    with pytest.raises(MinerFault, match="position"):
        r.replay("tiny-llama", 1, 2, steps)
    assert sizes == [8]


def test_replay_state_over_its_cap_is_cannot_check(tiny_llama: Path) -> None:
    hashes = [b["sha256"] for b in sorted(read_manifest(tiny_llama)["blocks"], key=lambda b: b["index"])]
    r = ShardReplayer({"tiny-llama": tiny_llama}, lambda model_id: hashes, max_state_bytes=1024)
    with pytest.raises(CannotCheck, match="replay state"):
        r.replay("tiny-llama", 1, 2, miner_steps(tiny_llama, 5, 3))


def test_replay_without_steps_or_inputs_is_refused(tiny_llama: Path) -> None:
    r = replayer(tiny_llama)
    with pytest.raises(CannotCheck):
        r.replay("tiny-llama", 1, 2, [])
    with pytest.raises(MinerFault, match="no input tensors"):
        r.replay("tiny-llama", 1, 2, [{"in": {}, "out": {}, "position": 0}])
