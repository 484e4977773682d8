"""Frames of one stream: the tensor a session sends step after step (a decoder's hidden state).

mixed8's encoder picks a treatment per tensor by predicting each one's error, and on a decode step's
frame (576 values for SmolLM2) predicting the 8-bit treatments costs more than coding the frame:
measured here, one thread, in a miner process between its layers' forward passes, 2.3 ms to encode
a frame with every treatment weighed against 0.9 ms with coded blocks forced. The frames of one
stream are alike, so ``StreamEncoder`` weighs every treatment on a stream's first frame of a shape,
and then on every ``recheck``-th frame; in between, while the last weighing chose coded blocks, it
sends coded blocks without weighing (byte for byte the frame the full weighing would give where it
also chooses them). A forced coded frame that cannot be made (no step fits) falls back to the full
weighing. Other schemes, mixed8 with a treatment forced by the config, and other frames: exactly
``encode_frame``.

The state is a function of the frames seen, in order: a miner replaying a session's steps in order
(a failover) makes the frames the first miner made.
"""

from __future__ import annotations

import dataclasses

import torch

from nesachain.kernels.errors import KernelError
from nesachain.kernels.frame import FrameConfig, Scheme, encode_frame, read_header

__all__ = ["DEFAULT_RECHECK", "StreamEncoder"]

DEFAULT_RECHECK = 16  # frames: weigh every treatment again at least this often


class StreamEncoder:
    """``encode_frame`` for the frames of one stream, in order (module doc). Not thread-safe: one per stream."""

    def __init__(self, config: FrameConfig | None = None, recheck: int = DEFAULT_RECHECK) -> None:
        if recheck < 1:
            raise KernelError(f"recheck must be >= 1, got {recheck}")
        self.config = config or FrameConfig()
        self.recheck = recheck
        self._coded_shape: tuple[int, ...] | None = None  # the shape whose last weighing chose coded blocks
        self._since = 0  # frames since that weighing, itself included
        self.weighed = 0  # frames encoded with every treatment weighed (for tests and benches)
        self._sticky = self.config.scheme == Scheme.MIXED8 and not any(
            (self.config.rotate, self.config.center, self.config.delta, self.config.grid)
        ) and self.config.coded is None

    def encode(self, x: torch.Tensor) -> bytes:
        """One frame of the stream."""
        if not self._sticky:
            return encode_frame(x, self.config)
        shape = tuple(x.shape)
        if shape == self._coded_shape and self._since < self.recheck:
            try:
                frame = encode_frame(x, dataclasses.replace(self.config, coded=True))
            except KernelError:
                pass  # no step fits this frame: weigh every treatment
            else:
                self._since += 1
                return frame
        frame = encode_frame(x, self.config)
        self.weighed += 1
        self._coded_shape = shape if read_header(frame).coded else None
        self._since = 1
        return frame
