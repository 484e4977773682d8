"""A corpus of hostile step-log answers, built from an honest log and its frames: what a miner that wants to
crash, stall or fool a verifier could serve. Used on the schemas alone (``test_steplog``) and served by a real
HTTP server to a real verifier (``tests/verifier/test_hostile_miners``).

    log_mutations(doc)         JSON documents that are not a valid log of ``doc``'s steps
    frames_mutations(frames)   msgpack bodies that are not valid frames of those steps
    http_answers(body)         answers at the HTTP level, each with whose fault it is
"""

from __future__ import annotations

import json
from typing import Any

import msgpack

from tests.protocol.steplog_server import Answer

__all__ = ["BAD_DIGESTS", "BAD_UINTS", "HTTP_KINDS", "frames_body", "frames_mutations", "http_answers",
           "log_mutations"]

BAD_DIGESTS: list[Any] = ["ab" * 31, "ab" * 33, "AB" * 32, "zz" * 32, " " + "a" * 63, "a" * 63 + "\n", "", 7, None,
                          ["a" * 64]]
BAD_UINTS: list[Any] = ["x", "1", 1.5, True, None, -1, 2**31, 2**63, [], {}]
HTTP_KINDS = ("invalid", "unavailable")  # the miner served bad data / did not answer (which a later pass retries)


def frames_body(frames: list[dict[str, Any]], **top: Any) -> bytes:
    return bytes(msgpack.packb({"op": "frames", "steps": frames, **top}, use_bin_type=True))


def log_mutations(doc: dict[str, Any]) -> list[tuple[str, Any]]:
    """Documents that are not a valid log of ``doc``'s steps (≥ 2 of them): wrong types, missing fields, bad
    digests and numbers in the first and the last record, steps out of order, too many."""
    s = doc["steps"]
    last = len(s) - 1

    def replaced(j: int, rec: Any) -> dict[str, Any]:
        return {"steps": [*s[:j], rec, *s[j + 1:]]}

    cases: list[tuple[str, Any]] = [
        ("log a list", s), ("log a string", "steps"), ("log null", None), ("log a number", 4),
        ("no steps", {"session": "s"}), ("steps a map", {"steps": {"0": s[0]}}), ("steps a string", {"steps": "0123"}),
        ("session a number", {**doc, "session": 7}),
        ("a step more", {"steps": [*s, {**s[last], "step": last + 1}]}),
        ("steps out of order", {"steps": [s[1], s[0], *s[2:]]}), ("a step twice", {"steps": [s[0], s[0], *s[2:]]}),
        ("steps from 1", {"steps": [{**r, "step": r["step"] + 1} for r in s]}),
        ("a gap", {"steps": [s[0], *s[2:]]})]
    for j in (0, last):
        for bad in (None, [], "step", 0):
            cases.append((f"record {j} is {bad!r}", replaced(j, bad)))
        for key in ("step", "position", "n_tokens", "in_digest", "out_digest"):
            cases.append((f"record {j} without {key}", replaced(j, {k: v for k, v in s[j].items() if k != key})))
            for bad in (BAD_UINTS if key in ("step", "position", "n_tokens") else BAD_DIGESTS):
                cases.append((f"record {j} {key}={bad!r}", replaced(j, {**s[j], key: bad})))
        for key, bad in (("at", "noon"), ("at", float("nan")), ("at", True), ("tensors_retained", "yes")):
            cases.append((f"record {j} {key}={bad!r}", replaced(j, {**s[j], key: bad})))
    return cases


