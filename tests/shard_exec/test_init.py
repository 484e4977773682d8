"""The public API of ``nesachain.shard_exec``: small, and importable without the miner's server."""

from __future__ import annotations

import subprocess
import sys

import nesachain.shard_exec as se


def test_public_api_is_small_and_the_client_and_verifier_never_load_the_server() -> None:
    assert set(se.__all__) >= {"write_shards", "load_stage", "partition", "Sampling"}
    assert "MinerServer" not in se.__all__
    code = ("import sys, nesachain.client.request, nesachain.client.models, nesachain.verifier.verdicts, "
            "nesachain.verifier.replay; print(any(m.startswith('nesachain.shard_exec.server') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
