"""Queries read the last commit, outside the consensus lock, and cost at most a capped number of entries."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Mapping
from typing import Any

import pytest
from tendermint.abci import types_pb2 as abci

from nesachain.abci.app import NesaApp
from nesachain.abci.chain import Chain
from nesachain.abci.errors import ErrQueryTooLarge
from nesachain.abci.framing import FrameReader, encode_frame
from nesachain.abci.server import ABCIServer
from nesachain.store import CommitStore
from nesachain.store.kv import KVReader
from tests.abci.busy_chain import BusyChain
from tests.abci.conftest import CHAIN_ID, FUNDS, addr, genesis, key, new_chain, send_tx


def _balance_query(a: str) -> abci.Request:
    return abci.Request(query=abci.RequestQuery(path="bank/balance", data=json.dumps({"address": a}).encode()))


async def _ask(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], req: abci.Request) -> abci.Response:
    reader, writer = conn
    writer.write(encode_frame(req.SerializeToString()) + encode_frame(abci.Request(flush=abci.RequestFlush())
                                                                      .SerializeToString()))
    await writer.drain()
    frames = FrameReader()
    out: list[bytes] = []
    while len(out) < 2:
        data = await reader.read(65536)
        assert data, "the server closed the connection"
        out += frames.feed(data)
    resp = abci.Response()
    resp.ParseFromString(out[0])
    return resp


def test_query_during_finalize_block_does_not_block_it_and_reads_the_committed_state(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A query that is still reading when FinalizeBlock arrives on the consensus connection: FinalizeBlock
    is answered meanwhile, and the query, reading after the block was staged, answers the committed balance.
    Before: queries ran under the app-wide lock on the event loop, so FinalizeBlock waited for the query to
    finish (this test saw the query done before FinalizeBlock's answer)."""
    chain = new_chain()
    chain.finalize_block(1, [])
    chain.commit()
    started, release, done = threading.Event(), threading.Event(), threading.Event()
    real = chain.router.query

    def slow_balance(store: KVReader, params: Mapping[str, Any]) -> Any:
        started.set()
        release.wait(timeout=3)  # reads only once the block is staged (or after 3 s)
        fn = real("bank/balance")
        assert fn is not None
        value = fn(store, params)
        done.set()
        return value

    monkeypatch.setattr(chain.router, "query", lambda path: slow_balance if path == "bank/balance" else real(path))
    sender = addr(key(0))
    block = abci.Request(finalize_block=abci.RequestFinalizeBlock(
        height=2, txs=[send_tx(key(0), 0, addr(key(9)), 5_000)], hash=b"\x02" * 32))

    async def scenario() -> None:
        server = ABCIServer(NesaApp(chain), "127.0.0.1", 0)
        await server.start()
        try:
            queries = await asyncio.open_connection("127.0.0.1", server.port)
            consensus = await asyncio.open_connection("127.0.0.1", server.port)
            asking = asyncio.ensure_future(_ask(queries, _balance_query(sender)))
            assert await asyncio.to_thread(started.wait, 3)
            finalized = await asyncio.wait_for(_ask(consensus, block), timeout=10)
            assert not done.is_set(), "FinalizeBlock waited for the query"
            assert [r.code for r in finalized.finalize_block.tx_results] == [0]
            release.set()
            answer = (await asyncio.wait_for(asking, timeout=10)).query
            assert answer.code == 0 and answer.height == 1
            assert json.loads(answer.value)["amount"] == FUNDS  # the committed balance, not the staged one
            await asyncio.wait_for(_ask(consensus, abci.Request(commit=abci.RequestCommit())), timeout=10)
            after = (await asyncio.wait_for(_ask(queries, _balance_query(sender)), timeout=10)).query
            assert after.height == 2 and json.loads(after.value)["amount"] < FUNDS - 5_000
            for _, writer in (queries, consensus):
                writer.close()
        finally:
            release.set()
            await server.close()

    asyncio.run(scenario())


def test_query_a_commit_landing_while_it_reads_changes_nothing_it_sees(monkeypatch: pytest.MonkeyPatch) -> None:
    """A query reads a balance, a Commit lands (as on the consensus thread), it reads the balance again:
    both reads and the height answered are those of the commit it started at. Before: a query read the
    store Commit changes in place, so its answer mixed two states (this test saw two balances)."""
    chain = new_chain()
    chain.finalize_block(1, [])
    chain.commit()
    chain.finalize_block(2, [send_tx(key(0), 0, addr(key(9)), 5_000)])
    real = chain.router.query

    def balance_across_a_commit(store: KVReader, params: Mapping[str, Any]) -> Any:
        fn = real("bank/balance")
        assert fn is not None
        before = fn(store, params)["amount"]
        chain.commit()
        return {"before": before, "after": fn(store, params)["amount"]}

    monkeypatch.setattr(chain.router, "query", lambda path: balance_across_a_commit if path == "bank/balance"
                        else real(path))
    r = chain.query("bank/balance", json.dumps({"address": addr(key(0))}).encode())
    assert r.code == 0 and r.height == 1 and chain.height == 2
    assert json.loads(r.value) == {"before": FUNDS, "after": FUNDS}


def test_query_past_the_scan_cap_gets_the_query_too_large_code() -> None:
    """Before: ``staking/pool`` summed every balance, however many, while FinalizeBlock waited (no cap)."""
    chain = Chain(CommitStore(), query_max_scan=50)
    chain.init_chain(CHAIN_ID, genesis(60))
    chain.finalize_block(1, [])
    chain.commit()
    pool = chain.query("staking/pool", b"")
    assert (pool.codespace, pool.code) == (ErrQueryTooLarge.codespace, ErrQueryTooLarge.code)
    assert "more than 50 entries" in pool.log and pool.height == 1
    assert chain.query("bank/balance", json.dumps({"address": addr(key(59))}).encode()).code == 0
    small = Chain(CommitStore(), query_max_scan=100_000)
    small.init_chain(CHAIN_ID, genesis(60))
    small.finalize_block(1, [])
    small.commit()
    assert json.loads(small.query("staking/pool", b"").value)["invariant_holds"]


@pytest.mark.parametrize("path", ["staking/validators", "staking/miners"])
def test_list_query_past_the_scan_cap_gets_the_code_and_a_page_within_it_answers(busy: BusyChain, path: str) -> None:
    """The busy chain's validators and miners lists read 15 and 6 entries: with a cap of 5 both are refused,
    with the code, and their pages answer under the default cap. The sessions query pages through an index,
    so one of its pages reads less than the cap."""
    capped = Chain(busy.chain.store, query_max_scan=5)
    r = capped.query(path, json.dumps({"limit": 1}).encode())
    assert (r.codespace, r.code) == (ErrQueryTooLarge.codespace, ErrQueryTooLarge.code)
    assert f"{path} would read more than 5 entries" in r.log
    page = json.loads(busy.chain.query(path, json.dumps({"limit": 1, "offset": 1}).encode()).value)
    assert page["total"] >= 2 and len(next(v for k, v in page.items() if k != "total")) == 1
    sessions = capped.query("inference/sessions", json.dumps({"limit": 1}).encode())
    assert sessions.code == 0 and len(json.loads(sessions.value)["sessions"]) == 1
