"""inference's state records: a session's stored bytes never change with a rename, and its JSON form
(queries, genesis) reads back to the same record."""

from __future__ import annotations

import hashlib

from nesachain.modules.inference.types import Challenge, Session, SessionHop
from nesachain.types.encoding import decode_canonical, encode

SESSION = Session(3, b"\x01" * 20, "toy", (
    SessionHop(b"\x10" * 20, 0, 2, commitment=b"c" * 32, root=b"r" * 32, n_steps=5, revealed=True, paid=30, tokens=5),
    SessionHop(b"\x11" * 20, 0, 2, stands_in_for=0, attempt=1, from_token=2, failed="no_commit")),
    20, 999, 3, 7, status="challenging", challenges=(Challenge(0, 4, {"aa" * 20: b"x" * 32}, {"aa" * 20: "match"}),))


def test_session_stored_encoding_unchanged_by_the_session_hop_rename() -> None:
    """The digest the same session had when ``SessionHop`` was still called ``Hop``."""
    old = Session(3, b"\x01" * 20, "toy", (
        SessionHop(b"\x10" * 20, 0, 2, commitment=b"c" * 32, root=b"r" * 32, n_steps=5, revealed=True, paid=30,
                   tokens=5),
        SessionHop(b"\x11" * 20, 0, 2, stands_in_for=0, attempt=1, from_token=2, failed="no_commit")),
        20, 999, 3, 7, status="challenging", challenges=(Challenge(0, 4, {"aa": b"x" * 32}, {"aa": "match"}),))
    digest = hashlib.sha256(encode(old.to_state())).hexdigest()
    assert digest == "3860a9cc21ae0813fa907664a3561e8afc579c7e4ff363950a62403a63b3ae82"
    assert Session.from_state(decode_canonical(encode(old.to_state()))) == old


def test_session_from_json_reads_back_to_json() -> None:
    assert Session.from_json(SESSION.to_json()) == SESSION
