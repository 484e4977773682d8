"""int8 weights for Linear layers, for miners short of memory (optional; activations stay float).

Each output row of the weight keeps one absmax scale ("vector-wise", as in LLM.int8()) and
symmetric int8 codes ``round(w / s * 127)``. The largest weights, a fraction ``max_fraction`` of the
matrix (default 1/1024, nan/inf always), are taken out first and kept in fp16 with their positions,
so that a single large weight does not coarsen its whole row: the same decomposition as ``mixed``.

Promise (tested): every non-outlier weight is within ``s_row / 254`` of the original (half a step),
outliers within fp16 rounding. Memory: 1 byte per weight + 4 per row + 10 per outlier, against 4
(fp32). ``Int8Linear.forward`` never builds the float weight matrix scaled: it multiplies by the
codes, scales the output columns, then adds the outliers' contribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nesachain.kernels.errors import KernelError
from nesachain.kernels.outliers import select_outliers

__all__ = ["Int8Linear", "Int8Weight", "dequantize_linear_weight", "quantize_linear_weight"]

DEFAULT_WEIGHT_OUTLIER_FRACTION = 1.0 / 1024.0


@dataclass(frozen=True)
class Int8Weight:
    """codes int8 (out, in); scales float32 (out,); positions int64 (k,) flat; values float16 (k,)."""

    codes: torch.Tensor
    scales: torch.Tensor
    positions: torch.Tensor
    values: torch.Tensor


def quantize_linear_weight(weight: torch.Tensor, max_fraction: float = DEFAULT_WEIGHT_OUTLIER_FRACTION) -> Int8Weight:
    """Quantize a (out, in) weight to int8 rows plus fp16 outliers."""
    if weight.dim() != 2 or not weight.is_floating_point():
        raise KernelError(f"a Linear weight is a 2-D float tensor, got {weight.dim()}-D {weight.dtype}")
    flat = weight.detach().reshape(-1).float()  # (out*in,)
    positions = select_outliers(flat, 0.0, max_fraction)
    values = flat[positions].to(torch.float16)
    rest = flat.clone()
    rest[positions] = 0
    rows = rest.view(weight.shape)  # (out, in)
    scales = rows.abs().amax(dim=1)  # (out,)
    divisors = torch.where(scales == 0, 1.0, scales)
    codes = torch.round(rows / divisors[:, None] * 127.0).to(torch.int8)  # (out, in) in -127..127
    return Int8Weight(codes, scales, positions, values)


def dequantize_linear_weight(q: Int8Weight, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The (out, in) weight rebuilt in ``dtype``."""
    weight = q.codes.float() * (q.scales[:, None] / 127.0)  # (out, in)
    weight.view(-1)[q.positions] = q.values.float()
    return weight.to(dtype)


class Int8Linear(nn.Module):
    """A drop-in for ``nn.Linear`` (inference only) holding int8 weights."""

    codes: torch.Tensor
    scales: torch.Tensor
    positions: torch.Tensor
    values: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, q: Int8Weight, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.out_features, self.in_features = q.codes.shape
        self.register_buffer("codes", q.codes)
        self.register_buffer("scales", q.scales)
        self.register_buffer("positions", q.positions)
        self.register_buffer("values", q.values)
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    @classmethod
    def from_linear(cls, linear: nn.Linear, max_fraction: float = DEFAULT_WEIGHT_OUTLIER_FRACTION) -> Int8Linear:
        return cls(quantize_linear_weight(linear.weight, max_fraction), linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        codes = self.codes.to(x.dtype)  # (out, in): exact, |code| <= 127
        y = x @ codes.t()  # (..., out)
        y = y * (self.scales / 127.0).to(x.dtype)  # scale each output column
        if self.positions.numel():
            rows = self.positions // self.in_features  # output feature of each outlier
            cols = self.positions % self.in_features  # input feature of each outlier
            y = y.index_add(-1, rows, x[..., cols] * self.values.to(x.dtype))  # (..., k) into (..., out)
        if self.bias is not None:
            y = y + self.bias.to(x.dtype)
        return y

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, outliers={self.values.numel()}"
