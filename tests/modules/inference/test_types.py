"""inference's state records: a session's stored bytes never change with a rename, and its JSON form
(queries, genesis) reads back to the same record."""

from __future__ import annotations

import hashlib

from nesachain.modules.inference.types import Challenge, Session, SessionHop, verdict_deadlines
from nesachain.types.encoding import decode_canonical, encode

SESSION = Session(3, b"\x01" * 20, "toy", (
    SessionHop(b"\x10" * 20, 0, 2, commitment=b"c" * 32, root=b"r" * 32, n_steps=5, revealed=True, paid=30, tokens=5),
    SessionHop(b"\x11" * 20, 0, 2, stands_in_for=0, attempt=1, from_token=2, failed="no_commit")),
    20, 999, 3, 7, status="challenging", challenges=(Challenge(0, 4, {"aa" * 20: b"x" * 32}, {"aa" * 20: "match"}),))


def test_session_stored_encoding_is_pinned_and_reads_challenges_stored_before_rounds() -> None:
    """A session's stored bytes change only on purpose: this digest changed last when challenges got their
    round and their own verdict deadlines and sessions their verifier rewards (it did not change when
    ``SessionHop`` was renamed from ``Hop``). A challenge stored before then reads as round 1, with its
    session's deadlines."""
    old = Session(3, b"\x01" * 20, "toy", (
        SessionHop(b"\x10" * 20, 0, 2, commitment=b"c" * 32, root=b"r" * 32, n_steps=5, revealed=True, paid=30,
                   tokens=5),
        SessionHop(b"\x11" * 20, 0, 2, stands_in_for=0, attempt=1, from_token=2, failed="no_commit")),
        20, 999, 3, 7, status="challenging", challenges=(Challenge(0, 4, {"aa": b"x" * 32}, {"aa": "match"}),))
    digest = hashlib.sha256(encode(old.to_state())).hexdigest()
    assert digest == "d2f049467d86bd23738edb2984c97573289f01c2c0eecc63d5e1386f9e6a5e8b"
    assert Session.from_state(decode_canonical(encode(old.to_state()))) == old
    before = old.to_state()
    for c in before["challenges"]:
        for name in ("round", "commit_deadline", "reveal_deadline"):
            del c[name]
    read = Session.from_state(decode_canonical(encode(before)))
    assert read == old and read.challenges[0].round == 1
    assert verdict_deadlines(read.with_(verdict_commit_deadline=9, verdict_reveal_deadline=12),
                             read.challenges[0]) == (9, 12)


def test_session_from_json_reads_back_to_json() -> None:
    assert Session.from_json(SESSION.to_json()) == SESSION
