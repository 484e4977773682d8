#!/usr/bin/env bash
# The checks that need a GPU, in one run, on a machine whose python3 already has torch with CUDA, Triton,
# numba, hypothesis and pytest (the project's pins do not apply there): the gpu-marked kernel tests, then
# bench/kernels.py on CUDA. Logs go to $OUT (default /tmp/gpu_check). Exit status: the tests'.
# Wheels in .whl/ are installed first into /tmp/site (the device tool's image lacks structlog, which
# nesachain.models imports: `pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl structlog`).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/gpu_check}
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit
fi
export PYTHONPATH=$PWD:/tmp/site PYTHONUNBUFFERED=1
python3 -c "import torch, triton, numba; print('torch', torch.__version__, 'triton', triton.__version__,
'numba', numba.__version__, torch.cuda.get_device_name())"
python3 -m pytest -m gpu -p no:cacheprovider tests/kernels -q -rfE 2>&1 | tee "$out/gpu_tests.log"
rc=${PIPESTATUS[0]}
timeout "${BENCH_TIMEOUT:-300}" python3 bench/kernels.py --device cuda --repeat "${REPEAT:-10}" 2>&1 | tee "$out/kernels_cuda.log"
exit "$rc"
