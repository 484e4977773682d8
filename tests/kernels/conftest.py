"""Fixtures for the kernel tests: SmolLM2-135M loaded once per session, fixed text windows, and a
teacher-forced evaluator that compresses the residual stream at chosen layer boundaries."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import strategies as st

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # --import-mode=importlib: make kernel_inputs importable
    sys.path.insert(0, str(HERE))

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
WINDOW_TOKENS = 256
N_WINDOWS = 4


@dataclass(frozen=True)
class Evaluation:
    agreement: float  # fraction of positions whose top-1 next token matches the uncompressed model
    ppl_ratio: float  # perplexity with compression / without
    frame_bytes: int  # bytes of every frame sent
    fp16_bytes: int  # bytes the same tensors take as fp16 frames


@pytest.fixture(scope="session")
def smollm2() -> tuple[Any, Any]:
    """(LlamaForCausalLM fp32 eval, tokenizer), loaded once for the whole session."""
    from nesachain.models import load_smollm2

    return load_smollm2()  # type: ignore[no-any-return]


def pydoc_token_ids(tokenizer: Any) -> torch.Tensor:
    """Python's ``pydoc_data.topics`` text, topics in sorted order, tokenized without BOS."""
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[key] for key in sorted(topics))
    ids: torch.Tensor = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids[0]
    return ids


@pytest.fixture(scope="session")
def pydoc_windows(smollm2: tuple[Any, Any]) -> torch.Tensor:
    """(N_WINDOWS, WINDOW_TOKENS) token ids: windows spread evenly over the text."""
    ids = pydoc_token_ids(smollm2[1])
    stride = ids.numel() // N_WINDOWS
    return torch.stack([ids[i * stride : i * stride + WINDOW_TOKENS] for i in range(N_WINDOWS)])


@pytest.fixture(scope="session")
def reference_logits(smollm2: tuple[Any, Any], pydoc_windows: torch.Tensor) -> torch.Tensor:
    """(N_WINDOWS, WINDOW_TOKENS, vocab) logits of the uncompressed model."""
    model = smollm2[0]
    with torch.no_grad():
        return torch.stack([model(window.view(1, -1)).logits[0] for window in pydoc_windows])


def _nll(logits: torch.Tensor, windows: torch.Tensor) -> float:
    vocab = logits.shape[-1]
    flat_logits = logits[:, :-1].reshape(-1, vocab)  # (W*(T-1), V)
    return float(torch.nn.functional.cross_entropy(flat_logits, windows[:, 1:].reshape(-1)))


@pytest.fixture(scope="session")
def evaluate_compression(
    smollm2: tuple[Any, Any], pydoc_windows: torch.Tensor, reference_logits: torch.Tensor
) -> Callable[[Callable[[torch.Tensor], bytes], Callable[[bytes], torch.Tensor], list[int]], Evaluation]:
    """Run the windows with every boundary in ``after_layers`` sent through encode -> bytes -> decode.

    A boundary ``i`` is the residual stream leaving decoder layer ``i`` (0-based), i.e. what the
    miner serving layers ..i pushes to the miner serving layers i+1...
    """
    from nesachain.kernels import FrameConfig, Scheme, encode_frame

    model = smollm2[0]
    layers = model.model.layers
    fp16 = FrameConfig(scheme=Scheme.FP16)

    def run(
        encode: Callable[[torch.Tensor], bytes], decode: Callable[[bytes], torch.Tensor], after_layers: list[int]
    ) -> Evaluation:
        sent = {"frame": 0, "fp16": 0}

        def hook(_module: Any, _inputs: Any, output: Any) -> Any:
            hidden = output[0] if isinstance(output, tuple) else output  # (1, T, C)
            frame = encode(hidden)
            sent["frame"] += len(frame)
            sent["fp16"] += len(encode_frame(hidden, fp16))
            restored = decode(frame)
            return (restored, *output[1:]) if isinstance(output, tuple) else restored

        handles = [layers[i].register_forward_hook(hook) for i in after_layers]
        try:
            with torch.no_grad():
                logits = torch.stack([model(window.view(1, -1)).logits[0] for window in pydoc_windows])
        finally:
            for handle in handles:
                handle.remove()
        agreement = (logits[:, :-1].argmax(-1) == reference_logits[:, :-1].argmax(-1)).float().mean()
        ppl_ratio = math.exp(_nll(logits, pydoc_windows) - _nll(reference_logits, pydoc_windows))
        return Evaluation(float(agreement), ppl_ratio, sent["frame"], sent["fp16"])

    return run


@pytest.fixture
def seeded() -> Iterator[None]:
    torch.manual_seed(0)
    yield


@st.composite
def tensors(draw: st.DrawFn, max_numel: int = 6000, nonfinite: bool = False) -> torch.Tensor:
    """Tensors of 0-3 dims (empty and one-element included), values over many magnitudes, with
    spikes; with ``nonfinite`` some also hold nan and +-inf."""
    ndim = draw(st.integers(0, 3))
    shape = draw(st.lists(st.integers(0, 40 if ndim > 1 else max_numel), min_size=ndim, max_size=ndim))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = 10.0 ** draw(st.integers(-4, 4))
    dtype = draw(st.sampled_from(DTYPES))
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=torch.float64) * scale
    kind = draw(st.sampled_from(["normal", "spikes", "constant", "zeros"]))
    flat = x.view(-1)
    if kind == "spikes" and flat.numel():
        idx = torch.randint(0, flat.numel(), (max(1, flat.numel() // 100),), generator=gen)
        flat[idx] *= 1000.0
    elif kind == "constant":
        flat.fill_(scale)
    elif kind == "zeros":
        flat.zero_()
    limit = 60000.0 if dtype == torch.float16 else 1e30
    x = x.clamp(-limit, limit)
    if nonfinite and flat.numel() and draw(st.booleans()):
        idx = torch.randint(0, flat.numel(), (3,), generator=gen)
        x.view(-1)[idx] = torch.tensor([math.nan, math.inf, -math.inf], dtype=torch.float64)
    return x.to(dtype)


@pytest.fixture(scope="session")
def tensor_strategy() -> Callable[..., st.SearchStrategy[torch.Tensor]]:
    """``tensors``, for tests to draw from with ``st.data()``."""
    return tensors  # type: ignore[no-any-return]
