from __future__ import annotations

import subprocess
import sys

import nesachain.kernels as kernels
from nesachain.errors import NesaError

EXPECTED = {
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
}


def test_kernels_public_api_exactly_the_documented_names() -> None:
    assert set(kernels.__all__) == EXPECTED
    for name in EXPECTED:
        assert getattr(kernels, name) is not None


def test_kernels_errors_one_root_frame_error_under_kernel_error() -> None:
    assert issubclass(kernels.KernelError, NesaError)
    assert issubclass(kernels.FrameError, kernels.KernelError)


def test_kernels_import_no_side_effects_nothing_built_no_heavy_imports() -> None:
    probe = (
        "import sys\n"
        "import nesachain.kernels\n"
        "from nesachain.kernels import codemaps, rotation\n"
        "assert codemaps._cpu_map.cache_info().currsize == 0\n"
        "assert rotation._hadamard_cpu.cache_info().currsize == 0\n"
        "heavy = ('transformers', 'bitsandbytes', 'msgpack', 'nesachain.models')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
