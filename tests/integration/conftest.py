"""Integration fixtures: real CometBFT localnets on 127.0.0.1, each in its own folder and ports."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from nesachain.localnet.net import Localnet


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_base_port(n_nodes: int, rng: random.Random | None = None) -> int:
    """A base port whose 10-wide slots for n_nodes are all free (tries at most 200 bases)."""
    rng = rng or random.Random()
    for _ in range(200):
        base = rng.randrange(11000, 32000, 100)  # below the ephemeral range (32768+): no clash with client ports
        if all(_free(base + 10 * i + k) for i in range(n_nodes) for k in range(3)):
            return base
    raise RuntimeError("no free port range found on 127.0.0.1")


def start_localnet(root: Path, n: int = 4, **kwargs: object) -> Localnet:
    net = Localnet(root, n=n, base_port=free_base_port(n), chain_id="nesa-test-1", **kwargs)  # type: ignore[arg-type]
    net.init()
    try:
        net.up(wait_height=2)
        net.guard()
    except BaseException:
        net.down()
        raise
    return net


@pytest.fixture(scope="module")
def localnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Localnet]:
    net = start_localnet(tmp_path_factory.mktemp("localnet"))
    try:
        yield net
    finally:
        net.down()


def generate_in_session(net: Localnet, shards: Path, model_id: str, ids: object, n: int) -> list[int]:
    """``n`` greedy tokens through the chain's miners of ``model_id``, in a chain session the faucet opens and
    closes (chain miners serve chain sessions only, each to its client's signature)."""
    import asyncio

    from nesachain.client.models import DecoderClient
    from nesachain.client.request import candidates
    from nesachain.client.routing import find_route
    from nesachain.modules.inference.msgs import MsgCloseSession, MsgOpenSession
    from nesachain.modules.inference.types import max_cost
    from nesachain.protocol.auth import sign_open
    from nesachain.protocol.sessions import chain_session_base
    from nesachain.shard_exec.sampling import Sampling
    from nesachain.wallet import queries
    from nesachain.wallet.txs import account_of, send_msgs

    rpc, key = net.rpc(0), net.keyring().signing_key("faucet")
    model = queries.model(rpc, model_id)
    route = find_route(candidates(rpc, model_id), model["n_blocks"])
    escrow = max_cost(model["price"], model["n_blocks"], n, queries.inference_params(rpc)["protocol_fee_ppm"])
    opened = send_msgs(rpc, key, [MsgOpenSession(account_of(key), model_id, route.as_chain_route(), n, escrow)])
    assert opened.ok, opened.log
    sid, chain_id = int(opened.responses()[0]["session_id"]), rpc.chain_id()
    signed = route.authorized(lambda hop, attempt, url: sign_open(key, chain_id, sid, hop, attempt,
                                                                  route.miner_at(url) or ""))
    client = DecoderClient.from_shard_dir(shards)

    async def run() -> list[int]:
        return [t async for t in client.generate(signed, ids, n, Sampling(), session_base=chain_session_base(sid))]

    tokens = asyncio.run(run())
    assert send_msgs(rpc, key, [MsgCloseSession(account_of(key), sid, len(tokens))]).ok
    return tokens
