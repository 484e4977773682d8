"""What agents fetch from miners over HTTP: step logs (JSON) and retained step frames (msgpack)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import msgpack

from nesachain.errors import NesaError

__all__ = ["fetch_json", "fetch_steps", "http_get"]


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
    """The retained frames of several steps (``…/steps?upto=k``), by step number."""
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
