"""inference's state records and the hashes miners and validators commit to."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from nesachain.modules.inference.params import PPM
from nesachain.types.address import decode_address, encode_address
from nesachain.types.keys import u64

__all__ = ["ABSTAIN", "SESSION_FILTERS", "STATUSES", "UNDECIDED", "UNSETTLED", "VERDICTS", "Challenge", "Model",
           "Session", "SessionHop", "max_cost", "result_commitment", "verdict_commitment", "verdict_deadlines"]

OPEN, COMMITTING, CHALLENGING, SETTLED = "open", "committing", "challenging", "settled"
STATUSES = (OPEN, COMMITTING, CHALLENGING, SETTLED)
UNSETTLED = (OPEN, COMMITTING, CHALLENGING)
SESSION_FILTERS = (*STATUSES, "unsettled")  # what the sessions query (and `nesad query inference sessions`) takes
MATCH, MISMATCH = "match", "mismatch"
ABSTAIN = "abstain"  # a verdict that says "I could not check": counted apart from a miss, decides nothing
VERDICTS = (MATCH, MISMATCH, ABSTAIN)
CONTESTED = "contested"  # a tally outcome, never a verdict: > 1/3 of the power said mismatch
UNDECIDED = "undecided"  # a tally outcome: neither 2/3 either way nor > 1/3 mismatch (a new round is drawn)


def max_cost(price: int, blocks: int, max_tokens: int, fee_ppm: int) -> int:
    """The most a session can cost: every block, every token, plus the protocol fee on that."""
    pay = price * blocks * max_tokens
    return pay + pay * fee_ppm // PPM


def result_commitment(session_id: int, miner: bytes, root: bytes, n_steps: int, salt: bytes) -> bytes:
    """What a miner commits: binds its step-log root and its step count to this session and this miner, so
    the count it reveals (what it is paid for and challenged on) is fixed before any challenge is drawn."""
    return hashlib.sha256(b"nesachain/result/v2" + u64(session_id) + miner + root + u64(n_steps) + salt).digest()


def verdict_commitment(session_id: int, challenge: int, validator: bytes, verdict: str, salt: bytes) -> bytes:
    """What a validator commits; including its own address means a copied commitment cannot be revealed."""
    return hashlib.sha256(
        b"nesachain/verdict/v1" + u64(session_id) + u64(challenge) + validator + verdict.encode() + b"\0" + salt
    ).digest()


@dataclass(frozen=True)
class Model:
    model_id: str
    owner: bytes
    architecture: str
    n_blocks: int
    block_hashes: tuple[str, ...]
    price: int  # unes per token per block
    deposit: int

    def to_state(self) -> dict[str, Any]:
        return {**asdict(self), "block_hashes": list(self.block_hashes)}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> Model:
        return cls(**{**d, "block_hashes": tuple(d["block_hashes"])})

    def to_json(self) -> dict[str, Any]:
        return {**self.to_state(), "owner": encode_address(self.owner)}


@dataclass(frozen=True)
class SessionHop:
    """One hop of a session on chain: the miner serving blocks [start, end), its result commitment,
    revealed root and pay. (Off-chain routing has its own ``Hop``; this is the chain's record.)"""

    miner: bytes
    start: int
    end: int
    commitment: bytes = b""
    root: bytes = b""
    n_steps: int = 0
    revealed: bool = False
    failed: str = ""  # why it is unpaid: "no_commit", "no_reveal", "challenge_mismatch", "challenge_contested",
    # "challenge_undecided" (max_undecided_rounds rounds decided nothing)
    paid: int = 0
    stands_in_for: int = -1  # a stand-in (a failover the client reported): the route hop whose blocks it took
    attempt: int = 0  # the client's failover count for that route hop when this miner took over
    from_token: int = 0  # tokens generated before this miner took over
    tokens: int = 0  # tokens this miner served, set when the session closes

    @property
    def blocks(self) -> int:
        return self.end - self.start

    @property
    def proven_tokens(self) -> int:
        """The tokens its revealed step count covers, those it can be paid for: its log holds steps
        0..n_steps-1 (a stand-in's first ``from_token`` are its replay of the earlier steps), and token t of
        the session is step t's output (step 0 the prefill, each later step one decode), so it covers
        min(tokens, n_steps − from_token) of the tokens it served."""
        if not self.revealed:
            return 0
        return min(self.tokens, max(0, self.n_steps - self.from_token))


@dataclass(frozen=True)
class Challenge:
    hop: int
    step: int  # drawn uniformly from [0, the hop's n_steps)
    commits: dict[str, bytes] = field(default_factory=dict)  # validator operator hex -> commitment
    reveals: dict[str, str] = field(default_factory=dict)  # validator operator hex -> verdict
    outcome: str = ""  # "match", "mismatch", "contested" or "undecided" once tallied; "" while open
    match_power: int = 0
    mismatch_power: int = 0
    round: int = 1  # 1 for the first challenge of a hop, k + 1 for the one drawn after round k decided nothing
    commit_deadline: int = 0  # last height for verdict commitments on it
    reveal_deadline: int = 0  # last height for verdict reveals; it is tallied at the end of this block

    @property
    def is_open(self) -> bool:
        return not self.outcome


def verdict_deadlines(s: Session, c: Challenge) -> tuple[int, int]:
    """A challenge's (verdict commit, verdict reveal) deadlines: its own, or its session's for a challenge
    stored before challenges carried their own (those all belong to one round)."""
    if c.reveal_deadline:
        return c.commit_deadline, c.reveal_deadline
    return s.verdict_commit_deadline, s.verdict_reveal_deadline


@dataclass(frozen=True)
class Session:
    id: int
    client: bytes
    model_id: str
    hops: tuple[SessionHop, ...]
    max_tokens: int
    escrow: int
    price: int
    opened_height: int
    status: str = OPEN
    tokens: int = 0
    closed_height: int = 0
    commit_deadline: int = 0
    reveal_deadline: int = 0
    verdict_commit_deadline: int = 0  # the open round's deadlines (every open challenge has these)
    verdict_reveal_deadline: int = 0
    challenges: tuple[Challenge, ...] = ()
    fee: int = 0
    refund: int = 0
    verifier_rewards: int = 0  # the part of ``fee`` paid to validators whose verdicts agreed with the outcome

    def with_(self, **changes: Any) -> Session:
        return replace(self, **changes)

    def hop_index(self, miner: bytes) -> int | None:
        for i, h in enumerate(self.hops):
            if h.miner == miner:
                return i
        return None

    @property
    def route_len(self) -> int:
        """Hops of the route opened with; stand-ins follow them in ``hops``."""
        return sum(1 for h in self.hops if h.stands_in_for < 0)

    def with_served_tokens(self, tokens: int) -> tuple[SessionHop, ...]:
        """``hops`` with each one's ``tokens``: a route hop serves until its first stand-in took over,
        each stand-in from its ``from_token`` until the next one for the same blocks, the last until
        ``tokens``."""
        hops = list(self.hops)
        for r in range(self.route_len):
            chain = [r, *(j for j, h in enumerate(hops) if h.stands_in_for == r)]
            starts = [0, *(min(hops[j].from_token, tokens) for j in chain[1:])]
            ends = [*starts[1:], tokens]
            for j, a, b in zip(chain, starts, ends, strict=True):
                hops[j] = replace(hops[j], tokens=max(0, b - a))
        return tuple(hops)

    def to_state(self) -> dict[str, Any]:
        d = asdict(self)
        d["hops"] = [asdict(h) for h in self.hops]
        d["challenges"] = [asdict(c) for c in self.challenges]
        return d

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> Session:
        return cls(**{**d, "hops": tuple(SessionHop(**h) for h in d["hops"]),
                      "challenges": tuple(Challenge(**c) for c in d["challenges"])})

    def to_json(self) -> dict[str, Any]:
        d = self.to_state()
        d["client"] = encode_address(self.client)
        for h in d["hops"]:
            h.update(miner=encode_address(h["miner"]), commitment=h["commitment"].hex(), root=h["root"].hex())
        for c in d["challenges"]:
            c["miner"] = encode_address(self.hops[c["hop"]].miner)
            c["commits"] = {encode_address(bytes.fromhex(k)): v.hex() for k, v in c["commits"].items()}
            c["reveals"] = {encode_address(bytes.fromhex(k)): v for k, v in c["reveals"].items()}
        d["paid"] = sum(h.paid for h in self.hops)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Session:
        """The inverse of ``to_json`` (genesis import); the derived ``paid`` and each challenge's
        ``miner`` are left out (``validate_genesis`` checks them). Raises KeyError, TypeError or
        ValueError on a malformed entry."""
        fields = {k: v for k, v in d.items() if k != "paid"}
        hops = []
        for h in fields["hops"]:
            hops.append(SessionHop(**{**h, "miner": decode_address(h["miner"]),
                                      "commitment": bytes.fromhex(h["commitment"]), "root": bytes.fromhex(h["root"])}))
        challenges = []
        for c in fields["challenges"]:
            challenges.append(Challenge(**{
                **{k: v for k, v in c.items() if k != "miner"},
                "commits": {decode_address(k).hex(): bytes.fromhex(v) for k, v in c["commits"].items()},
                "reveals": {decode_address(k).hex(): v for k, v in c["reveals"].items()},
            }))
        fields.update(client=decode_address(fields["client"]), hops=tuple(hops), challenges=tuple(challenges))
        return cls(**fields)
