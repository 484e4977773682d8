"""The WebSocket session protocol of a miner (``GET /ws``; messages in ``nesachain.protocol.messages``).

Who may do what:
- ``open``: whoever the registrar admits. On chain, only the session's client, by its signature
  (``protocol.auth``), for a session the chain shows open and naming this miner; off chain, anyone. A name that
  has held a session here is never opened again (``name_used``). One client (an account, or off chain a peer
  address) holds at most ``max_sessions_per_client`` sessions at once.
- ``step`` and ``close``: the connection that opened the session. A miner pushing the previous hop's output
  steps it too, showing the token the session's ``opened`` answer gave the client (the client hands it on in its
  push list); nothing else does (``forbidden``).
- pushes go to the next hop only where the chain names it (the route's next miner, or a miner serving those
  blocks that may stand in), off chain only to the miner's ``push_allow`` list.
- a peer address keeps at most ``max_connections_per_peer`` sockets open; a socket that holds no session and
  sends nothing for ``idle_connection_timeout`` is closed.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections import Counter
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import structlog
import torch
from aiohttp import WSCloseCode, web

from nesachain.protocol.errors import WireError
from nesachain.protocol.messages import ErrorCode, decode_message, encode_message, error_message
from nesachain.protocol.steplog import step_digest
from nesachain.shard_exec.errors import ShardExecError
from nesachain.shard_exec.server.sessions import Session, StepRecord
from nesachain.shard_exec.server.stepping import decode_open, decode_step

if TYPE_CHECKING:
    from nesachain.shard_exec.server.server import MinerServer

__all__ = ["SessionSockets"]

log = structlog.get_logger("nesachain.shard_exec.server")
SLACK_BYTES = 64 << 10  # a step message's fields and frame headers beyond its tensors' bytes


class SessionSockets:
    """The ``/ws`` handler of one server: its sockets, their sessions, the checks on every message."""

    def __init__(self, server: MinerServer) -> None:
        self.server = server
        self.sockets: set[web.WebSocketResponse] = set()  # clients' and pushing peers'
        self.per_peer: Counter[str] = Counter()

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        cfg = self.server.cfg
        peer = request.remote or "?"
        ws = web.WebSocketResponse(max_msg_size=cfg.max_message_bytes)
        await ws.prepare(request)
        if self.per_peer[peer] >= cfg.max_connections_per_peer:
            await ws.send_bytes(error_message(ErrorCode.BUSY, f"{peer} has {self.per_peer[peer]} connections open "
                                                              "here, the most one peer may"))
            await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too many connections")
            return ws
        owned: set[str] = set()
        self.sockets.add(ws)
        self.per_peer[peer] += 1
        try:
            while not ws.closed:
                try:
                    msg = await ws.receive(timeout=cfg.idle_connection_timeout)
                except TimeoutError:
                    if any(sid in self.server.table.open for sid in owned):
                        continue
                    await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"idle")
                    break
                if msg.type == aiohttp.WSMsgType.BINARY:
                    await self.dispatch(ws, msg.data, owned, peer)
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    await ws.send_bytes(error_message(ErrorCode.MALFORMED, "send binary msgpack messages"))
                elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED,
                                  aiohttp.WSMsgType.ERROR):
                    break
        finally:
            self.sockets.discard(ws)
            self.per_peer[peer] -= 1
            if self.per_peer[peer] <= 0:
                del self.per_peer[peer]
            for sid in owned:
                sess = self.server.table.open.get(sid)
                if sess is not None and sess.owner is ws:
                    self.server.table.remove(sid)
        return ws

    async def close_all(self, message: bytes) -> None:
        await asyncio.gather(*(ws.close(code=WSCloseCode.GOING_AWAY, message=message) for ws in list(self.sockets)),
                             return_exceptions=True)

    async def dispatch(self, ws: web.WebSocketResponse, data: bytes, owned: set[str], peer: str) -> None:
        sid: Any = None
        step: Any = None
        try:
            req = decode_message(data, self.server.cfg.max_message_bytes)
            sid, step = req.get("session"), req.get("step")
            op = req["op"]
            if op == "open":
                await ws.send_bytes(await self._open(ws, req, owned, peer))
            elif op == "step":
                await self._step(ws, req, len(data))
            elif op == "close":
                sess = self._session_of(ws, sid)
                self.server.table.remove(sess.sid)
                owned.discard(sess.sid)
                await ws.send_bytes(encode_message({"op": "closed", "session": sess.sid}))
            elif op == "ping":
                await ws.send_bytes(encode_message({"op": "pong", "queue_length": self.server.queue_length}))
            else:
                raise WireError(ErrorCode.BAD_REQUEST, f"unknown op {op!r}")
        except WireError as exc:
            target = ws if exc.code == ErrorCode.FORBIDDEN else self._error_target(ws, sid)
            await target.send_bytes(error_message(exc.code, exc.message, _s(sid), _i(step)))
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            pass
        except Exception as exc:  # keep serving other sessions; report without a traceback
            log.exception("step_internal_error", session=_s(sid))
            try:
                await ws.send_bytes(error_message(ErrorCode.INTERNAL, type(exc).__name__, _s(sid), _i(step)))
            except (ConnectionError, aiohttp.ClientError, RuntimeError):
                pass

    def _error_target(self, ws: web.WebSocketResponse, sid: Any) -> web.WebSocketResponse:
        """Errors about a pushed step go to the session's owner (the client), not to the pushing peer."""
        sess = self.server.table.open.get(sid) if isinstance(sid, str) else None
        if sess is not None and sess.owner is not ws and not sess.owner.closed:
            return sess.owner  # type: ignore[no-any-return]
        return ws

    def _session_of(self, ws: web.WebSocketResponse, sid: Any, token: Any = None) -> Session:
        """The open session ``sid``, if this connection may act on it: it opened it, or it shows its token."""
        sess = self.server.table.get(sid)
        if sess.owner is ws:
            return sess
        if isinstance(token, str) and hmac.compare_digest(token.encode(), sess.token.encode()):
            return sess
        raise WireError(ErrorCode.FORBIDDEN, f"session {sess.sid!r} belongs to another connection")

    async def _open(self, ws: web.WebSocketResponse, req: dict[str, Any], owned: set[str], peer: str) -> bytes:
        server, cfg = self.server, self.server.cfg
        sid, max_length, batch, scheme = decode_open(req, cfg.max_length, cfg.start, cfg.end,
                                                     server.hashes[cfg.start : cfg.end])
        if sid in server.table.open:
            raise WireError(ErrorCode.SESSION_EXISTS, f"session {sid} is already open")
        admission = await server.registrar.admit_open(sid, req.get("auth"), peer)
        reserved = server.runner.session_bytes(batch, max_length)
        now = server.table.clock()
        sess = Session(sid, ws, batch, max_length, scheme, reserved, None, created=now, last_used=now,
                       token=secrets.token_hex(16), client=admission.client, chain=admission.chain)
        sess.max_step_bytes = batch * self._tokens_cap(max_length) * server.bytes_per_token * 5 // 4 + SLACK_BYTES
        for victim in server.table.add(sess):
            log.info("session_evicted", session=victim)
        sess.state = server.runner.new_state(batch, max_length)
        owned.add(sid)
        return encode_message({"op": "opened", "session": sid, "reserved_bytes": reserved, "token": sess.token})

    def _tokens_cap(self, max_length: int) -> int:
        """The most tokens one step of a session may carry: its max length for a stage that keeps state, the
        miner's for a stateless encoder (its sessions say 1), one sample for a graph stage."""
        kind = self.server.runner.kind
        return max_length if kind == "decoder" else self.server.cfg.max_length if kind == "encoder" else 1

    def _check_shapes(self, sess: Session, tensors: dict[str, torch.Tensor]) -> None:
        """A step's batch is the session's, and an encoder's sequence at most the miner's max length."""
        for name, t in tensors.items():
            if t.ndim >= 1 and t.shape[0] > sess.batch:
                raise WireError(ErrorCode.BAD_SHAPE, f"{name} has batch {t.shape[0]}, the session {sess.batch}")
            if self.server.runner.kind == "encoder" and t.ndim >= 2 and t.shape[1] > self.server.cfg.max_length:
                raise WireError(ErrorCode.PAST_MAX_LENGTH, f"{name} has {t.shape[1]} tokens, past this miner's "
                                                           f"max length {self.server.cfg.max_length}")

    async def _step(self, ws: web.WebSocketResponse, req: dict[str, Any], size: int) -> None:
        server = self.server
        sess = self._session_of(ws, req.get("session"), req.get("token"))
        if size > sess.max_step_bytes:
            raise WireError(ErrorCode.TOO_LARGE, f"a step of {size} bytes; this session's steps take at most "
                                                 f"{sess.max_step_bytes}")
        step, position, frames, values, tensors = decode_step(req, server.cfg.max_tensor_bytes)
        if step == sess.next_step - 1 and sess.log and await self._resend(sess, ws, step, frames, values):
            return
        if step != sess.next_step:
            raise WireError(ErrorCode.OUT_OF_ORDER, f"step {step} but session expects {sess.next_step}")
        if sess.busy:
            raise WireError(ErrorCode.OUT_OF_ORDER, f"step {sess.next_step} is still running")
        self._check_shapes(sess, tensors)
        n_tokens = server.runner.n_tokens(tensors)
        if sess.tokens + n_tokens > sess.max_length:
            raise WireError(ErrorCode.PAST_MAX_LENGTH,
                            f"{sess.tokens} + {n_tokens} tokens exceed the session's max_length {sess.max_length}")
        out_frames, out_v, compute_ms = await server.compute_step(sess, tensors, values, position, n_tokens)
        sess.next_step += 1
        sess.tokens += n_tokens
        sess.last_used = server.table.clock()
        server.steps_served += 1
        server.table.record(sess, StepRecord(step, position, n_tokens, step_digest(frames, values),
                                             step_digest(out_frames, out_v), server.table.wall_clock(), frames,
                                             out_frames, out_v, values))
        pushed = await self._push(sess, req, step, position, out_frames, out_v)
        reply = {"op": "result", "session": sess.sid, "step": step, "tensors": out_frames, "values": out_v,
                 "pushed": pushed, "compute_ms": compute_ms}
        target = sess.owner if not sess.owner.closed else ws
        await target.send_bytes(encode_message(reply))
        server.step_finished()

    async def _resend(self, sess: Session, ws: web.WebSocketResponse, step: int, frames: dict[str, bytes],
                      values: dict[str, Any]) -> bool:
        """A repeated last step with identical input (a retry after a failover) gets the same answer."""
        rec = sess.log[-1]
        if rec.step != step or rec.out_frames is None or rec.in_digest != step_digest(frames, values):
            return False
        reply = {"op": "result", "session": sess.sid, "step": step, "tensors": rec.out_frames,
                 "values": rec.out_values or {}, "pushed": False, "duplicate": True, "compute_ms": 0.0}
        await (sess.owner if not sess.owner.closed else ws).send_bytes(encode_message(reply))
        return True

    async def _push_allowed(self, sess: Session, url: str) -> bool:
        if url in sess.push_to:
            return True
        ruling = await self.server.registrar.may_push(sess.sid, url)
        if ruling is None:  # off chain: the miner's own allow-list
            parts = urlsplit(url)
            if parts.scheme not in ("ws", "wss") or parts.hostname is None:
                return False
            ruling = (parts.hostname in self.server.cfg.push_allow or parts.netloc in self.server.cfg.push_allow
                      or f"{parts.hostname}:{parts.port}" in self.server.cfg.push_allow)
        if ruling:
            sess.push_to.add(url)
        return ruling

    async def _push(self, sess: Session, req: dict[str, Any], step: int, position: int, frames: dict[str, bytes],
                    values: dict[str, Any]) -> bool:
        push = req.get("push") or []
        if req.get("replay") or not isinstance(push, list) or not push or not isinstance(push[0], dict):
            return False
        nxt = push[0]
        url = nxt.get("url")
        if not isinstance(url, str) or len(url) > 512 or not await self._push_allowed(sess, url):
            log.warning("push_refused", session=sess.sid, peer=str(url)[:80])
            return False
        msg = {"op": "step", "session": nxt.get("session"), "token": nxt.get("token"), "step": step,
               "position": position, "tensors": frames, "values": values, "push": push[1:16], "pushed": True}
        try:
            await self.server.peers.send(url, encode_message(msg))
        except ShardExecError as exc:
            log.warning("push_failed", peer=url, error=str(exc))
            return False
        return True


def _s(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _i(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None
