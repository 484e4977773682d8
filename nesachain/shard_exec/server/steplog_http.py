"""The step log over HTTP: what verifiers read back from a miner after a session's steps.

    GET /sessions/{sid}/log             the session's step log (digests)
    GET /sessions/{sid}/steps/{n}       msgpack {"op": "frames", "in": frames, "out": frames} while retained
    GET /sessions/{sid}/steps?upto=N    msgpack {"op": "frames", "steps": [...]}: steps 0..N still retained
"""

from __future__ import annotations

from aiohttp import web

from nesachain.protocol.messages import ErrorCode, encode_message
from nesachain.shard_exec.server.config import MinerConfig
from nesachain.shard_exec.server.sessions import SessionTable

__all__ = ["StepLogRoutes"]


class StepLogRoutes:
    """Read-only handlers over a miner's session table."""

    def __init__(self, table: SessionTable, cfg: MinerConfig) -> None:
        self.table, self.cfg = table, cfg

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/sessions/{sid}/log", self._log)
        app.router.add_get("/sessions/{sid}/steps/{n}", self._step_frames)
        app.router.add_get("/sessions/{sid}/steps", self._steps_frames)

    async def _log(self, request: web.Request) -> web.Response:
        records = self.table.log_of(request.match_info["sid"])
        if records is None:
            return web.json_response({"code": ErrorCode.UNKNOWN_SESSION, "message": "no such session"}, status=404)
        return web.json_response({"session": request.match_info["sid"], "steps": [r.public() for r in records]})

    async def _step_frames(self, request: web.Request) -> web.Response:
        n = request.match_info["n"]
        if not (n.isascii() and n.isdigit()):
            return web.json_response({"code": ErrorCode.BAD_REQUEST, "message": "the step must be a number"},
                                     status=400)
        records = self.table.log_of(request.match_info["sid"]) or []
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
        records = self.table.log_of(request.match_info["sid"])
        if records is None:
            return web.json_response({"code": ErrorCode.UNKNOWN_SESSION, "message": "no such session"}, status=404)
        steps = [r.frames() for r in records if r.step <= int(upto) and r.in_frames is not None]
        return web.Response(body=encode_message({"op": "frames", "steps": steps}), content_type="application/msgpack")
