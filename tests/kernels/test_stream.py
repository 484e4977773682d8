"""StreamEncoder: mixed8 weighs its treatments on a stream's first frame of a shape and every recheck-th."""

from __future__ import annotations

import pytest
import torch

from nesachain.kernels import FrameConfig, KernelError, Scheme, StreamEncoder, decode_frame, encode_frame, read_header


def decode_steps(count: int, seed: int = 4) -> list[torch.Tensor]:
    """(1, 1, 576) frames like a decoder's hidden state, one per decode step: heavy tails, outlier channels."""
    gen = torch.Generator().manual_seed(seed)
    frames = []
    for _ in range(count):
        x = torch.randn(1, 1, 576, generator=gen) * torch.rand(1, 1, 576, generator=gen).pow(3) * 4
        x[..., 7::64] *= 20.0
        frames.append(x)
    return frames


def test_coded_stream_weighs_only_every_recheck_th_frame_and_sends_the_same_bytes() -> None:
    stream = StreamEncoder(recheck=16)
    prefill = decode_steps(1)[0].expand(1, 16, 576) * torch.linspace(0.5, 1.5, 16).view(1, 16, 1)
    frames = [stream.encode(prefill)] + [stream.encode(x) for x in decode_steps(40)]
    # the prefill's shape is weighed once; the decode steps at steps 1, 17 and 33 of their shape
    assert stream.weighed == 1 + 3
    for x, frame in zip([prefill, *decode_steps(40)], frames, strict=True):
        assert read_header(frame).coded
        assert frame == encode_frame(x)  # what weighing every treatment sends, byte for byte
    again = StreamEncoder(recheck=16)  # a failover replays the steps in order: the same frames
    assert [again.encode(x) for x in [prefill, *decode_steps(40)]] == frames


def test_stream_that_weighs_to_8bit_blocks_weighs_every_frame() -> None:
    ramp = torch.linspace(-2.0, 2.0, 4096).view(1, 4096).sin()  # smooth: delta-coded, not coded blocks
    stream = StreamEncoder()
    for k in range(5):
        x = ramp * (1 + 0.1 * k)
        frame = stream.encode(x)
        assert not read_header(frame).coded and frame == encode_frame(x)
    assert stream.weighed == 5


def test_stream_falls_back_to_weighing_where_coded_blocks_cannot_be_made() -> None:
    stream = StreamEncoder()
    x = decode_steps(1)[0]
    stream.encode(x)
    assert stream.weighed == 1
    zeros = torch.zeros_like(x)  # no step fits an all-zero frame: forced coded blocks refuse it
    with pytest.raises(KernelError):
        encode_frame(zeros, FrameConfig(coded=True))
    frame = stream.encode(zeros)
    assert stream.weighed == 2 and frame == encode_frame(zeros) and not bool(decode_frame(frame).any())
    assert stream.encode(x) == encode_frame(x) and stream.weighed == 3  # the zero frame's weighing chose 8-bit


def test_stream_passes_other_schemes_and_forced_treatments_through() -> None:
    x = decode_steps(1)[0]
    for config in (FrameConfig(scheme=Scheme.FP16), FrameConfig(scheme=Scheme.BLOCKWISE8),
                   FrameConfig(coded=False), FrameConfig(rotate=True), FrameConfig(coded=True)):
        stream = StreamEncoder(config)
        for _ in range(3):
            assert stream.encode(x) == encode_frame(x, config)
        assert stream.weighed == 0
    with pytest.raises(KernelError, match="recheck"):
        StreamEncoder(recheck=0)
