"""The Triton kernels' logic, checked on the CPU with Triton's interpreter (``TRITON_INTERPRET=1``,
which must be set before Triton is imported, hence a subprocess). The compiled kernels themselves
run in ``test_cuda.py`` on a GPU machine."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

CHECK = textwrap.dedent(
    """
    import torch
    from nesachain.kernels import MapId, cuda_triton, dequantize_blockwise, quantize_blockwise
    from nesachain.kernels.blockwise import block_absmax
    from nesachain.kernels.codemaps import code_map, quantize_table

    gen = torch.Generator().manual_seed(0)
    checked = 0
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        for block in (32, 64, 4096):
            x = torch.randn(3, 333, 57, generator=gen) * torch.logspace(-6, 3, 57)
            x.view(-1)[5] = 6.0e4
            x = x.to(dtype)
            flat = x.reshape(-1)
            assert torch.equal(cuda_triton.block_absmax(flat, block), block_absmax(flat, block)), (dtype, block)
            for map_id in MapId:
                q = quantize_blockwise(x, block, map_id)  # the CPU loops
                divisors = torch.where(q.scales.float() == 0, 1.0, q.scales.float())
                codes = cuda_triton.quantize(flat, divisors, quantize_table(map_id), block)
                assert torch.equal(codes, q.codes), (dtype, block, map_id)
                out = cuda_triton.dequantize(q.codes, q.scales, code_map(map_id), block, dtype)
                expected = dequantize_blockwise(q).reshape(-1)
                assert out.dtype == dtype and torch.equal(out.view(torch.uint8), expected.view(torch.uint8))
                checked += 1
    bad = torch.ones(200)
    bad[70], bad[150] = float("nan"), float("inf")
    marks = cuda_triton.block_absmax(bad, 64)
    assert marks[0] == 1.0 and marks[3] == 1.0 and marks[1].isnan() and marks[2].isnan()
    print("checked", checked)
    """
)


def test_triton_kernels_compute_the_cpu_paths_bytes_in_the_interpreter() -> None:
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "checked 18" in done.stdout


def test_a_triton_failure_turns_triton_off_with_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    from nesachain.kernels import blockwise

    class Broken:
        calls = 0

        def quantize(self, *args: object) -> torch.Tensor:
            Broken.calls += 1
            raise RuntimeError("no kernel image is available for execution on the device")

    monkeypatch.setattr(blockwise, "_triton_failed", [])
    monkeypatch.setattr(blockwise, "_on_triton", lambda t: None if blockwise._triton_failed else Broken())
    with pytest.warns(RuntimeWarning, match="Triton kernels disabled, using torch ops: RuntimeError: no kernel"):
        assert blockwise._run_triton("quantize", torch.zeros(1), torch.zeros(1)) is None
    assert blockwise._run_triton("quantize", torch.zeros(1), torch.zeros(1)) is None  # off: not tried again
    assert Broken.calls == 1
