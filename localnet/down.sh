#!/usr/bin/env bash
# down the 4-validator localnet (see README). Extra arguments go to `python -m nesachain.localnet down`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/bin:$PATH"
exec .venv/bin/python -m nesachain.localnet down "$@"
