"""What agents fetch from miners over HTTP: step logs (JSON) and retained step frames (msgpack)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import msgpack

from nesachain.errors import NesaError

__all__ = ["fetch_json", "fetch_step", "http_get"]


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


def fetch_step(url: str) -> dict[str, Any] | None:
    """A step's retained frames: {"in", "in_values", "out", "out_values", ...}."""
    body = http_get(url)
    if body is None:
        return None
    try:
        data = msgpack.unpackb(body, raw=False)
    except Exception:  # msgpack raises several kinds on bad input
        raise NesaError(f"{url} did not answer msgpack") from None
    if not isinstance(data, dict) or not isinstance(data.get("in"), dict) or not isinstance(data.get("out"), dict):
        raise NesaError(f"{url} did not answer step frames")
    return data
