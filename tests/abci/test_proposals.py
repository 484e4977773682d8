"""PrepareProposal and ProcessProposal judge txs with the one check CheckTx makes (decoding, signature,
chain id, sequence, fee, the messages), on a scratch state: a proposal with a tx that check refuses
is rejected, and what an honest proposer prepares is always accepted (or the chain stops)."""

from __future__ import annotations

import random

import pytest
from tendermint.abci import types_pb2 as abci

from nesachain.abci.app import NesaApp
from nesachain.abci.chain import Chain
from nesachain.types.address import decode_address
from tests.abci.conftest import FUNDS, addr, key, send_tx

TO = addr(key(5))


def _state(c: Chain) -> tuple[bytes, int, dict[bytes, bytes | None]]:
    return c.app_hash, c.height, c._check.writes()


BAD_PROPOSALS = {
    "a sequence already used": lambda: [send_tx(key(0), 0, TO, 1), send_tx(key(0), 0, TO, 2)],
    "a sequence gap": lambda: [send_tx(key(0), 1, TO, 1)],
    "out of order": lambda: [send_tx(key(0), 1, TO, 1), send_tx(key(0), 0, TO, 1)],
    "a fee below the minimum": lambda: [send_tx(key(1), 0, TO, 1, fee=999)],
    "another chain's tx": lambda: [send_tx(key(1), 0, TO, 1, chain_id="other-chain")],
    "a message that fails": lambda: [send_tx(key(2), 0, TO, FUNDS)],
    "bytes that are no tx": lambda: [send_tx(key(0), 0, TO, 1), b"\x93garbage"],
}


@pytest.mark.parametrize("case", sorted(BAD_PROPOSALS))
def test_process_txs_proposal_with_a_tx_the_check_refuses_is_rejected(committed_chain, case: str) -> None:
    c = committed_chain()
    before = _state(c)
    assert not c.process_txs(BAD_PROPOSALS[case]())
    assert _state(c) == before  # judged on a scratch state: nothing changed


def test_process_txs_valid_proposal_accepted_and_leaves_state_alone(committed_chain) -> None:
    c = committed_chain()
    before = _state(c)
    assert c.process_txs([send_tx(key(0), 0, TO, 1), send_tx(key(0), 1, TO, 2), send_tx(key(1), 0, TO, 3)])
    assert c.process_txs([])
    assert _state(c) == before


def test_prepare_txs_dropped_tx_leaves_no_trace_for_the_txs_after_it(committed_chain) -> None:
    """A tx whose message fails is dropped with its fee and sequence: the same account's next tx is
    judged against the sequence the block will really have (so it is dropped too, not kept to fail)."""
    c = committed_chain()
    fails, after = send_tx(key(0), 0, TO, FUNDS), send_tx(key(0), 1, TO, 1)
    fine = send_tx(key(1), 0, TO, 1)
    kept = c.prepare_txs([fails, after, fine], max_bytes=0)
    assert kept == [fine]
    assert c.process_txs(kept)


def test_prepare_txs_kept_txs_are_accepted_by_process_txs_and_all_succeed(committed_chain) -> None:
    """Random mempools of good and bad txs: ProcessProposal accepts exactly what PrepareProposal keeps,
    and FinalizeBlock runs every kept tx with code 0."""
    c = committed_chain()
    rng = random.Random(11)
    seqs = {i: 0 for i in range(3)}
    total_kept = total_dropped = 0
    for height in range(2, 12):
        mempool = []
        for _ in range(rng.randint(0, 10)):
            i = rng.randrange(3)
            seq = seqs[i] + rng.choice([0, 0, 0, 1, -1])
            amount = rng.choice([1, 10**6, FUNDS * 2])
            fee = rng.choice([1000, 1000, 1000, 10])
            mempool.append(send_tx(key(i), max(seq, 0), addr(key(rng.randrange(6))), amount, fee=fee))
            seqs[i] = max(seq, 0) + 1
        kept = c.prepare_txs(mempool, max_bytes=rng.choice([0, 2000]))
        assert c.process_txs(kept)
        total_kept += len(kept)
        total_dropped += len(mempool) - len(kept)
        result = c.finalize_block(height, kept, time_ns=height * 10**9, block_hash=bytes([height]) * 32)
        assert [r.code for r in result.tx_results] == [0] * len(kept)
        c.commit()
        for i in seqs:  # the next mempool starts from the sequences the chain really has
            seqs[i] = c.auth.sequence(c.store, decode_address(addr(key(i))))
    assert total_kept > 10 and total_dropped > 10  # both kinds were really there


def test_prepare_txs_respects_max_bytes(committed_chain) -> None:
    c = committed_chain()
    txs = [send_tx(key(0), n, TO, 1) for n in range(5)]
    kept = c.prepare_txs(txs, max_bytes=len(txs[0]) * 2 + 1)
    assert kept == txs[:2] and c.process_txs(kept)


def test_app_process_proposal_answers_reject_or_accept_never_unknown(committed_chain) -> None:
    app = NesaApp(committed_chain())
    bad = app.process_proposal(abci.RequestProcessProposal(txs=[send_tx(key(0), 3, TO, 1)], height=2))
    assert bad.status == abci.ResponseProcessProposal.REJECT
    prepared = app.prepare_proposal(abci.RequestPrepareProposal(
        txs=[send_tx(key(0), 0, TO, 1), send_tx(key(0), 0, TO, 2), send_tx(key(1), 0, TO, 1)], max_tx_bytes=10**6,
        height=2))
    assert len(prepared.txs) == 2
    good = app.process_proposal(abci.RequestProcessProposal(txs=list(prepared.txs), height=2))
    assert good.status == abci.ResponseProcessProposal.ACCEPT
