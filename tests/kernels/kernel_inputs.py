"""Synthetic tensors shared by the kernel tests (the CPU tests and their CUDA twins)."""

from __future__ import annotations

import torch


def residual_stream(seed: int) -> torch.Tensor:
    """A prefill's residual stream as SmolLM2 has it: heavy-tailed, outlier channels, an attention-sink value."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(32, 576, generator=gen) * torch.rand(32, 576, generator=gen).pow(3) * 4  # heavy tails
    x[:, 7::64] *= 20.0
    x[0, 100] = 20000.0
    return x


def upscaled(gen: torch.Generator) -> torch.Tensor:
    """Small images blown up to 224 x 224 (like 8 x 8 digits fed to an ImageNet model): smooth ramps."""
    small = torch.rand(4, 3, 8, 8, generator=gen)
    return torch.nn.functional.interpolate(small, size=(224, 224), mode="bilinear", align_corners=False) * 4 - 2
