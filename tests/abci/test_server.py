"""The ABCI socket server: framing cut at every byte boundary, many requests in one write, order."""

from __future__ import annotations

import asyncio
import random

import pytest
from tendermint.abci import types_pb2 as abci

from nesachain.abci.app import NesaApp
from nesachain.abci.framing import FrameError, FrameReader, encode_frame, encode_uvarint
from nesachain.abci.server import ABCIServer
from tests.abci.conftest import addr, key, new_chain, send_tx


def _requests() -> list[abci.Request]:
    reqs = []
    for i in range(6):
        reqs.append(abci.Request(echo=abci.RequestEcho(message=f"m{i}" * (i * 40 + 1))))
    reqs.append(abci.Request(info=abci.RequestInfo(version="0.38.26")))
    reqs.append(abci.Request(check_tx=abci.RequestCheckTx(tx=b"\x00junk")))
    reqs.append(abci.Request(query=abci.RequestQuery(path="bank/supply")))
    reqs.append(abci.Request(check_tx=abci.RequestCheckTx(tx=send_tx(key(0), 0, addr(key(4)), 5))))
    reqs.append(abci.Request(flush=abci.RequestFlush()))
    return reqs


def _stream(reqs: list[abci.Request]) -> bytes:
    return b"".join(encode_frame(r.SerializeToString()) for r in reqs)


def _check(reqs: list[abci.Request], resps: list[abci.Response]) -> None:
    assert [r.WhichOneof("value") for r in resps] == [r.WhichOneof("value") for r in reqs]
    for req, resp in zip(reqs, resps, strict=True):
        if req.WhichOneof("value") == "echo":
            assert resp.echo.message == req.echo.message
    kinds = [r.WhichOneof("value") for r in reqs]
    checks = [resps[i].check_tx for i, k in enumerate(kinds) if k == "check_tx"]
    assert checks[0].code == 2 and checks[1].code == 0  # junk refused, then the valid tx accepted


async def _exchange(chunks: list[bytes], n: int) -> list[abci.Response]:
    chain = new_chain()
    chain.finalize_block(1, [])
    chain.commit()
    server = ABCIServer(NesaApp(chain), "127.0.0.1", 0)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
        frames = FrameReader()
        out: list[bytes] = []
        while len(out) < n:
            data = await asyncio.wait_for(reader.read(65536), timeout=10)
            assert data, "server closed the connection early"
            out += frames.feed(data)
        writer.close()
        resps = []
        for f in out:
            r = abci.Response()
            r.ParseFromString(f)
            resps.append(r)
        return resps
    finally:
        await server.close()


def test_server_many_requests_in_one_write_answered_in_order():
    reqs = _requests()
    _check(reqs, asyncio.run(_exchange([_stream(reqs)], len(reqs))))


def test_server_byte_by_byte_cut_at_every_boundary_answered_in_order():
    reqs = _requests()
    stream = _stream(reqs)
    _check(reqs, asyncio.run(_exchange([stream[i : i + 1] for i in range(len(stream))], len(reqs))))


def test_server_random_chunking_answered_in_order():
    reqs = _requests()
    stream = _stream(reqs)
    rng = random.Random(3)
    cuts = sorted(rng.sample(range(1, len(stream)), 25))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    _check(reqs, asyncio.run(_exchange(chunks, len(reqs))))


def test_frame_reader_every_split_point_yields_same_frames():
    payloads = [b"", b"a", b"x" * 127, b"y" * 128, b"z" * 300]
    stream = b"".join(encode_frame(p) for p in payloads)
    for cut in range(len(stream) + 1):
        r = FrameReader()
        assert r.feed(stream[:cut]) + r.feed(stream[cut:]) == payloads


def test_frame_reader_rejects_oversize_and_overlong_varint():
    with pytest.raises(FrameError, match="exceeds"):
        FrameReader(max_frame=100).feed(encode_uvarint(101))
    with pytest.raises(FrameError, match="longer than 10"):
        FrameReader().feed(b"\xff" * 11)


def test_unsupported_request_becomes_exception_response():
    app = NesaApp(new_chain())
    with pytest.raises(ValueError):
        app.handle("begin_block", None)
