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

Reading them back (a verifier reads another party's server, so nothing in an answer is trusted):

- ``fetch.bounded_get``: one GET with an overall deadline and a byte cap.
- ``parse_log`` and ``parse_frames``: strict schemas. Types, ranges, digests of 64 lowercase hex digits, steps
  numbered 0, 1, 2, … in order, at most ``max_steps`` of them, names and counts bounded, and every step's frames
  hashing to the digests its log records.
- ``fetch_log`` and ``fetch_frames``: the two together. Whatever goes wrong is a ``StepLogFetchError``, never
  another exception (the tree is in ``protocol.errors``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
from collections.abc import Mapping, Sequence
from typing import Any, Final, TypedDict
from urllib.parse import quote

import msgpack

from nesachain.protocol.errors import StepLogInvalid, StepLogNotFound, StepLogRefused, StepLogUnavailable
from nesachain.protocol.fetch import HTTPAnswer, bounded_get
from nesachain.types.merkle import leaf_hash, merkle_root

__all__ = ["DEFAULT_MAX_BYTES", "MAX_NAME", "MAX_POSITION", "MAX_TENSORS", "LogRecord", "StepFrames",
           "bundle_digest", "fetch_frames", "fetch_json", "fetch_log", "http_get", "log_url", "parse_frames",
           "parse_log", "read_log", "step_digest", "step_log_leaves", "step_log_root", "steps_url"]

DEFAULT_MAX_BYTES: Final = 64 * 1024 * 1024  # fetch_json / http_get's cap
MAX_NAME: Final = 128  # characters of a tensor's or a value's name
MAX_TENSORS: Final = 64  # frames (and values) on one side of a step
MAX_POSITION: Final = 1 << 31  # positions and token counts lie below this
MAX_VALUE_DEPTH: Final = 8  # nesting of a step's values (lists and maps)
MAX_VALUE_ITEMS: Final = 4096  # items in all of one side's values together
_HEX64 = re.compile(r"[0-9a-f]{64}")


# ---------------------------------------------------------------------------------------------- digests, roots


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


def step_log_leaves(steps: Sequence[Mapping[str, Any]]) -> list[bytes]:
    ordered = sorted(steps, key=lambda s: int(s["step"]))
    return [leaf_hash(int(s["step"]), bytes.fromhex(s["in_digest"]), bytes.fromhex(s["out_digest"]))
            for s in ordered]


def step_log_root(steps: Sequence[Mapping[str, Any]]) -> tuple[bytes, int]:
    """(merkle root, number of steps) of a step log's records."""
    leaves = step_log_leaves(steps)
    return merkle_root(leaves), len(leaves)


def log_url(base: str, session: str) -> str:
    """Where a miner at ``base`` (``http://host:port``) serves ``session``'s step log."""
    return f"{base.rstrip('/')}/sessions/{quote(session, safe='')}/log"


def steps_url(base: str, session: str, upto: int) -> str:
    """Where a miner serves ``session``'s retained frames of steps 0..``upto``."""
    return f"{base.rstrip('/')}/sessions/{quote(session, safe='')}/steps?upto={int(upto)}"


# ------------------------------------------------------------------------------------------ answers, schemas


def _ok_body(url: str, answer: HTTPAnswer) -> bytearray:
    """The body of a 200; the error its status means otherwise."""
    if answer.status == 200:
        return answer.body
    if answer.status == 404:
        raise StepLogNotFound(url, "HTTP 404: no such session or frames")
    if answer.status == 403:
        root: str | None = None
        n_steps: int | None = None
        message = "HTTP 403"
        try:
            doc = json.loads(answer.body)
        except (ValueError, RecursionError):
            doc = None
        if isinstance(doc, dict):
            if isinstance(doc.get("root"), str) and _HEX64.fullmatch(doc["root"]):
                root = doc["root"]
            if type(doc.get("n_steps")) is int and 0 <= doc["n_steps"] < MAX_POSITION:
                n_steps = doc["n_steps"]
            if isinstance(doc.get("message"), str):
                message += f": {doc['message'][:200]}"
        raise StepLogRefused(url, message, root, n_steps)
    if 500 <= answer.status <= 599:
        raise StepLogUnavailable(url, f"HTTP {answer.status}")
    raise StepLogInvalid(url, f"HTTP {answer.status}")


class LogRecord(TypedDict):
    """One step of a parsed step log (``parse_log``)."""

    step: int
    position: int
    n_tokens: int
    in_digest: str
    out_digest: str


# One step's frames and values (``parse_frames``), their digests checked against the log: ``in`` and ``out`` map a
# tensor's name to its frame (a keyword as a key, hence the functional form).
StepFrames = TypedDict("StepFrames", {"step": int, "position": int, "in": dict[str, bytes],
                                      "in_values": dict[str, Any], "out": dict[str, bytes],
                                      "out_values": dict[str, Any]})


def _uint(url: str, where: str, doc: Mapping[str, Any], key: str, hi: int = MAX_POSITION) -> int:
    v = doc.get(key)
    if type(v) is not int or not 0 <= v < hi:
        raise StepLogInvalid(url, f"{where}: {key!r} must be an integer in [0, {hi}), got {_show(v)}")
    return v


def _digest(url: str, where: str, doc: Mapping[str, Any], key: str) -> str:
    v = doc.get(key)
    if not isinstance(v, str) or not _HEX64.fullmatch(v):
        raise StepLogInvalid(url, f"{where}: {key!r} must be 64 lowercase hex digits, got {_show(v)}")
    return v


def _show(v: object) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_log(doc: object, max_steps: int, url: str = "") -> list[LogRecord]:
    """A step log's records from its JSON document, checked: an object whose ``steps`` is a list of at most
    ``max_steps`` records, record i being step i, with integer position and n_tokens in [0, 2**31), 64-hex digests
    and, where present, a numeric ``at`` and a boolean ``tensors_retained``. ``StepLogInvalid`` otherwise."""
    if not isinstance(doc, dict):
        raise StepLogInvalid(url, f"a step log is a JSON object, got {type(doc).__name__}")
    steps = doc.get("steps")
    if not isinstance(steps, list):
        raise StepLogInvalid(url, f"a step log's 'steps' is a list, got {type(steps).__name__}")
    if "session" in doc and not (isinstance(doc["session"], str) and len(doc["session"]) <= 256):
        raise StepLogInvalid(url, "a step log's 'session' is a name")
    if len(steps) > max_steps:
        raise StepLogInvalid(url, f"{len(steps)} steps, more than the {max_steps} allowed")
    out: list[LogRecord] = []
    for i, rec in enumerate(steps):
        where = f"record {i}"
        if not isinstance(rec, dict):
            raise StepLogInvalid(url, f"{where} is not an object")
        step = _uint(url, where, rec, "step")
        if step != i:
            raise StepLogInvalid(url, f"{where} is step {step}: steps run 0, 1, 2, ... in order")
        at = rec.get("at", 0.0)
        if type(at) not in (int, float) or not math.isfinite(at):
            raise StepLogInvalid(url, f"{where}: 'at' must be a finite number")
        if type(rec.get("tensors_retained", False)) is not bool:
            raise StepLogInvalid(url, f"{where}: 'tensors_retained' must be a boolean")
        out.append(LogRecord(step=step, position=_uint(url, where, rec, "position"),
                             n_tokens=_uint(url, where, rec, "n_tokens"),
                             in_digest=_digest(url, where, rec, "in_digest"),
                             out_digest=_digest(url, where, rec, "out_digest")))
    return out


def read_log(body: bytes | bytearray, max_steps: int, url: str = "") -> list[LogRecord]:
    """``parse_log`` of a JSON body (``StepLogInvalid`` if it is not JSON)."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):  # not UTF-8, not JSON, a number past int's digit limit, too deep
        raise StepLogInvalid(url, "the step log is not JSON") from None
    return parse_log(doc, max_steps, url)


def _frames(url: str, where: str, doc: Mapping[str, Any], key: str) -> dict[str, bytes]:
    v = doc.get(key)
    if not isinstance(v, dict) or len(v) > MAX_TENSORS:
        raise StepLogInvalid(url, f"{where}: {key!r} must map at most {MAX_TENSORS} names to frames")
    for name, frame in v.items():
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME or not isinstance(frame, bytes):
            raise StepLogInvalid(url, f"{where}: {key!r} must map names (1..{MAX_NAME} characters) to bytes")
    return v


def _values(url: str, where: str, doc: Mapping[str, Any], key: str) -> dict[str, Any]:
    v = doc.get(key, {})
    if not isinstance(v, dict) or len(v) > MAX_TENSORS:
        raise StepLogInvalid(url, f"{where}: {key!r} must map at most {MAX_TENSORS} names to values")
    items = 0

    def check(x: object, depth: int) -> None:
        nonlocal items
        items += 1
        if items > MAX_VALUE_ITEMS or depth > MAX_VALUE_DEPTH:
            raise StepLogInvalid(url, f"{where}: {key!r} is nested too deep or holds too many items")
        if x is None or type(x) in (bool, int, float, str, bytes):
            return
        if isinstance(x, list):
            for y in x:
                check(y, depth + 1)
        elif isinstance(x, dict):
            for k, y in x.items():
                if not isinstance(k, str):
                    raise StepLogInvalid(url, f"{where}: {key!r} has a map with a key that is not a string")
                check(y, depth + 1)
        else:
            raise StepLogInvalid(url, f"{where}: {key!r} holds a {type(x).__name__}")

    for name, val in v.items():
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
            raise StepLogInvalid(url, f"{where}: {key!r} must be keyed by names of 1..{MAX_NAME} characters")
        check(val, 1)
    return v


def parse_frames(body: bytes | bytearray, records: Sequence[LogRecord], url: str = "") -> list[StepFrames]:
    """The frames of steps 0..len(records)-1 from a ``steps?upto=`` answer, checked against their log
    ``records``: a msgpack map ``{"op": "frames", "steps": [...]}`` with exactly one entry per record, entry i
    being step i at the record's position, frames and values of bounded names and counts, and the digests of
    its inputs and outputs (``step_digest``) those the record holds. ``StepLogInvalid`` otherwise (a step the
    miner no longer holds is one that is missing: it must keep them until the session settles)."""
    try:
        doc = msgpack.unpackb(body, raw=False, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException):  # bad bytes, bad UTF-8, extra data, too deep, ...
        raise StepLogInvalid(url, "the frames are not msgpack") from None
    if not isinstance(doc, dict) or doc.get("op") != "frames" or not isinstance(doc.get("steps"), list):
        raise StepLogInvalid(url, "the frames are not a map {op: frames, steps: [...]}")
    steps = doc["steps"]
    if len(steps) != len(records):
        missing = f"step {len(steps)} was not served" if len(steps) < len(records) else "more steps than asked for"
        raise StepLogInvalid(url, f"{len(steps)} steps for the {len(records)} asked for: {missing}")
    out: list[StepFrames] = []
    for i, (d, rec) in enumerate(zip(steps, records, strict=True)):
        where = f"frames of step {i}"
        if not isinstance(d, dict):
            raise StepLogInvalid(url, f"{where}: not a map")
        if _uint(url, where, d, "step") != rec["step"]:
            raise StepLogInvalid(url, f"{where}: entry {i} is step {d['step']}: steps run 0, 1, 2, ... in order")
        if _uint(url, where, d, "position") != rec["position"]:
            raise StepLogInvalid(url, f"{where}: position {d['position']}, the log says {rec['position']}")
        frames: StepFrames = {"step": rec["step"], "position": rec["position"], "in": _frames(url, where, d, "in"),
                              "in_values": _values(url, where, d, "in_values"), "out": _frames(url, where, d, "out"),
                              "out_values": _values(url, where, d, "out_values")}
        try:
            ins = step_digest(frames["in"], frames["in_values"])
            outs = step_digest(frames["out"], frames["out_values"])
        except (ValueError, TypeError, OverflowError):  # a value msgpack will not pack again (a huge int)
            raise StepLogInvalid(url, f"{where}: values that do not pack") from None
        if ins != rec["in_digest"] or outs != rec["out_digest"]:
            raise StepLogInvalid(url, f"{where}: they do not hash to the logged digests")
        out.append(frames)
    return out


# -------------------------------------------------------------------------------------------------- fetching


def fetch_log(url: str, *, max_steps: int, deadline_s: float, max_bytes: int,
              headers: Mapping[str, str] | None = None) -> list[LogRecord]:
    """A step log's checked records (``bounded_get`` then ``read_log``); a ``StepLogFetchError`` otherwise."""
    answer = bounded_get(url, deadline_s=deadline_s, max_bytes=max_bytes, headers=headers)
    return read_log(_ok_body(url, answer), max_steps, url)


def fetch_frames(url: str, records: Sequence[LogRecord], *, deadline_s: float, max_bytes: int,
                 headers: Mapping[str, str] | None = None) -> list[StepFrames]:
    """The checked frames of the steps of ``records`` (``bounded_get`` of ``steps_url`` up to the last record,
    then ``parse_frames``); a ``StepLogFetchError`` otherwise."""
    answer = bounded_get(url, deadline_s=deadline_s, max_bytes=max_bytes, headers=headers)
    return parse_frames(_ok_body(url, answer), records, url)


def http_get(url: str, timeout: float = 10.0, max_bytes: int = DEFAULT_MAX_BYTES) -> bytearray | None:
    """The body at ``url`` (``bounded_get``: ``timeout`` for the whole request); None for 404 (no such item);
    a ``StepLogFetchError`` for anything else."""
    try:
        return _ok_body(url, bounded_get(url, deadline_s=timeout, max_bytes=max_bytes))
    except StepLogNotFound:
        return None


def fetch_json(url: str, timeout: float = 10.0, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """The JSON at ``url`` (``http_get``), None for 404; a ``StepLogFetchError`` for anything else."""
    body = http_get(url, timeout, max_bytes)
    if body is None:
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise StepLogInvalid(url, "did not answer JSON") from None
