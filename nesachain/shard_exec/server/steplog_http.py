"""The step log over HTTP: what verifiers read back from a miner after a session's steps.

    GET /sessions/{sid}/log             the session's step log (digests)
    GET /sessions/{sid}/steps/{n}       msgpack {"op": "frames", "in": frames, "out": frames} while retained
    GET /sessions/{sid}/steps?upto=N    msgpack {"op": "frames", "steps": [...]}: steps 0..N still retained

A chain session's log and frames go only to a request the registrar admits: one signed by a bonded validator's
operator for a challenge of that session naming this miner (``protocol.auth``, header ``X-Nesa-Auth``). Anyone
else gets 403 with the log's merkle root and step count, which the miner reveals on chain anyway. An off-chain
miner's logs are open to all.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from nesachain.protocol.auth import AUTH_HEADER
from nesachain.protocol.errors import WireError
from nesachain.protocol.messages import ErrorCode, encode_message
from nesachain.protocol.steplog import step_log_root
from nesachain.shard_exec.server.registration import MinerRegistrar
from nesachain.shard_exec.server.sessions import SessionTable, StepRecord

__all__ = ["StepLogRoutes"]


class StepLogRoutes:
    """Read-only handlers over a miner's session table, each read admitted by the registrar first."""

    def __init__(self, table: SessionTable, registrar: MinerRegistrar) -> None:
        self.table, self.registrar = table, registrar

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/sessions/{sid}/log", self._log)
        app.router.add_get("/sessions/{sid}/steps/{n}", self._step_frames)
        app.router.add_get("/sessions/{sid}/steps", self._steps_frames)

    async def _records(self, request: web.Request) -> list[StepRecord] | web.Response:
        """The session's records, or the answer to give instead (404: no such log; 403: not admitted)."""
        sid = request.match_info["sid"]
        records = await asyncio.to_thread(self.table.log_of, sid)  # a chain session's come from disk
        if records is None:
            return web.json_response({"code": ErrorCode.UNKNOWN_SESSION, "message": "no such session"}, status=404)
        try:
            await self.registrar.admit_read(sid, request.headers.get(AUTH_HEADER))
        except WireError as exc:
            root, n = step_log_root([r.public() for r in records])
            return web.json_response({"code": exc.code, "message": exc.message, "root": root.hex(), "n_steps": n},
                                     status=403)
        return records

    async def _log(self, request: web.Request) -> web.Response:
        records = await self._records(request)
        if isinstance(records, web.Response):
            return records
        return web.json_response({"session": request.match_info["sid"], "steps": [r.public() for r in records]})

    async def _step_frames(self, request: web.Request) -> web.Response:
        n = request.match_info["n"]
        if not (n.isascii() and n.isdigit()):
            return web.json_response({"code": ErrorCode.BAD_REQUEST, "message": "the step must be a number"},
                                     status=400)
        records = await self._records(request)
        if isinstance(records, web.Response):
            return records
        rec = next((r for r in records if str(r.step) == n), None)
        if rec is None or rec.in_frames is None:
            return web.json_response({"code": "not_retained", "message": "step unknown or expired"}, status=404)
        return web.Response(body=encode_message({"op": "frames", **rec.frames()}), content_type="application/msgpack")

    async def _steps_frames(self, request: web.Request) -> web.Response:
        """Steps 0..``upto`` in one answer (a verifier replays them all): those still retained, in order."""
        upto = request.query.get("upto", "")
        if not (upto.isascii() and upto.isdigit()):
            return web.json_response({"code": ErrorCode.BAD_REQUEST, "message": "upto must be a step number"},
                                     status=400)
        records = await self._records(request)
        if isinstance(records, web.Response):
            return records
        steps = [r.frames() for r in records if r.step <= int(upto) and r.in_frames is not None]
        return web.Response(body=encode_message({"op": "frames", "steps": steps}), content_type="application/msgpack")
