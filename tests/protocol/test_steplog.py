"""Step logs: the canonical digest of a step's frames (``nesachain.protocol.steplog``)."""

from __future__ import annotations

from nesachain.protocol.steplog import bundle_digest


def test_steplog_bundle_digest_is_canonical() -> None:
    a = {"x": b"1", "y": b"22"}
    assert bundle_digest(a) == bundle_digest(dict(reversed(list(a.items()))))
    assert bundle_digest(a) != bundle_digest({"x": b"12", "y": b"2"})
