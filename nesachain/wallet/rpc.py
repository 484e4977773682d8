"""A small typed client for CometBFT's JSON-RPC (HTTP), used by the CLI, tests and benches.

CometBFT returns 64-bit integers as strings and txs/values as base64; this client hands back
Python ints and bytes where it matters.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from nesachain.errors import RPCError

__all__ = ["BroadcastResult", "CometRPC", "QueryResponse"]


@dataclass(frozen=True)
class QueryResponse:
    code: int
    codespace: str
    log: str
    value: bytes
    height: int

    def json(self) -> Any:
        if self.code != 0:
            raise RPCError(f"query failed ({self.codespace}/{self.code}): {self.log}")
        return json.loads(self.value)


@dataclass(frozen=True)
class BroadcastResult:
    hash: str
    code: int
    codespace: str
    log: str
    data: bytes = b""  # CheckTx's data: for a refusal, its structured detail (e.g. the expected sequence)


class CometRPC:
    def __init__(self, url: str = "http://127.0.0.1:26657", timeout: float = 10.0) -> None:
        if "://" not in url:
            url = "http://" + url
        self.url = url.rstrip("/").replace("tcp://", "http://")
        self.timeout = timeout

    def call(self, method: str, **params: Any) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
        req = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                payload = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            try:
                payload = json.loads(exc.read())
            except ValueError:
                raise RPCError(f"{self.url}: HTTP {exc.code} for {method}") from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise RPCError(f"cannot reach node at {self.url}: {getattr(exc, 'reason', exc)}") from None
        except ValueError:
            raise RPCError(f"{self.url} did not answer JSON for {method}") from None
        if payload.get("error"):
            err = payload["error"]
            raise RPCError(f"{method}: {err.get('message', '')} {err.get('data', '')}".strip())
        return payload["result"]

    # node
    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("status")
        return result

    def height(self) -> int:
        return int(self.status()["sync_info"]["latest_block_height"])

    def chain_id(self) -> str:
        return str(self.status()["node_info"]["network"])

    def app_hash_at(self, height: int) -> str:
        """The app hash after executing block ``height`` (carried in the header of height+1)."""
        header = self.call("block", height=str(height + 1))["block"]["header"]
        return str(header["app_hash"])

    def validators(self, height: int | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"per_page": "100"}
        if height is not None:
            params["height"] = str(height)
        vals: list[dict[str, Any]] = self.call("validators", **params)["validators"]
        return vals

    # app
    def abci_query(self, path: str, data: dict[str, Any] | None = None, height: int = 0) -> QueryResponse:
        raw = json.dumps(data or {}, sort_keys=True).encode()
        res = self.call("abci_query", path=path, data=raw.hex(), height=str(height))["response"]
        value = base64.b64decode(res.get("value") or "")
        return QueryResponse(
            int(res.get("code", 0)), res.get("codespace", ""), res.get("log", ""), value, int(res.get("height", 0))
        )

    # txs
    def broadcast_tx_sync(self, tx: bytes) -> BroadcastResult:
        res = self.call("broadcast_tx_sync", tx=base64.b64encode(tx).decode())
        try:
            data = bytes.fromhex(res.get("data") or "")  # HexBytes here, where the tx results' data is base64
        except (TypeError, ValueError):
            raise RPCError(f"{self.url}: broadcast_tx_sync answered data that is not hex") from None
        return BroadcastResult(str(res["hash"]), int(res["code"]), res.get("codespace", ""), res.get("log", ""), data)

    def tx(self, tx_hash: str) -> dict[str, Any] | None:
        try:
            raw = bytes.fromhex(tx_hash.removeprefix("0x"))
        except ValueError:
            raise RPCError(f"tx hash {tx_hash!r} is not hex") from None
        try:
            result: dict[str, Any] = self.call("tx", hash=base64.b64encode(raw).decode())
        except RPCError as exc:
            if "not found" in str(exc):
                return None
            raise
        return result

    def tx_search(self, query: str, per_page: int = 100) -> list[dict[str, Any]]:
        res = self.call("tx_search", query=query, per_page=str(per_page), order_by="asc")
        txs: list[dict[str, Any]] = res["txs"]
        return txs

    def wait_height(self, height: int, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        last = -1
        while time.monotonic() < deadline:
            try:
                last = self.height()
                if last >= height:
                    return last
            except RPCError:
                pass
            time.sleep(0.2)
        raise RPCError(f"{self.url} did not reach height {height} within {timeout:.0f}s (at {last})")
