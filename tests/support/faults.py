"""Misbehaving miners, for the tests: subclasses of the miner's server and result agent that fill the hooks
production leaves alone (``MinerServer.run_stage``, ``MinerServer.app``, ``ResultAgent.reveal_msg``). No
production entry point can start one; ``faulty_miner.py`` runs ``nesad miner start`` with them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import torch
from aiohttp import web

from nesachain.miner.results import ResultAgent
from nesachain.shard_exec.server.server import MinerServer
from nesachain.shard_exec.server.sessions import Session
from nesachain.tx.msg import Msg

__all__ = ["DataWithholdingServer", "PerturbingServer", "SilentResultAgent", "hostile_log_server", "perturbing"]


class PerturbingServer(MinerServer):
    """A cheating miner: every float output gets noise of ``rel`` relative to each value."""

    rel = 0.01

    def run_stage(self, sess: Session, tensors: dict[str, torch.Tensor], values: dict[str, Any],
                  position: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        out, out_values = super().run_stage(sess, tensors, values, position)
        noisy = {k: t + self.rel * t.abs() * torch.randn_like(t) if t.is_floating_point() else t
                 for k, t in out.items()}
        return noisy, out_values


def perturbing(rel: float) -> type[PerturbingServer]:
    return type("PerturbingServer", (PerturbingServer,), {"rel": rel})


@web.middleware
async def _no_frames(request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    parts = request.path.strip("/").split("/")
    if len(parts) >= 3 and parts[0] == "sessions" and parts[2] == "steps":
        return web.json_response({"code": "not_retained", "message": "step unknown or expired"}, status=404)
    return await handler(request)


class DataWithholdingServer(MinerServer):
    """A miner that serves its step logs but never the frames a verifier replays."""

    def app(self) -> web.Application:
        app = super().app()
        app.middlewares.append(_no_frames)
        return app


class SilentResultAgent(ResultAgent):
    """A miner that commits its step-log roots and never reveals them."""

    def reveal_msg(self, session_id: int, kept: dict[str, Any]) -> Msg | None:
        return None


def hostile_log_server(kind: str) -> type[MinerServer]:
    """A miner that serves steps honestly but answers a verifier's step-log requests with ``kind`` of garbage:
    ``list`` (a JSON list), ``types`` (a step "x", digests that are not hex), ``huge`` (a 300 MB body), or
    ``slow`` (one byte every 5 s)."""

    @web.middleware
    async def garbage(request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        parts = request.path.strip("/").split("/")
        if len(parts) < 3 or parts[0] != "sessions":
            return await handler(request)
        if kind == "list":
            return web.json_response([1, 2, 3])
        if kind == "types":
            return web.json_response({"session": parts[1], "steps": [{"step": "x", "position": None,
                                                                       "in_digest": "zz", "out_digest": 7}]})
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        if kind == "huge":
            chunk = b" " * (1 << 20)
            for _ in range(300):
                await response.write(chunk)
        else:  # slow
            for _ in range(120):
                await response.write(b" ")
                await asyncio.sleep(5)
        return response

    class HostileLogServer(MinerServer):
        def app(self) -> web.Application:
            app = super().app()
            app.middlewares.append(garbage)
            return app

    return HostileLogServer
