"""Quantize + dequantize throughput and error: nesachain.kernels against bitsandbytes, same CPU tensors.

    .venv/bin/python bench/kernels.py [--repeat 7] [--threads N] [--device cuda] [--write-docs]

GB/s are bytes of the input tensor per second (best of ``--repeat`` runs after one warm-up; the
runs of all implementations are interleaved, so that a slow spell of a shared machine falls on all
of them alike); "round trip" is quantize then dequantize. Both libraries use dynamic-map
blockwise-64 codes with one absmax per block and run on the same torch intra-op thread count
(bitsandbytes' CPU kernels use OpenMP; ours split large tensors over that many threads). Not a
test: numbers depend on the machine and its load. Each tensor also gets a line with the mixed8 frame's
encode and decode time in ms (a decode step's is what a pipeline hop pays), its treatment and its size.
Without bitsandbytes (not in the GPU machine's image) only our rows are printed.

On a machine whose cores are busy with other work, run with ``OMP_WAIT_POLICY=PASSIVE`` (or
``--threads 1``): every torch op opens an OpenMP parallel region, and GNU OpenMP's spinning threads
then wait a scheduler slice for a descheduled sibling. The torch path makes a few regions per 64k
values, bitsandbytes one per call, so the default policy under load penalises ours far more (measured
here at load average 7 on 2 cores: 0.01 GB/s against 0.19 GB/s on a (512, 576) tensor). Miners
should set the same policy, or as many threads as they have idle cores.

``--write-docs`` puts the tables into docs/benchmarks.md between ``<!-- bench:kernels -->`` and
``<!-- /bench:kernels -->`` (``--device cuda``: ``bench:kernels-cuda``; ``bench/report.py``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import Lines, add_write_docs_flag, write_section  # bench/report.py: docs/benchmarks.md

from nesachain.kernels import (
    FrameConfig,
    MapId,
    Scheme,
    decode_frame,
    dequantize_blockwise,
    dequantize_mixed,
    encode_frame,
    quantize_blockwise,
    quantize_mixed,
    read_header,
)

SHAPES = [(1, 576), (512, 576), (512, 4096), (2048, 2048)]  # SmolLM2 decode step and prefill, 7B-wide prefill, 16 MiB


def best_seconds(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Best wall time of each function over ``repeat`` rounds, each round calling every function once."""
    sync = torch.cuda.synchronize if torch.cuda.is_initialized() else (lambda: None)
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def errors(x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(max |y - x|, RMS(y - x) / RMS(x)) in float64."""
    diff = y.double() - x.double()
    return float(diff.abs().max()), float(diff.pow(2).mean().sqrt() / x.double().pow(2).mean().sqrt())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: leave as is)")
    parser.add_argument("--device", default="cpu", help="where the tensors live: cpu or cuda")
    add_write_docs_flag(parser)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    bnb: Any = None
    try:
        import bitsandbytes
        import bitsandbytes.functional as bnb

        against = f"bitsandbytes {bitsandbytes.__version__}"
    except ImportError as exc:  # the dev extra is not installed (or a GPU machine without it): our rows only
        against = f"bitsandbytes not importable ({exc}): nesachain rows only"

    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, threads {torch.get_num_threads()}"
    md = Lines()
    md(f"torch {torch.__version__}, {against}, {where}; best of {args.repeat} interleaved runs. GB/s are bytes of "
       "the input tensor per second; round trip is quantize then dequantize.")
    md()
    md("| tensor | implementation | quant GB/s | dequant GB/s | round trip GB/s | max err | rel RMS err |")
    md("|---|---|---:|---:|---:|---:|---:|")
    frames: list[str] = []
    ratios: list[str] = []
    gen = torch.Generator().manual_seed(0)
    for shape in SHAPES:
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            bench_tensor(torch.randn(shape, generator=gen).to(device, dtype), args.repeat, bnb, md, frames, ratios)
    md()
    md("A mixed8 frame of each tensor (`encode_frame`, `decode_frame`):")
    md()
    md("| tensor | encode ms | decode ms | treatment | bytes / fp16 |")
    md("|---|---:|---:|---|---:|")
    for row in frames:
        md(row)
    if ratios:
        md()
        md("nesachain blockwise8 against bitsandbytes' blockwise, speed ratio (above 1: ours is faster):")
        md()
        md("| tensor | quantize | dequantize | round trip |")
        md("|---|---:|---:|---:|")
        for row in ratios:
            md(row)
    if args.write_docs:
        write_section("kernels" if device.type == "cpu" else f"kernels-{device.type}", md.text())


def bench_tensor(x: torch.Tensor, repeat: int, bnb: Any, md: Lines, frames: list[str], ratios: list[str]) -> None:
    """A row per implementation for ``x`` (printed as measured), and its mixed8 frame's and, with bitsandbytes
    (``bnb``; None: ours only), the speed ratio's rows for the tables after."""
    nbytes = x.numel() * x.element_size()
    label = f"{tuple(x.shape)} {str(x.dtype).removeprefix('torch.')}"
    q = quantize_blockwise(x, 64, MapId.DYNAMIC)
    m = quantize_mixed(x)
    mixed8 = FrameConfig(scheme=Scheme.MIXED8)
    frame = encode_frame(x, mixed8)
    fns: dict[str, Callable[[], object]] = {
        "nesachain blockwise8 q": lambda: quantize_blockwise(x, 64, MapId.DYNAMIC),
        "nesachain blockwise8 dq": lambda: dequantize_blockwise(q),
        "nesachain mixed8 q": lambda: quantize_mixed(x),
        "nesachain mixed8 dq": lambda: dequantize_mixed(m),
        "nesachain mixed8 frame q": lambda: encode_frame(x, mixed8),
        "nesachain mixed8 frame dq": lambda: decode_frame(frame, device=x.device),
    }
    outputs = {
        "nesachain blockwise8": dequantize_blockwise(q),
        "nesachain mixed8": dequantize_mixed(m),
        "nesachain mixed8 frame": decode_frame(frame, device=x.device),
    }
    if bnb is not None:
        code = bnb.create_dynamic_map(signed=True).to(x.device)
        qb, state = bnb.quantize_blockwise(x, code=code, blocksize=64)
        fns["bitsandbytes blockwise q"] = lambda: bnb.quantize_blockwise(x, code=code, blocksize=64)
        fns["bitsandbytes blockwise dq"] = lambda: bnb.dequantize_blockwise(qb, state)
        outputs["bitsandbytes blockwise"] = bnb.dequantize_blockwise(qb, state)
    seconds = best_seconds(fns, repeat)
    rows = [(name, seconds[name + " q"], seconds[name + " dq"], y) for name, y in outputs.items()]
    speeds = {}
    for name, tq, tdq, y in rows:
        max_err, rel = errors(x, y)
        speeds[name] = (nbytes / tq / 1e9, nbytes / tdq / 1e9, nbytes / (tq + tdq) / 1e9)
        gbq, gbdq, gbrt = speeds[name]
        md(f"| {label} | {name} | {gbq:.2f} | {gbdq:.2f} | {gbrt:.2f} | {max_err:.4f} | {rel:.5f} |")
    treatment = "coded" if read_header(frame).coded else "8-bit"
    frames.append(f"| {label} | {seconds['nesachain mixed8 frame q'] * 1e3:.3f} | "
                  f"{seconds['nesachain mixed8 frame dq'] * 1e3:.3f} | {treatment} blocks | "
                  f"{len(frame) / (2 * x.numel()):.3f} |")
    if bnb is not None:
        ours, theirs = speeds["nesachain blockwise8"], speeds["bitsandbytes blockwise"]
        ratios.append(f"| {label} | " + " | ".join(f"{a / b:.2f}x" for a, b in zip(ours, theirs, strict=True)) + " |")


if __name__ == "__main__":
    main()
