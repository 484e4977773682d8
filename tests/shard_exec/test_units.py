"""Fast unit tests: partition DP, wire frames and digests, KV cache bounds, routes, shard folders, API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from shard_exec_support import Sharded

import nesachain.shard_exec as se
from nesachain.client.errors import RouteError
from nesachain.client.route import parse_route
from nesachain.kernels import Scheme, read_header
from nesachain.protocol.errors import WireError
from nesachain.protocol.frames import TensorStreams, decode_tensor, encode_tensor
from nesachain.protocol.steplog import bundle_digest
from nesachain.shard_exec.errors import ManifestError, PartitionError
from nesachain.shard_exec.kv_cache import BlockKVCache
from nesachain.shard_exec.partition import CostWeights, balanced_layers, partition


def test_partition_balances_equal_layers() -> None:
    assert balanced_layers(30, 3) == [(0, 10), (10, 20), (20, 30)]
    sizes = [hi - lo for lo, hi in balanced_layers(7, 3)]
    assert sorted(sizes) == [2, 2, 3]


def test_partition_minimises_the_bottleneck_stage() -> None:
    bounds = partition([1, 1, 1, 6, 1, 1, 1], 3, weights=CostWeights(1.0, 0.0, 0.0))
    assert bounds == [0, 3, 4, 7]  # the heavy unit stands alone


def test_partition_avoids_forbidden_and_expensive_cuts() -> None:
    allowed = [True, True, False, True, True]
    bounds = partition([1, 1, 1, 1], 2, allowed=allowed, weights=CostWeights(1.0, 0.0, 0.0))
    assert bounds[1] != 2
    cut = [0, 100, 100, 1, 100]
    bounds = partition([1, 1, 1, 1], 2, cut_bytes=cut, weights=CostWeights(1.0, 0.0, 1.0))
    assert bounds == [0, 3, 4] or bounds[1] == 3


def test_partition_rejects_impossible_requests() -> None:
    with pytest.raises(PartitionError):
        partition([1, 1], 3)
    with pytest.raises(PartitionError):
        partition([1, 1, 1], 2, allowed=[True, False, False, True])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 100.0), min_size=1, max_size=30), st.integers(1, 6))
def test_partition_bounds_are_contiguous_and_non_empty(costs: list[float], k: int) -> None:
    k = min(k, len(costs))
    b = partition(costs, k)
    assert b[0] == 0 and b[-1] == len(costs) and len(b) == k + 1
    assert all(b[i] < b[i + 1] for i in range(k))


@pytest.mark.parametrize("scheme", ["none", "fp16"])
def test_wire_roundtrip_lossless_or_fp16(scheme: str) -> None:
    x = torch.randn(2, 5, 7)
    y = decode_tensor(encode_tensor(x, scheme))
    assert y.dtype == torch.float32 and y.shape == x.shape
    assert (x - y).abs().max() <= (0 if scheme == "none" else 1e-2)


def test_wire_integer_tensors_travel_exactly_under_any_scheme() -> None:
    m = torch.tensor([[1, 1, 0], [1, 0, 0]])
    frame = encode_tensor(m, "mixed8")
    assert frame[:2] == b"NT" and read_header(frame).scheme is Scheme.NONE  # one frame format for every tensor
    assert torch.equal(decode_tensor(frame), m)


def test_wire_tensor_streams_keep_one_stream_per_name_and_send_encode_tensor_s_frames() -> None:
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
def test_wire_malformed_frames_are_refused(frame: bytes) -> None:
    with pytest.raises(WireError) as exc:
        decode_tensor(frame)
    assert exc.value.code == "malformed_frame"


def test_wire_inconsistent_and_oversize_frames_are_refused() -> None:
    good = encode_tensor(torch.ones(4, 4, dtype=torch.int64))
    with pytest.raises(WireError, match="do not add up"):
        decode_tensor(good[:-1])
    with pytest.raises(WireError) as exc:
        decode_tensor(encode_tensor(torch.zeros(64, 64, dtype=torch.int64)), max_bytes=1024)
    assert exc.value.code == "too_large"


def test_wire_bundle_digest_is_canonical() -> None:
    a = {"x": b"1", "y": b"22"}
    assert bundle_digest(a) == bundle_digest(dict(reversed(list(a.items()))))
    assert bundle_digest(a) != bundle_digest({"x": b"12", "y": b"2"})


def test_kv_cache_refuses_gaps_and_overflow_and_rolls_back() -> None:
    c = BlockKVCache(10, 2, 1, 3, 4, max_length=5)
    assert c.nbytes == 2 * 2 * 1 * 3 * 5 * 4 * 4
    with pytest.raises(WireError, match="position"):
        c.begin(1, 1)
    c.begin(0, 3)
    k = torch.randn(1, 3, 3, 4)
    keys, _ = c.update(k, k, 10)
    assert torch.equal(keys, k)
    c.commit()
    c.begin(3, 1)
    c.rollback()
    assert c.length == 3
    with pytest.raises(WireError) as exc:
        c.begin(3, 3)
    assert exc.value.code == "past_max_length"


def test_route_parsing_and_coverage() -> None:
    r = parse_route("127.0.0.1:1@0:2,127.0.0.1:2@2:3", ["127.0.0.1:3@2:3"], "fp16")
    assert [h.url for h in r.hops] == ["ws://127.0.0.1:1/ws", "ws://127.0.0.1:2/ws"]
    assert [p.url for p in r.hops[1].alternates] == ["ws://127.0.0.1:3/ws"]
    r.validate(3)
    with pytest.raises(RouteError):
        r.validate(4)
    with pytest.raises(RouteError):
        parse_route("127.0.0.1:1@0:2", ["127.0.0.1:3@1:2"])
    assert parse_route("[::1]:7001@0:1,ws://h:2/ws@1:2").hops[0].url == "ws://[::1]:7001/ws"
    for bad in (":::@0:1", "@0:1", "127.0.0.1@0:1", "127.0.0.1:0@0:1", "127.0.0.1:99999@0:1", "h:x@0:1"):
        with pytest.raises(RouteError, match="host:port"):
            parse_route(bad)
    with pytest.raises(RouteError, match="host:port"):
        parse_route("127.0.0.1:1@0:2", ["127.0.0.1@0:2"])  # an alternate too


def test_shard_folder_manifest_and_partial_load(tiny_gpt2: Sharded) -> None:
    from nesachain.shard_exec.shard_files import load_stage

    m = tiny_gpt2.manifest
    assert m["architecture"] == "hf-decoder" and m["hf"]["family"] == "gpt2" and m["dtype"] == "float32"
    assert [b["units"] for b in m["blocks"]] == [[0, 2], [2, 4]]
    layers = tiny_gpt2.model.transformer.h
    whole = sum(t.numel() * t.element_size() for t in [*layers.parameters(), *layers.buffers()])
    runner = load_stage(tiny_gpt2.dir, 1, 2)
    assert runner.param_bytes == whole // 2


def test_block_ranges_that_are_malformed_empty_or_outside_are_refused_with_the_reason() -> None:
    from nesachain.shard_exec.shard_files import parse_range

    assert parse_range("0:30", 30) == (0, 30) and parse_range("29:30", 30) == (29, 30)
    for text, reason in [("abc", "looks like 0:2"), ("1:2:3", "looks like 0:2"), ("5:3", "is empty"),
                         ("4:4", "is empty"), ("0:31", "outside 0:30"), ("-1:2", "outside 0:30")]:
        with pytest.raises(ManifestError, match=reason):
            parse_range(text, 30)


def test_shard_folder_tampered_block_is_refused(tiny_gpt2: Sharded, tmp_path: Path) -> None:
    import shutil

    from nesachain.shard_exec.shard_files import load_stage

    d = tmp_path / "copy"
    shutil.copytree(tiny_gpt2.dir, d)
    path = d / "block_001.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    load_stage(d, 0, 1)  # untouched block still loads
    with pytest.raises(ManifestError, match="sha256"):
        load_stage(d, 1, 2)
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["format"] = 99
    (d / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError):
        load_stage(d, 0, 1)


def test_graph_factory_that_traces_differently_is_refused(toy: Sharded, tmp_path: Path) -> None:
    import shutil

    from nesachain.shard_exec.shard_files import load_stage

    d = tmp_path / "toy"
    shutil.copytree(toy.dir, d)
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["graph"]["factory"] = "nesachain.models.efficientnet:build_efficientnet_lite0"
    (d / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match="different graph"):
        load_stage(d, 0, 1)


def test_public_api_is_small_and_the_client_and_verifier_never_load_the_server() -> None:
    assert set(se.__all__) >= {"write_shards", "load_stage", "partition", "Sampling"} and "MinerServer" not in se.__all__
    code = ("import sys, nesachain.client.request, nesachain.client.models, nesachain.verifier.verdicts, "
            "nesachain.verifier.replay; print(any(m.startswith('nesachain.shard_exec.server') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _session(sid: str, reserved: int, idle_for: float = 0.0):  # type: ignore[no-untyped-def]
    import time

    from nesachain.shard_exec.server.sessions import Session

    s = Session(sid, owner=None, batch=1, max_length=8, scheme="none", reserved=reserved, state=None)
    s.last_used = time.monotonic() - idle_for
    return s


def test_session_table_budget_evicts_idle_sessions_first(tmp_path: Path) -> None:
    from nesachain.shard_exec.server.config import MinerConfig
    from nesachain.shard_exec.server.sessions import SessionTable

    table = SessionTable(MinerConfig(tmp_path, 0, 1, memory_budget=100, evict_idle_after=10.0))
    table.add(_session("old", 60, idle_for=60.0))
    table.add(_session("busy", 30))
    assert table.add(_session("new", 50)) == ["old"]  # the idle one makes room
    assert set(table.open) == {"busy", "new"} and table.reserved == 80
    with pytest.raises(WireError) as exc:
        table.add(_session("toobig", 50))  # nobody is idle long enough to evict
    assert exc.value.code == "memory_budget_exhausted"
    assert table.log_of("old") == []  # the evicted session's log is kept for commitments


def test_session_table_expires_idle_sessions_and_bounds_retained_tensors(tmp_path: Path) -> None:
    import time

    from nesachain.shard_exec.server.config import MinerConfig
    from nesachain.shard_exec.server.sessions import SessionTable, StepRecord

    table = SessionTable(MinerConfig(tmp_path, 0, 1, session_idle_timeout=5.0, retention_bytes=1000))
    a = _session("a", 1, idle_for=10.0)
    table.add(a)
    table.add(_session("b", 1))
    for i in range(10):
        table.record(a, StepRecord(i, i, 1, "d", "d", time.time(), {"x": b"0" * 200}, {"y": b"1" * 200}))
    assert sum(r.in_frames is not None for r in a.log) == 2  # 400 bytes a step, 1000 bytes kept
    assert table.expire_idle() == ["a"]
    assert set(table.open) == {"b"} and len(table.log_of("a") or []) == 10


def test_warm_codecs_compiles_the_loops_for_the_miners_dtypes_and_skips_what_cannot_travel() -> None:
    from nesachain.kernels import cpu_loops
    from nesachain.protocol.frames import warm_codecs

    bad = torch.ones(64, dtype=torch.bfloat16)
    bad[3] = float("nan")  # blockwise8 refuses nan: warming must not raise on it
    warm_codecs({"hidden": torch.randn(1, 1, 576).to(torch.bfloat16), "ids": torch.arange(4), "bad": bad})
    compiled = [str(sig) for sig in cpu_loops._quantize.signatures]
    assert any("uint16" in sig for sig in compiled)  # bf16 input is read as its bit patterns
    assert cpu_loops._dequantize_16.signatures
