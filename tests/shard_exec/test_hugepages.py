"""Weights copied into transparent huge pages: same values, one advised mapping, ties kept."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from nesachain.shard_exec.hugepages import HUGE_PAGE, huge_pages_possible, in_huge_pages, module_in_huge_pages
from nesachain.shard_exec.shard_files import load_client_state, load_stage
from tests.shard_exec.shard_exec_support import Sharded


def anon_huge_kib(addr: int) -> int:
    """AnonHugePages of the mapping of this process that holds address ``addr`` (/proc/self/smaps)."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            lo, hi = (int(x, 16) for x in head.split("-"))
            inside = lo <= addr < hi
        elif inside and head == "AnonHugePages:":
            return int(line.split()[1])
    raise AssertionError(f"no mapping holds {addr:#x}")


def test_a_state_dict_is_copied_whole_into_huge_pages() -> None:
    g = torch.Generator().manual_seed(0)
    state = {"w": torch.randn(1536, 1024, generator=g), "b": torch.randn(7, generator=g).half(),
             "steps": torch.tensor(3), "t": torch.randn(64, 32, generator=g).t(), "mask": torch.rand(5, 5) > 0.5}
    out = in_huge_pages(state)
    assert list(out) == list(state)
    for key, t in state.items():
        assert out[key].dtype == t.dtype and out[key].shape == t.shape and torch.equal(out[key], t)
    if not huge_pages_possible():  # no MADV_HUGEPAGE, or transparent huge pages off: left as they were
        assert all(out[k] is state[k] for k in state)
        return
    assert all(out[k].data_ptr() != state[k].data_ptr() for k in state)
    assert all(out[k].is_contiguous() and out[k].data_ptr() % 64 == 0 for k in out)
    assert out["w"].data_ptr() % HUGE_PAGE == 0  # the first tensor starts on a huge page
    span = max(t.data_ptr() + t.numel() * t.element_size() for t in out.values()) - out["w"].data_ptr()
    assert span < 6.1 * 2**20  # side by side: 6 MiB of weights in one stretch
    assert anon_huge_kib(out["w"].data_ptr()) >= 2048
    out["w"][0, 0] = 5.0  # writable, and the copy is its own
    assert state["w"][0, 0] != 5.0


def test_a_module_keeps_its_tied_weights_tied_and_its_outputs() -> None:
    torch.manual_seed(0)
    emb = nn.Embedding(300, 64)
    model = nn.Sequential(emb, nn.Linear(64, 64), nn.Linear(64, 300, bias=False))
    model[2].weight = emb.weight  # tied, as SmolLM2's head is to its embeddings
    x = torch.tensor([[1, 2, 3]])
    before = model(x)
    moved = module_in_huge_pages(model)
    assert moved == huge_pages_possible()
    assert model[2].weight is emb.weight
    assert torch.equal(model(x), before)
    with torch.no_grad():
        emb.weight[0, 0] = 9.0
    assert model[2].weight[0, 0] == 9.0


def test_a_miner_stage_and_the_client_head_load_into_huge_pages(smol: Sharded) -> None:
    stage = load_stage(smol.dir, 1, 2)
    client = load_client_state(smol.dir)
    weights = dict(stage.layers.named_parameters())  # type: ignore[attr-defined]
    layers = smol.model.model.layers  # the unsharded model's: block 1 is layers 10-19
    assert all(torch.equal(w, layers[10 + int(k.split(".")[0])].get_parameter(k.split(".", 1)[1]))
               for k, w in weights.items())
    assert torch.equal(client["model.embed_tokens.weight"], smol.model.model.embed_tokens.weight)
    if huge_pages_possible():
        first = min(p.data_ptr() for p in weights.values())
        assert anon_huge_kib(first) >= 0.9 * sum(p.numel() * 4 for p in weights.values()) / 1024
        assert anon_huge_kib(client["model.embed_tokens.weight"].data_ptr()) >= 2048
