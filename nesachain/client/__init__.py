"""Clients for a running chain."""

from __future__ import annotations

from nesachain.client.rpc import BroadcastResult, CometRPC, QueryResponse

__all__ = ["BroadcastResult", "CometRPC", "QueryResponse"]
