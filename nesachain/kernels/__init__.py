"""Compression kernels for tensors on the wire: pure compute, no I/O, nothing runs at import.

    quantize_blockwise / dequantize_blockwise   8-bit codes + one absmax scale per block of B values
    quantize_mixed / dequantize_mixed           outliers apart (fp16) + rotated, centred, delta or plain blocks,
                                                or one fine step with Rice codes (``rice``) where that does
                                                better; 8-bit data (a normalised 8-bit image) exact on grid blocks
    encode_frame / decode_frame                 one tensor as self-describing bytes (msgpack ``bin``)
    requantize                                  a tensor through the quantizer that made a frame (verifiers)
    StreamEncoder                               encode_frame for one stream's frames, step after step: mixed8
                                                weighs its treatments on the first frame and every 16th
    Int8Linear / quantize_linear_weight         int8 Linear weights, one scale per row, fp16 outliers

Errors: ``KernelError`` (an input the kernels cannot encode) and its subclass ``FrameError``
(a frame that cannot be decoded), both under ``nesachain.errors.NesaError``.
Plain reference implementations live in ``nesachain.kernels.reference``.
"""

from __future__ import annotations

from nesachain.kernels.blockwise import (
    DEFAULT_BLOCK_SIZE,
    QuantizedBlocks,
    dequantize_blockwise,
    quantize_blockwise,
)
from nesachain.kernels.codemaps import MapId, code_map, error_factor
from nesachain.kernels.errors import FrameError, KernelError
from nesachain.kernels.frame import (
    DEFAULT_MAX_FRAME_BYTES,
    FrameConfig,
    FrameHeader,
    Scheme,
    decode_frame,
    encode_frame,
    read_header,
    requantize,
)
from nesachain.kernels.int8_linear import Int8Linear, Int8Weight, dequantize_linear_weight, quantize_linear_weight
from nesachain.kernels.mixed import MixedQuantized, dequantize_mixed, quantize_mixed
from nesachain.kernels.stream import StreamEncoder

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "DEFAULT_MAX_FRAME_BYTES",
    "FrameConfig",
    "FrameError",
    "FrameHeader",
    "Int8Linear",
    "Int8Weight",
    "KernelError",
    "MapId",
    "MixedQuantized",
    "QuantizedBlocks",
    "Scheme",
    "StreamEncoder",
    "code_map",
    "decode_frame",
    "dequantize_blockwise",
    "dequantize_linear_weight",
    "dequantize_mixed",
    "encode_frame",
    "error_factor",
    "quantize_blockwise",
    "quantize_linear_weight",
    "quantize_mixed",
    "read_header",
    "requantize",
]
