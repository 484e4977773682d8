"""The adversarial suite's world: a real 4-validator localnet whose verifiers judge a tiny GPT-2 (2 blocks) served
by three chain miners (0:1, and 1:2 twice), started once for the whole suite; each test uses fresh accounts.

With ``NESA_ADVERSARIAL_OLD=/path/to/an/older/checkout``, the miners and verifiers run that checkout's code
instead (the chain, the client and the attacker stay this one's): that is how each test was seen to fail on the
code before the hardening (each says so in its docstring).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from nacl.signing import SigningKey

from nesachain.client.models import DecoderClient
from nesachain.client.request import await_settled, candidates
from nesachain.client.route import Route
from nesachain.client.routing import find_route
from nesachain.localnet.net import REPO, Localnet
from nesachain.localnet.swarm import start_miner, start_verifier, wait_active_miners
from nesachain.modules.bank.msgs import MsgSend
from nesachain.modules.inference.msgs import MsgCloseSession, MsgOpenSession
from nesachain.modules.inference.types import max_cost
from nesachain.protocol.auth import sign_open
from nesachain.protocol.sessions import chain_session_base
from nesachain.shard_exec.sampling import Sampling
from nesachain.wallet import queries
from nesachain.wallet.txs import account_of, send_msgs
from tests.integration.conftest import free_base_port

MODEL = "tiny-gpt2"
PROMPT = torch.tensor([[5, 17, 42, 7]])
HONEST = 3  # miners 0 (0:1), 1 and 2 (1:2)
HOSTILE_KINDS = ("list", "types", "huge", "slow")  # miners 3.. serve 1:2, and garbage to verifiers
FAULTY_MINER = str(REPO / "tests" / "support" / "faulty_miner.py")


def _program(*script: str) -> tuple[str, ...]:
    """What Python runs for a miner or verifier: ``nesad``, or ``script`` (a faulty miner and its fault); on the
    older checkout's code when ``NESA_ADVERSARIAL_OLD`` names one."""
    old = os.environ.get("NESA_ADVERSARIAL_OLD")
    if not old:
        return script or ("-m", "nesachain.cli.main")
    if script:
        path, *args = script
        code = (f"import sys, runpy; sys.path[:0] = [{old!r}, {str(Path(path).parent)!r}]; "
                f"sys.argv = [{path!r}, *{args!r}, *sys.argv[1:]]; runpy.run_path({path!r}, run_name='__main__')")
        return ("-c", code)
    return ("-c", f"import sys; sys.path.insert(0, {old!r}); from nesachain.cli.main import main; sys.exit(main())")


# the tests read a settled session's logs (as an attacker would, and as its verifiers did): the honest miners keep
# them past settlement; the older checkout has no such flag (and never pruned)
_KEEP_LOGS = () if os.environ.get("NESA_ADVERSARIAL_OLD") else ("--keep-settled-logs", "3600")


@dataclass
class World:
    net: Localnet
    shards: Path
    clients: int = 0

    @property
    def rpc(self) -> Any:
        return self.net.rpc(0)

    def miner(self, i: int) -> str:
        return self.net.keyring().show(f"miner{i}").address

    def url(self, i: int) -> str:
        endpoint = str(queries.miner(self.rpc, self.miner(i))["endpoint"])  # type: ignore[index]
        return f"ws://{endpoint}/ws"

    def client(self) -> SigningKey:
        """A fresh account with funds."""
        ring = self.net.keyring()
        self.clients += 1
        info = ring.add(f"adv-client{self.clients}")
        out = send_msgs(self.rpc, ring.signing_key("faucet"), [MsgSend(ring.show("faucet").address, info.address,
                                                                        10**8)])
        assert out.ok, out.log
        return ring.signing_key(info.name)

    def hostile(self, kind: str) -> str:
        return self.miner(HONEST + HOSTILE_KINDS.index(kind))

    def route(self, through: str | None = None) -> Route:
        """A route over the honest miners, or with hop 1 on miner ``through``."""
        keep = {self.miner(i) for i in range(HONEST)} if through is None else {self.miner(0), through}
        return find_route([c for c in candidates(self.rpc, MODEL) if c.miner in keep], 2)

    def open_session(self, key: SigningKey, route: Route, max_tokens: int = 8) -> int:
        model = queries.model(self.rpc, MODEL)
        escrow = max_cost(model["price"], model["n_blocks"], max_tokens,
                          queries.inference_params(self.rpc)["protocol_fee_ppm"])
        out = send_msgs(self.rpc, key, [MsgOpenSession(account_of(key), MODEL, route.as_chain_route(), max_tokens,
                                                        escrow)])
        assert out.ok, out.log
        return int(out.responses()[0]["session_id"])

    def authorized(self, key: SigningKey, route: Route, session_id: int) -> Route:
        chain_id = self.rpc.chain_id()
        return route.authorized(lambda hop, attempt, url: sign_open(key, chain_id, session_id, hop, attempt,
                                                                    route.miner_at(url) or ""))

    def generate(self, key: SigningKey, route: Route, session_id: int, n: int = 6) -> list[int]:
        client = DecoderClient.from_shard_dir(self.shards)

        async def run() -> list[int]:
            return [t async for t in client.generate(self.authorized(key, route, session_id), PROMPT, n, Sampling(),
                                                     session_base=chain_session_base(session_id))]

        return asyncio.run(run())

    def close(self, key: SigningKey, session_id: int, tokens: int) -> None:
        out = send_msgs(self.rpc, key, [MsgCloseSession(account_of(key), session_id, tokens)])
        assert out.ok, out.log

    def serve(self, n: int = 6) -> tuple[SigningKey, int, list[int]]:
        """A whole honest session: open on chain, generate ``n`` tokens through the miners, close."""
        key = self.client()
        route = self.route()
        sid = self.open_session(key, route)
        tokens = self.generate(key, route, sid, n)
        self.close(key, sid, len(tokens))
        return key, sid, tokens

    def settled(self, session_id: int) -> dict[str, Any]:
        s = await_settled(self.rpc, session_id, 240)
        assert s["status"] == "settled", s
        return s


@pytest.fixture(scope="package")
def world(tmp_path_factory: pytest.TempPathFactory, tiny_gpt2: Any) -> Iterator[World]:
    root = tmp_path_factory.mktemp("adversarial")
    template = json.loads((REPO / "genesis" / "localnet.json").read_text())
    template["inference"]["models"] = [{"model_id": MODEL, "architecture": "gpt2", "n_blocks": 2, "price": 1,
                                        "deposit": 1_000_000}]
    (root / "genesis.json").write_text(json.dumps(template))
    net = Localnet(root / "net", base_port=free_base_port(6), chain_id="nesa-adv-1")
    net.init(root / "genesis.json", shards={MODEL: tiny_gpt2.dir})
    try:
        net.up(wait_height=2)
        net.guard()
        for i, blocks in enumerate([(0, 1), (1, 2), (1, 2)]):
            start_miner(net, i, tiny_gpt2.dir, blocks, model_id=MODEL, program=_program(), extra=_KEEP_LOGS)
        for j, kind in enumerate(HOSTILE_KINDS):
            start_miner(net, HONEST + j, tiny_gpt2.dir, (1, 2), model_id=MODEL,
                        owner=f"operator{(HONEST + j) % net.n}", program=_program(FAULTY_MINER, f"hostile-log={kind}"))
        for i in range(net.n):
            start_verifier(net, i, {MODEL: tiny_gpt2.dir}, program=_program())
        wait_active_miners(net, MODEL, HONEST + len(HOSTILE_KINDS))
        yield World(net, tiny_gpt2.dir)
    finally:
        net.down()
