"""mixed8's outliers: which values travel apart from the 8-bit or coded blocks, and in what dtype.

The rule (defaults): every nan and ±inf, then the finite values with |x| > 6.0, largest first (ties:
lower position first), at most floor(numel / 80) of them. Coded blocks (``mixed``'s doc) raise the
threshold to 64 x the tensor's mean finite |x| and lower the cap to 1/256. Selection runs on the host
in a compiled loop (``cpu_loops.outliers``): a frame is often a few thousand values, where torch's
per-op cost dominates.

Positions are flat indices, uint16 when numel ≤ 65,536, uint32 up to 2^32, uint64 beyond.
Outlier values keep the input dtype when it is fp16 or bf16. fp32 inputs send fp32 values when
the frame still fits 0.56 × fp16 (codes, scales, centres, positions and fp32 values, plus 32 bytes
for the header, within 1.12 bytes a value), or when a finite outlier is neither 0 nor a normal fp16
number; fp16 values otherwise. A centred frame at its full (half) cap fits: 1 + 4/64 + 8/160 =
1.1125 bytes a value; a rotated or plain one at its full cap does not (1 + 2/64 + 8/80). Outliers
are the values an 8-bit block cannot hold, and fp16 rounds them by up to 2^-11 of their size (0.016
on the 40 a feature map of EfficientNet-Lite0 carries), as much as the 8-bit step of their
neighbours. Measured on EfficientNet-Lite0 (``bench/accuracy.py``, 512 photo crops, mixed8 on all
four transfers of 3 shards, every frame centred or on a grid): KL 1.9e-5 and 3 crops flipped with
fp16 outliers, 1.8e-5 and 1 crop with fp32 (fp16 on the whole route: 2.2e-6, 2 crops). nan and
±inf are always outliers, whatever the cap, so mixed8 reproduces them exactly.
"""

from __future__ import annotations

import numpy as np
import torch

from nesachain.kernels import cpu_loops
from nesachain.kernels.blockwise import FP16_MAX, FP16_MIN_NORMAL
from nesachain.kernels.errors import KernelError

__all__ = [
    "CODED_MAX_FRACTION",
    "CODED_OUTLIER_RATIO",
    "DEFAULT_MAX_FRACTION",
    "DEFAULT_THRESHOLD",
    "MAX_FRAME_BYTES_PER_VALUE",
    "check_outlier_rule",
    "coded_outliers",
    "coded_positions",
    "host_float32",
    "max_outliers",
    "outlier_value_dtype",
    "select_outliers",
]

DEFAULT_THRESHOLD = 6.0
DEFAULT_MAX_FRACTION = 1.0 / 80.0
MAX_FRAME_BYTES_PER_VALUE = 1.12  # 0.56 x fp16: what outliers may spend in fp32
CODED_OUTLIER_RATIO = 64.0  # coded blocks: values above this many times the mean |x| travel apart ...
CODED_MAX_FRACTION = 1.0 / 256.0  # ... at most this fraction of them, largest first
HEADER_ALLOWANCE = 32  # bytes; a frame header of up to four dimensions below 2^21 takes at most 24


def max_outliers(numel: int, max_fraction: float) -> int:
    """How many finite outliers a tensor of ``numel`` values may carry."""
    if not 0.0 <= max_fraction <= 1.0:
        raise KernelError(f"max_fraction must be in [0, 1], got {max_fraction}")
    return int(numel * max_fraction)


def check_outlier_rule(threshold: float, max_fraction: float) -> None:
    """``KernelError`` unless ``threshold`` >= 0 and ``max_fraction`` is in [0, 1]."""
    if threshold < 0 or threshold != threshold:
        raise KernelError(f"outlier threshold must be >= 0, got {threshold}")
    max_outliers(0, max_fraction)


def select_outliers(flat: torch.Tensor, threshold: float, max_fraction: float) -> torch.Tensor:
    """int64 ascending positions in the 1-D ``flat`` of its outliers (rule in the module doc), on its device.
    Computed on the host (a compiled loop: a frame is often a few thousand values, where torch's per-op cost
    dominates)."""
    check_outlier_rule(threshold, max_fraction)
    chosen = cpu_loops.outliers(host_float32(flat), threshold, max_outliers(flat.numel(), max_fraction))
    return torch.from_numpy(chosen).to(flat.device)


def host_float32(flat: torch.Tensor) -> np.ndarray:
    """The 1-D ``flat`` as a float32 numpy array on the host: a view where it is a CPU float32 tensor."""
    return flat.detach().to("cpu", torch.float32).numpy()


def coded_outliers(flat: torch.Tensor, threshold: float, max_fraction: float) -> torch.Tensor:
    """Positions of the values coded blocks send apart (module doc): ``select_outliers`` with the threshold
    raised to ``CODED_OUTLIER_RATIO`` x the mean finite |x| and the cap lowered to ``CODED_MAX_FRACTION``."""
    check_outlier_rule(threshold, max_fraction)
    return torch.from_numpy(coded_positions(host_float32(flat), threshold, max_fraction)).to(flat.device)


def coded_positions(v: np.ndarray, threshold: float, max_fraction: float) -> np.ndarray:
    """``coded_outliers`` of the float32 host array ``v``."""
    budget = max_outliers(v.size, min(max_fraction, CODED_MAX_FRACTION))
    return cpu_loops.outliers(v, threshold, budget, CODED_OUTLIER_RATIO)


def outlier_value_dtype(values: torch.Tensor, numel: int = 0, fp32_payload: int | None = None) -> torch.dtype:
    """The dtype outlier values travel in (see the module doc): ``numel`` values in the tensor, whose
    frame's payload would be ``fp32_payload`` bytes with fp32 outlier values (None: do not consider fp32
    for room)."""
    if values.dtype in (torch.float16, torch.bfloat16):
        return values.dtype
    magnitude = values.abs()
    finite = magnitude[torch.isfinite(magnitude) & (magnitude > 0)]
    if finite.numel() and (float(finite.min()) < FP16_MIN_NORMAL or float(finite.max()) > FP16_MAX):
        return torch.float32
    if fp32_payload is None:
        return torch.float16
    fits = fp32_payload + HEADER_ALLOWANCE <= MAX_FRAME_BYTES_PER_VALUE * numel
    return torch.float32 if fits else torch.float16
