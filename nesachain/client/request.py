"""A verified inference request, end to end (what `nesad tx inference request` runs).

Finds the model's active miners on chain, measures this client's round trip to each, routes
(client/routing.py), opens an escrowed session, streams the completion through the miners
(embeddings and LM head stay here), and closes the session with the number of tokens generated.
Following the session to "settled" is ``await_settled``.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from nacl.signing import SigningKey

from nesachain.client.errors import NoRouteError
from nesachain.client.observed import ObservedSpeeds, per_block_seconds
from nesachain.client.route import Route
from nesachain.client.routing import PREFERENCES, MinerCandidate, find_route
from nesachain.errors import ConfigError, NesaError, RPCError
from nesachain.modules.inference.msgs import MsgAddStandIn, MsgCloseSession, MsgOpenSession
from nesachain.modules.inference.types import max_cost
from nesachain.protocol.auth import sign_open
from nesachain.protocol.endpoints import http_url, ws_url
from nesachain.protocol.sessions import chain_session_base
from nesachain.wallet import queries
from nesachain.wallet.rpc import CometRPC
from nesachain.wallet.txs import TxOutcome, account_of, check_msgs, send_msgs

__all__ = ["RequestResult", "await_settled", "candidates", "close_with_stand_ins", "probe_miner", "run_request"]

log = structlog.get_logger("nesachain.request")


@dataclass
class RequestResult:
    session_id: int
    route: Route
    escrow: int
    tokens: list[int] = field(default_factory=list)
    answer: str = ""
    opened_height: int = 0
    closed_height: int = 0
    ttft_s: float = 0.0
    tokens_per_s: float = 0.0
    stand_ins: list[tuple[int, str, int]] = field(default_factory=list)  # (route hop, miner, from token) reported


def probe_miner(endpoint: str) -> tuple[float, dict[str, Any]] | None:
    """(round trip in seconds, /info) of a miner, or None if it does not answer."""
    try:
        base = http_url(endpoint)
        t = time.perf_counter()
        with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
            r.read()
        rtt = time.perf_counter() - t
        with urllib.request.urlopen(f"{base}/info", timeout=2) as r:
            info: dict[str, Any] = json.loads(r.read())
    except (OSError, ValueError, NesaError):  # unreachable, not JSON, or not host:port
        return None
    return rtt, info


def candidates(rpc: CometRPC, model_id: str, observed: ObservedSpeeds | None = None, *, length: int = 0,
               too_short: list[str] | None = None) -> list[MinerCandidate]:
    """The model's active miners that answer, with this client's RTT and its declared throughput
    (capped by what this client observed, if given). A miner whose sessions hold fewer than ``length``
    tokens (its ``max_length``) is left out, and named in ``too_short``."""
    out = []
    for m in queries.miners(rpc, model_id, "active"):
        probe = probe_miner(m["endpoint"])
        if probe is None:
            continue
        rtt, info = probe
        max_length = info.get("max_length")
        if isinstance(max_length, int) and max_length < length:
            if too_short is not None:
                too_short.append(f"{m['miner']} [{m['block_start']},{m['block_end']}) holds {max_length}")
            continue
        throughput = max(m["throughput"], 1) / 1000
        if observed is not None:
            throughput = observed.throughput(m["miner"], throughput)
        out.append(MinerCandidate(m["miner"], m["block_start"], m["block_end"], throughput,
                                  int(m["reputation"]) / 1_000_000, int(info.get("queue_length", 0) or 0), 0, rtt,
                                  url=ws_url(m["endpoint"])))
    return out


async def run_request(rpc: CometRPC, key: SigningKey, shards: Path, model_id: str, prompt: str, max_tokens: int,
                      *, prefer: str = "latency", scheme: str = "none", raw: bool = False, client: Any = None,
                      on_token: Callable[[str], None] | None = None, on_open: Callable[[RequestResult], None]
                      | None = None, observed: ObservedSpeeds | None = None) -> RequestResult:
    """Route, open, generate, close. With ``observed``, routing believes no miner faster than this
    client saw it, and this request's hop timings are recorded there (and saved)."""
    from nesachain.client.models import DecoderClient, GenerationStats, load_tokenizer
    from nesachain.shard_exec.sampling import Sampling

    model = await asyncio.to_thread(queries.model, rpc, model_id)
    params = await asyncio.to_thread(queries.inference_params, rpc)
    # everything that can fail here fails before the session opens and locks escrow
    client = client or DecoderClient.from_shard_dir(shards)
    if client.block_hashes is not None and list(client.block_hashes) != list(model["block_hashes"]):
        ours, theirs = len(client.block_hashes), len(model["block_hashes"])
        raise ConfigError(f"{shards} does not hold {model_id} as registered on chain: "
                          + (f"{ours} blocks, the chain's {theirs}" if ours != theirs else "its blocks' sha256 differ"))
    tok = load_tokenizer(shards)
    if tok is None:
        raise ConfigError(f"{shards} has no tokenizer")
    text = prompt if raw else tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                      add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
    if ids.shape[1] == 0:
        raise ConfigError("the prompt is empty: it has no tokens to start from")
    length = ids.shape[1] + max_tokens  # the tokens each miner's session must hold
    too_short: list[str] = []
    cands = await asyncio.to_thread(candidates, rpc, model_id, observed, length=length, too_short=too_short)
    try:
        route = find_route(cands, model["n_blocks"], PREFERENCES[prefer])
    except NoRouteError as exc:
        hint = (f"; left out, holding fewer than the {ids.shape[1]} prompt + {max_tokens} new tokens: "
                + ", ".join(too_short)) if too_short else ""
        raise ConfigError(f"cannot route {model_id}: {exc}{hint}") from None
    route = route.compressed(scheme)
    route.validate(model["n_blocks"])  # the scheme, too
    escrow = max_cost(model["price"], model["n_blocks"], max_tokens, params["protocol_fee_ppm"])
    me = account_of(key)
    open_msg = MsgOpenSession(me, model_id, route.as_chain_route(), max_tokens, escrow)
    check_msgs([open_msg])
    chain_id = await asyncio.to_thread(rpc.chain_id)
    opened = await asyncio.to_thread(send_msgs, rpc, key, [open_msg], chain_id=chain_id)
    if not opened.ok:
        raise NesaError(f"opening the session was refused: code {opened.code} ({opened.codespace}): {opened.log}")
    result = RequestResult(int(opened.responses()[0]["session_id"]), route, escrow, opened_height=opened.height)

    def authorize(hop: int, attempt: int, url: str) -> dict[str, Any]:
        """The miners serve this chain session only to its client: each hop's open carries our signature."""
        return sign_open(key, chain_id, result.session_id, hop, attempt, route.miner_at(url) or "")

    if on_open is not None:
        on_open(result)
    stats = GenerationStats()
    try:
        async for t in client.generate(route.authorized(authorize), ids, max_tokens, Sampling(), stop_at_eos=True,
                                       stats=stats,
                                       session_base=chain_session_base(result.session_id)):
            result.tokens.append(t)
            if on_token is not None and t != client.head.eos_token_id:
                on_token(tok.decode([t]))
    finally:
        close = MsgCloseSession(me, result.session_id, len(result.tokens))
        stand_ins = [MsgAddStandIn(me, result.session_id, st.hop, miner, st.from_step, st.attempt)
                     for st in stats.stand_ins if (miner := route.miner_at(st.url)) is not None]
        closed, kept = await asyncio.to_thread(
            close_with_stand_ins, lambda msgs: send_msgs(rpc, key, msgs), stand_ins, close)
        result.stand_ins = [(m.hop, m.miner, m.from_token) for m in kept]
        result.closed_height = closed.height
    if observed is not None:
        replaced = {st.hop for st in stats.stand_ins}
        seen = per_block_seconds(stats.hop_ms, [h.end - h.start for h in route.hops])
        for i, (hop, s_per_block) in enumerate(zip(route.hops, seen, strict=True)):
            if s_per_block is not None and i not in replaced:
                observed.record(hop.miner, s_per_block)
        observed.save()
    result.answer = tok.decode([t for t in result.tokens if t != client.head.eos_token_id])
    result.ttft_s, result.tokens_per_s = stats.ttft_s, stats.tokens_per_s
    return result


