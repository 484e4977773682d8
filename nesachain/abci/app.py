"""The ABCI 2.0 methods: thin translations between CometBFT's protobuf messages and ``Chain``.

Each method says when CometBFT calls it and what it must return.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from google.protobuf.message import Message
from tendermint.abci import types_pb2 as abci
from tendermint.types import validator_pb2 as cmt_validator

from nesachain import __version__
from nesachain.abci.chain import Chain, TxResult
from nesachain.types.events import Event
from nesachain.types.module import BlockInfo, ValidatorUpdate

__all__ = ["NesaApp"]

log = structlog.get_logger("nesachain.app")
APP_VERSION = 1
_MISBEHAVIOR = {abci.DUPLICATE_VOTE: "duplicate_vote", abci.LIGHT_CLIENT_ATTACK: "light_client_attack"}


def _events(events: Sequence[Event]) -> list[abci.Event]:
    return [
        abci.Event(type=e.type, attributes=[abci.EventAttribute(key=k, value=v, index=True) for k, v in e.attributes])
        for e in events
    ]


def _validator_updates(updates: Sequence[ValidatorUpdate]) -> list[abci.ValidatorUpdate]:
    out = []
    for u in updates:
        vu = abci.ValidatorUpdate(power=u.power)
        vu.pub_key.ed25519 = u.pubkey
        out.append(vu)
    return out


def _tx_fields(r: TxResult) -> dict[str, Any]:
    return {"code": r.code, "codespace": r.codespace, "log": r.log, "data": r.data, "events": _events(r.events)}


class NesaApp:
    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.query_pause: Callable[[], object] | None = None  # the server's: queries give way to consensus
        self._handlers: dict[str, Callable[[Any], Message]] = {
            "echo": self.echo,
            "info": self.info,
            "init_chain": self.init_chain,
            "query": self.query,
            "check_tx": self.check_tx,
            "prepare_proposal": self.prepare_proposal,
            "process_proposal": self.process_proposal,
            "extend_vote": self.extend_vote,
            "verify_vote_extension": self.verify_vote_extension,
            "finalize_block": self.finalize_block,
            "commit": self.commit,
            "list_snapshots": self.list_snapshots,
            "offer_snapshot": self.offer_snapshot,
            "load_snapshot_chunk": self.load_snapshot_chunk,
            "apply_snapshot_chunk": self.apply_snapshot_chunk,
        }

    def handle(self, kind: str, req: Any) -> Message:
        handler = self._handlers.get(kind)
        if handler is None:
            raise ValueError(f"unsupported ABCI request {kind!r}")
        return handler(req)

    def echo(self, req: abci.RequestEcho) -> abci.ResponseEcho:
        """Any connection, for liveness: return the message."""
        return abci.ResponseEcho(message=req.message)

    def info(self, req: abci.RequestInfo) -> abci.ResponseInfo:
        """At start-up (handshake): the last committed height and app hash, so CometBFT replays
        the blocks the app has not committed."""
        return abci.ResponseInfo(
            data="nesachain",
            version=__version__,
            app_version=APP_VERSION,
            last_block_height=self.chain.height,
            last_block_app_hash=self.chain.app_hash,
        )

    def init_chain(self, req: abci.RequestInitChain) -> abci.ResponseInitChain:
        """Once, at genesis (height 0): load app_state; return the genesis app hash. An empty
        validator list keeps the validators of genesis.json."""
        app_state = json.loads(req.app_state_bytes) if req.app_state_bytes else {}
        time_ns = req.time.seconds * 10**9 + req.time.nanos
        app_hash, updates = self.chain.init_chain(req.chain_id, app_state, time_ns)
        log.info("init_chain", chain_id=req.chain_id, app_hash=app_hash.hex())
        return abci.ResponseInitChain(app_hash=app_hash, validators=_validator_updates(updates))

    def query(self, req: abci.RequestQuery) -> abci.ResponseQuery:
        """Query connection, any time, on the server's query thread (outside the lock FinalizeBlock
        holds): answer from the last committed state (JSON in, JSON out), a code for every refusal."""
        r = self.chain.query(req.path, req.data, self.query_pause)
        return abci.ResponseQuery(code=r.code, codespace=r.codespace, log=r.log, value=r.value, height=r.height)

    def check_tx(self, req: abci.RequestCheckTx) -> abci.ResponseCheckTx:
        """Mempool connection, for each new tx and again (RECHECK) after each commit: a code, never
        an exception. Code 0 admits the tx to the mempool. A refusal's data may carry a structured
        payload (a sequence refusal: the expected sequence; see ``tx.ante.sequence_expected``)."""
        return abci.ResponseCheckTx(**_tx_fields(self.chain.check_tx(req.tx)))

    def prepare_proposal(self, req: abci.RequestPrepareProposal) -> abci.ResponsePrepareProposal:
        """On the proposer, when it is its turn to propose: return the txs to propose, those of the
        mempool's that pass CheckTx's check in order on a scratch state, within max_tx_bytes (an
        empty list makes an empty block). ProcessProposal accepts exactly such a list."""
        return abci.ResponsePrepareProposal(txs=self.chain.prepare_txs(list(req.txs), req.max_tx_bytes))

    def process_proposal(self, req: abci.RequestProcessProposal) -> abci.ResponseProcessProposal:
        """On every validator for each proposal, before it votes: ACCEPT, or REJECT when a tx fails the
        check CheckTx and PrepareProposal make (run in order on a scratch state: signature, chain id,
        sequence, fee, messages). The verdict depends only on the committed state and the txs, so all
        honest validators agree and an honest proposer's block is always accepted. Never UNKNOWN
        (it would panic the node)."""
        ok = self.chain.process_txs(list(req.txs))
        status = abci.ResponseProcessProposal.ACCEPT if ok else abci.ResponseProcessProposal.REJECT
        return abci.ResponseProcessProposal(status=status)

    def extend_vote(self, req: abci.RequestExtendVote) -> abci.ResponseExtendVote:
        """Only when vote extensions are enabled (they are not): no extension."""
        return abci.ResponseExtendVote(vote_extension=b"")

    def verify_vote_extension(self, req: abci.RequestVerifyVoteExtension) -> abci.ResponseVerifyVoteExtension:
        """Only when vote extensions are enabled: ACCEPT the (empty) extension."""
        return abci.ResponseVerifyVoteExtension(status=abci.ResponseVerifyVoteExtension.ACCEPT)

    def finalize_block(self, req: abci.RequestFinalizeBlock) -> abci.ResponseFinalizeBlock:
        """Once per decided block: execute it, return one result per tx, validator updates (in
        effect at height+2) and the app hash. State is staged, not yet persisted."""
        info = BlockInfo(
            proposer=req.proposer_address,
            last_commit=tuple(
                (v.validator.address, v.validator.power, v.block_id_flag != cmt_validator.BLOCK_ID_FLAG_ABSENT)
                for v in req.decided_last_commit.votes
            ),
            misbehavior=tuple(
                (_MISBEHAVIOR.get(m.type, "unknown"), m.validator.address, m.validator.power, m.height)
                for m in req.misbehavior
            ),
        )
        r = self.chain.finalize_block(
            req.height,
            list(req.txs),
            time_ns=req.time.seconds * 10**9 + req.time.nanos,
            block_hash=req.hash,
            info=info,
        )
        return abci.ResponseFinalizeBlock(
            events=_events(r.events),
            tx_results=[abci.ExecTxResult(**_tx_fields(t)) for t in r.tx_results],
            validator_updates=_validator_updates(r.validator_updates),
            app_hash=r.app_hash,
        )

    def commit(self, req: abci.RequestCommit) -> abci.ResponseCommit:
        """After FinalizeBlock: persist the block's state, height and app hash atomically."""
        height = self.chain.commit()
        log.debug("commit", height=height, app_hash=self.chain.app_hash.hex())
        return abci.ResponseCommit(retain_height=0)

    def list_snapshots(self, req: abci.RequestListSnapshots) -> abci.ResponseListSnapshots:
        """State sync is not offered: no snapshots."""
        return abci.ResponseListSnapshots()

    def offer_snapshot(self, req: abci.RequestOfferSnapshot) -> abci.ResponseOfferSnapshot:
        """A peer offers a snapshot: refuse it (nodes sync by replaying blocks)."""
        return abci.ResponseOfferSnapshot(result=abci.ResponseOfferSnapshot.REJECT)

    def load_snapshot_chunk(self, req: abci.RequestLoadSnapshotChunk) -> abci.ResponseLoadSnapshotChunk:
        """No snapshots, so no chunks."""
        return abci.ResponseLoadSnapshotChunk()

    def apply_snapshot_chunk(self, req: abci.RequestApplySnapshotChunk) -> abci.ResponseApplySnapshotChunk:
        """Never reached after REJECT; abort if it is."""
        return abci.ResponseApplySnapshotChunk(result=abci.ResponseApplySnapshotChunk.ABORT)
