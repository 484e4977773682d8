"""A model defined only in the tests: the partitioner must handle it with no special case anywhere.

It has a skip connection that crosses every cut, a batch size taken from ``x.size(0)`` that crosses as a
plain value, and a bare parameter read through ``get_attr``.
"""

from __future__ import annotations

import torch
from torch import nn


class _Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.up = nn.Linear(width, 2 * width)
        self.down = nn.Linear(2 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.down(torch.nn.functional.gelu(self.up(self.norm(x))))


class ToyNet(nn.Module):
    def __init__(self, width: int = 64, depth: int = 6, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Linear(32, width)
        self.blocks = nn.ModuleList([_Block(width) for _ in range(depth)])
        self.gate = nn.Parameter(torch.linspace(-1.0, 1.0, width))
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.size(0)
        h = torch.relu(self.stem(x))  # (B, C)
        skip = h
        for blk in self.blocks:
            h = blk(h) + 0.25 * skip
        h = h * torch.sigmoid(self.gate)
        return self.head(h).reshape(b, -1)  # (B, classes)


def build_toy() -> nn.Module:
    """Deterministic weights (seeded), eval mode."""
    torch.manual_seed(1234)
    return ToyNet().eval()
