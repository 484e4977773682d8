"""Tensor frames on the wire: one frame format for every tensor, a stream per name, refusals of malformed
or oversize frames, and the codecs compiled ahead (``nesachain.protocol.frames``)."""

from __future__ import annotations

import pytest
import torch

from nesachain.kernels import Scheme, read_header
from nesachain.protocol.errors import WireError
from nesachain.protocol.frames import TensorStreams, decode_tensor, encode_tensor, warm_codecs


@pytest.mark.parametrize("scheme", ["none", "fp16"])
def test_frames_roundtrip_lossless_or_fp16(scheme: str) -> None:
    x = torch.randn(2, 5, 7)
    y = decode_tensor(encode_tensor(x, scheme))
    assert y.dtype == torch.float32 and y.shape == x.shape
    assert (x - y).abs().max() <= (0 if scheme == "none" else 1e-2)


def test_frames_integer_tensors_travel_exactly_under_any_scheme() -> None:
    m = torch.tensor([[1, 1, 0], [1, 0, 0]])
    frame = encode_tensor(m, "mixed8")
    assert frame[:2] == b"NT" and read_header(frame).scheme is Scheme.NONE  # one frame format for every tensor
    assert torch.equal(decode_tensor(frame), m)


def test_frames_tensor_streams_keep_one_stream_per_name_and_send_encode_tensor_s_frames() -> None:
    streams = TensorStreams("mixed8")
    gen = torch.Generator().manual_seed(8)
    for _ in range(3):
        step = {"hidden": torch.randn(1, 1, 576, generator=gen) * 3, "mask": torch.ones(1, 1, dtype=torch.int64)}
        frames = streams.encode(step)
        assert frames == {name: encode_tensor(t, "mixed8") for name, t in step.items()}
    assert set(streams.streams) == {"hidden", "mask"} and streams.streams["hidden"].weighed == 1
    with pytest.raises(WireError) as exc:
        TensorStreams("int4")
    assert exc.value.code == "unsupported_scheme"


@pytest.mark.parametrize("frame", [b"", b"NSF1", b"NSF1\xff\xff\xff\xff", b"XXXXXXXXXXXX"])
def test_frames_malformed_frames_are_refused(frame: bytes) -> None:
    with pytest.raises(WireError) as exc:
        decode_tensor(frame)
    assert exc.value.code == "malformed_frame"


def test_frames_inconsistent_and_oversize_frames_are_refused() -> None:
    good = encode_tensor(torch.ones(4, 4, dtype=torch.int64))
    with pytest.raises(WireError, match="do not add up"):
        decode_tensor(good[:-1])
    with pytest.raises(WireError) as exc:
        decode_tensor(encode_tensor(torch.zeros(64, 64, dtype=torch.int64)), max_bytes=1024)
    assert exc.value.code == "too_large"


def test_warm_codecs_compiles_the_loops_for_the_miners_dtypes_and_skips_what_cannot_travel() -> None:
    from nesachain.kernels import cpu_loops

    bad = torch.ones(64, dtype=torch.bfloat16)
    bad[3] = float("nan")  # blockwise8 refuses nan: warming must not raise on it
    warm_codecs({"hidden": torch.randn(1, 1, 576).to(torch.bfloat16), "ids": torch.arange(4), "bad": bad})
    compiled = [str(sig) for sig in cpu_loops._quantize.signatures]
    assert any("uint16" in sig for sig in compiled)  # bf16 input is read as its bit patterns
    assert cpu_loops._dequantize_16.signatures