def frames_mutations(frames: list[dict[str, Any]], more: dict[str, Any]) -> list[tuple[str, bytes]]:
    """Bodies that are not valid frames of the steps of ``frames`` (≥ 2): broken msgpack, wrong shapes of the
    document, steps missing, out of order or at other positions, frames and values of the wrong types or sizes,
    and frames or values that do not hash to the log's digests. ``more``: the frames of the next step."""
    f = frames
    last = len(f) - 1

    def step(j: int, **change: Any) -> bytes:
        return frames_body([*f[:j], {**f[j], **change}, *f[j + 1:]])

    cases = [("not msgpack", b"\xc1\xc1"), ("truncated msgpack", frames_body(f)[:-3]),
             ("extra bytes", frames_body(f) + b"\x00"), ("frames a list", bytes(msgpack.packb(f))),
             ("other op", frames_body(f, op="log")), ("json", json.dumps({"op": "frames", "steps": []}).encode()),
             ("steps a map", bytes(msgpack.packb({"op": "frames", "steps": {"0": "x"}}))),
             ("last step missing (not retained)", frames_body(f[:-1])), ("no steps", frames_body([])),
             ("a step more", frames_body([*f, more])), ("out of order", frames_body([f[1], f[0], *f[2:]])),
             ("entry not a map", frames_body([f[0], [1], *f[2:]])), ("deep", b"\x91" * 5000 + b"\x01"),
             ("bad utf-8 key", b"\x81\xa2\xff\xfe\x01")]
    for j in (0, last):
        other = f[1 - j if j == 0 else j - 1]
        flipped = {n: bytes([b[0] ^ 1]) + b[1:] for n, b in f[j]["in"].items()}
        cases += [(f"{j} step wrong", step(j, step=j + 1)), (f"{j} position wrong", step(j, position=99)),
                  (f"{j} step 'x'", step(j, step="x")), (f"{j} in a list", step(j, **{"in": [b"x"]})),
                  (f"{j} frame a str", step(j, **{"in": {"hidden": "x"}})),
                  (f"{j} name too long", step(j, **{"out": {"h" * 129: b"x"}})),
                  (f"{j} empty name", step(j, **{"out": {"": b"x"}})),
                  (f"{j} too many frames", step(j, **{"out": {f"t{i}": b"x" for i in range(65)}})),
                  (f"{j} values a list", step(j, in_values=[1])),
                  (f"{j} a flipped byte", step(j, **{"in": flipped})),
                  (f"{j} outputs of another step", step(j, **{"out": other["out"]})),
                  (f"{j} a value added", step(j, out_values={"n": j + 1})),
                  (f"{j} a value an ext", step(j, out_values={"n": msgpack.ExtType(5, b"x")})),
                  (f"{j} a value too deep", step(j, out_values={"n": [[[[[[[[[[1]]]]]]]]]]})),
                  (f"{j} a value too long", step(j, out_values={"n": list(range(5000))}))]
    return cases


def http_answers(body: bytes, cap: int) -> list[tuple[str, Answer, str]]:
    """Answers around an honest ``body`` (a reader's byte cap ``cap``), each with its kind: "invalid" (it
    answered with bad data, or too slowly once it started) or "unavailable" (no answer, a 5xx or a 403)."""
    half = len(body) // 2
    return [
        ("404", Answer(status=404, body=b'{"code": "unknown_session"}'), "invalid"),
        ("400", Answer(status=400, body=b"{}"), "invalid"), ("401", Answer(status=401), "invalid"),
        ("410", Answer(status=410), "invalid"), ("418", Answer(status=418, body=body), "invalid"),
        ("301", Answer(status=301, extra_headers=[("Location", "http://127.0.0.1:1/")]), "invalid"),
        ("500", Answer(status=500, body=b"boom"), "unavailable"), ("502", Answer(status=502), "unavailable"),
        ("503", Answer(status=503, body=b"busy"), "unavailable"),
        ("403 json", Answer(status=403, body=b'{"code": "forbidden", "message": "no", "root": "00", "n_steps": 1}'),
         "unavailable"),
        ("403 garbage", Answer(status=403, body=b"\xff" * 1000), "unavailable"),
        ("403 huge", Answer(status=403, body=b"x" * 65536, length=None, endless=True), "unavailable"),
        ("silent", Answer(silent=True), "unavailable"),
        ("closes at once", Answer(head=b""), "unavailable"),
        ("head dripped", Answer(body=body, head_drip_s=0.05), "unavailable"),
        ("body dripped", Answer(body=body, drip_s=0.05), "invalid"),
        ("hangs mid-body", Answer(body=body, hang_after=half), "invalid"),
        ("cut short", Answer(body=body, close_after=half), "invalid"),
        ("length larger", Answer(body=body, length=str(len(body) + 10), close_after=len(body)), "invalid"),
        ("length larger, hangs", Answer(body=body, length=str(len(body) + 10), hang_after=len(body)), "invalid"),
        ("length smaller", Answer(body=body, length=str(half)), "invalid"),
        ("length abc", Answer(body=body, length="abc"), "invalid"),
        ("length negative", Answer(body=body, length="-5"), "invalid"),
        ("two lengths", Answer(body=body, extra_headers=[("Content-Length", str(len(body) + 1))]), "invalid"),
        ("length a terabyte", Answer(body=b"x" * 65536, length=str(2**40), endless=True), "invalid"),
        ("endless body", Answer(body=b"x" * 65536, length=None, endless=True), "invalid"),
        ("endless chunks", Answer(body=b"x" * 65536, chunked=True, endless=True), "invalid"),
        ("over the cap", Answer(body=b" " * (cap + 1)), "invalid"),
        ("bad status line", Answer(head=b"HTTP/1.1 OK\r\n\r\n"), "invalid"),
        ("not http", Answer(head=b"SSH-2.0-OpenSSH\r\n\r\n"), "invalid"),
        ("huge header", Answer(head=b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70_000 + b"\r\n\r\n"), "invalid"),
        ("empty 200", Answer(body=b""), "invalid"),
    ]
