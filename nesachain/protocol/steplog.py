"""Step logs: what a miner records of every step, what it commits to, and how verifiers read it back.

A step's digest is ``sha256`` over the canonical bundle of its frames: for each name in sorted order,
``u16 len(name) | name | u64 len(frame) | frame``, with each value packed as a frame named ``value:<name>``
(``step_digest``). A step-log leaf binds (step, input digest, output digest) (``types.merkle.leaf_hash``);
the log's root is the merkle root of its leaves in step order: what a miner commits and reveals on chain and
what a verifier recomputes from the log the miner serves.

Miners serve the log over HTTP (``nesachain.shard_exec.server.steplog_http``):

    GET /sessions/{sid}/log             JSON {"session", "steps": [{"step", "position", "n_tokens",
                                        "in_digest", "out_digest", "at", "tensors_retained"}, ...]}
    GET /sessions/{sid}/steps/{n}       msgpack {"op": "frames", "step", "position", "in", "in_values", "out",
                                        "out_values"} while retained
    GET /sessions/{sid}/steps?upto=N    msgpack {"op": "frames", "steps": [...]}: steps 0..N still retained
"""

from __future__ import annotations

import hashlib
import json
import struct
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import msgpack

from nesachain.errors import NesaError
from nesachain.types.merkle import leaf_hash, merkle_root

__all__ = ["bundle_digest", "fetch_json", "fetch_steps", "http_get", "log_url", "step_digest", "step_log_leaves",
           "step_log_root", "steps_url"]


def bundle_digest(frames: Mapping[str, bytes]) -> str:
    """sha256 hex of the canonical bundle of a step's frames (see the module's doc)."""
    h = hashlib.sha256()
    for name in sorted(frames):
        raw = name.encode()
        h.update(struct.pack("<H", len(raw)) + raw)
        h.update(struct.pack("<Q", len(frames[name])) + frames[name])
    return h.hexdigest()


def step_digest(frames: Mapping[str, bytes], values: Mapping[str, Any]) -> str:
    """``bundle_digest`` over the frames plus each value packed as ``value:<name>``."""
    bundle = dict(frames)
    for key, val in values.items():
        bundle[f"value:{key}"] = bytes(msgpack.packb(val))
    return bundle_digest(bundle)


def step_log_leaves(steps: list[dict[str, Any]]) -> list[bytes]:
    ordered = sorted(steps, key=lambda s: int(s["step"]))
    return [leaf_hash(int(s["step"]), bytes.fromhex(s["in_digest"]), bytes.fromhex(s["out_digest"]))
            for s in ordered]


def step_log_root(steps: list[dict[str, Any]]) -> tuple[bytes, int]:
    """(merkle root, number of steps) of a step log's records."""
    leaves = step_log_leaves(steps)
    return merkle_root(leaves), len(leaves)


def log_url(base: str, session: str) -> str:
    """Where a miner at ``base`` (``http://host:port``) serves ``session``'s step log."""
    return f"{base.rstrip('/')}/sessions/{quote(session, safe='')}/log"


def steps_url(base: str, session: str, upto: int) -> str:
    """Where a miner serves ``session``'s retained frames of steps 0..``upto``."""
    return f"{base.rstrip('/')}/sessions/{quote(session, safe='')}/steps?upto={int(upto)}"


def http_get(url: str, timeout: float = 10.0) -> bytes | None:
    """The body at ``url``; None for 404 (the miner has no such item); NesaError otherwise."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body: bytes = resp.read()
            return body
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise NesaError(f"{url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise NesaError(f"{url}: {exc}") from None


def fetch_json(url: str) -> Any:
    body = http_get(url)
    if body is None:
        return None
    try:
        return json.loads(body)
    except ValueError:
        raise NesaError(f"{url} did not answer JSON") from None


def fetch_steps(url: str) -> dict[int, dict[str, Any]] | None:
    """The retained frames of several steps (``steps_url``), by step number."""
    body = http_get(url)
    if body is None:
        return None
    try:
        data = msgpack.unpackb(body, raw=False)
    except Exception:  # msgpack raises several kinds on bad input
        raise NesaError(f"{url} did not answer msgpack") from None
    steps = data.get("steps") if isinstance(data, dict) else None
    if not isinstance(steps, list) or not all(
            isinstance(d, dict) and isinstance(d.get("step"), int) and isinstance(d.get("in"), dict)
            and isinstance(d.get("out"), dict) for d in steps):
        raise NesaError(f"{url} did not answer step frames")
    return {int(d["step"]): d for d in steps}
