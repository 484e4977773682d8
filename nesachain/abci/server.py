"""The asyncio ABCI socket server CometBFT connects to (four connections: consensus, mempool,
query, snapshot — all to one address, told apart only by the requests they send).

Each connection's requests are answered strictly in order, one at a time. Consensus, mempool and
snapshot requests run under one app-wide lock; queries run in a worker thread outside it, against the
last commit (``abci.query``), so a public-RPC user's queries never hold up FinalizeBlock or Commit;
they pause while a request under the lock runs, so they do not share its CPU either.
Flush is answered after everything before it has been written and drained. An exception
from the app becomes a ResponseException, which makes CometBFT stop: that is wanted, since the
app can no longer be trusted to agree with the others. (Tx problems never get here: they are
result codes.)
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog
from tendermint.abci import types_pb2 as abci

from nesachain.abci.app import NesaApp
from nesachain.abci.framing import FrameError, FrameReader, encode_frame

__all__ = ["ABCIServer"]

QUERY_PAUSE_S = 1.0  # the longest a query waits for consensus at one pause before it reads on

log = structlog.get_logger("nesachain.abci")


class ABCIServer:
    def __init__(self, app: NesaApp, host: str, port: int) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._lock = asyncio.Lock()
        # one thread: queries wait for each other, never for the lock (threads start on first use)
        self._queries = ThreadPoolExecutor(max_workers=1, thread_name_prefix="abci-query")
        self._idle = threading.Event()  # clear while a request runs under the lock; queries wait for it
        self._idle.set()
        app.query_pause = self._give_way
        self._server: asyncio.base_events.Server | None = None

    def _give_way(self) -> None:
        """A query's pause (on the query thread): wait while consensus or the mempool is being served."""
        self._idle.wait(QUERY_PAUSE_S)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self._host, self._port)
        log.info("abci_listening", host=self._host, port=self._port)

    async def serve_forever(self) -> None:
        await self.start()
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self._queries.shutdown(wait=False, cancel_futures=True)

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        log.info("abci_connection", peer=str(peer))
        frames = FrameReader()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                for frame in frames.feed(data):
                    await self._answer(frame, writer)
        except FrameError as exc:
            log.error("abci_bad_frame", error=str(exc))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            log.info("abci_connection_closed", peer=str(peer))
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, frame: bytes, writer: asyncio.StreamWriter) -> None:
        req = abci.Request()
        resp = abci.Response()
        result: Any
        try:
            req.ParseFromString(frame)
            kind = req.WhichOneof("value")
            if kind == "flush":
                await writer.drain()
                resp.flush.SetInParent()
            elif kind is None:
                resp.exception.error = "empty request"
            elif kind == "query":
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(self._queries, self._app.handle, kind, req.query)
                resp.query.CopyFrom(result)
            else:
                async with self._lock:
                    self._idle.clear()
                    try:
                        result = self._app.handle(kind, getattr(req, kind))
                    finally:
                        self._idle.set()
                getattr(resp, kind).CopyFrom(result)
        except Exception as exc:  # the app is broken; CometBFT must stop rather than diverge
            log.exception("abci_exception", error=repr(exc))
            resp = abci.Response()
            resp.exception.error = f"{type(exc).__name__}: {exc}"
        writer.write(encode_frame(resp.SerializeToString()))
        if resp.WhichOneof("value") == "flush":
            await writer.drain()
