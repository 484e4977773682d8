#!/usr/bin/env bash
# logs the 4-validator localnet (see README). Extra arguments go to `python -m nesachain.localnet logs`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/bin:$PATH"
exec .venv/bin/python -m nesachain.localnet logs "$@"