def close_with_stand_ins(send: Callable[[list[Any]], TxOutcome], stand_ins: list[MsgAddStandIn],
                         close: MsgCloseSession) -> tuple[TxOutcome, list[MsgAddStandIn]]:
    """Report the stand-ins and close, in one tx: (the close's outcome, the stand-ins the chain took).

    If the chain refuses that tx (one stand-in it will not take refuses them all), each stand-in is
    sent alone, so that the others are still paid, and then the close alone."""
    closed = send([*stand_ins, close])
    if closed.ok or not stand_ins:
        return closed, list(stand_ins) if closed.ok else []
    log.warning("stand_ins_refused_together", session_id=close.session_id, code=closed.code, log=closed.log)
    kept = []
    for msg in stand_ins:
        added = send([msg])
        if added.ok:
            kept.append(msg)
        else:
            log.warning("stand_in_refused", session_id=close.session_id, hop=msg.hop, miner=msg.miner,
                        code=added.code, log=added.log)
    return send([close]), kept


def await_settled(rpc: CometRPC, session_id: int, timeout: float,
                  on_status: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Poll the session until it settles (or ``timeout`` seconds pass); returns its last state."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        s = queries.session(rpc, session_id)
        if s is None:
            raise RPCError(f"session {session_id} not found")
        if s["status"] != last and on_status is not None:
            on_status(s["status"])
        last = s["status"]
        if s["status"] == "settled" or time.monotonic() > deadline:
            return s
        time.sleep(1.0)
