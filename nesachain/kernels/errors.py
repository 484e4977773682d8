"""Errors raised by the compression kernels.

    NesaError
    └── KernelError        an argument or input the kernels cannot represent (bad block size,
        │                  unknown map, non-finite values under ``blockwise8``, values past fp16)
        └── FrameError     a tensor frame is truncated, inconsistent, unknown or over the size limit

``decode_frame`` raises only ``FrameError``: a peer's bytes never surface as anything else.
"""

from __future__ import annotations

from nesachain.errors import NesaError

__all__ = ["FrameError", "KernelError"]


class KernelError(NesaError):
    """A kernel was given an argument or a tensor it cannot encode."""


class FrameError(KernelError):
    """A tensor frame cannot be decoded; nothing large was allocated before this was raised."""
