"""The verifier's process (``nesachain.verifier.run``): its pass loop on virtual time, and the node's block time it
checks its own clock against."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from nesachain.errors import NesaError, RPCError
from nesachain.verifier.run import WARM_EVERY, block_time, run_verifier
from tests.virtual_time import run_on_virtual_time


class ScriptedVerifier:
    """Each pass raises the next of ``errors`` (None: a pass that goes well); past the script it stops the loop."""

    operator = "nesa1operator"

    def __init__(self, errors: list[BaseException | None], stop: asyncio.Event) -> None:
        self.errors, self.stop = errors, stop
        self.ticks = self.warms = 0
        self.closed = False

    def warm(self) -> None:
        self.warms += 1

    def tick(self) -> int:
        self.ticks += 1
        if self.ticks > len(self.errors):
            self.stop.set()
            return 0
        error = self.errors[self.ticks - 1]
        if error is not None:
            raise error
        return 1

    def close(self) -> None:
        self.closed = True


def test_run_verifier_pass_that_raises_anything_is_logged_and_the_next_goes_on() -> None:
    """Failed before: ``run_verifier`` caught only NesaError, so the first TypeError from a miner's log ended the
    process (checked: it died after 1 pass)."""
    errors: list[BaseException | None] = [TypeError("list indices must be integers"), ValueError("bad hex"),
                                          RPCError("node down"), KeyError("steps"), None, RecursionError(),
                                          NesaError("tx refused")] * 4

    async def main() -> ScriptedVerifier:
        stop = asyncio.Event()
        v = ScriptedVerifier(errors, stop)
        await run_verifier(v, poll=1.0, stop=stop)
        return v

    v = run_on_virtual_time(main())
    assert v.ticks == len(errors) + 1 and v.closed
    assert v.warms == -(-v.ticks // WARM_EVERY)  # a warm-up every WARM_EVERY passes, from the first


@pytest.mark.parametrize(("text", "want"), [
    ("2026-12-07T15:20:01.123456789Z", datetime(2026, 12, 7, 15, 20, 1, tzinfo=UTC).timestamp() + 0.123456789),
    ("2026-12-07T15:20:01Z", datetime(2026, 12, 7, 15, 20, 1, tzinfo=UTC).timestamp()),
    ("2026-12-07T17:20:01.5+02:00", datetime(2026, 12, 7, 15, 20, 1, tzinfo=UTC).timestamp() + 0.5),
])
def test_block_time_cometbft_rfc3339_gives_unix_seconds(text: str, want: float) -> None:
    class Node:
        def status(self) -> dict[str, Any]:
            return {"sync_info": {"latest_block_time": text}}

    assert block_time(Node()) == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize("text", [None, 17, "yesterday", "2026-12-07 15:20:01Z", "2026-12-07T15:20:01"])
def test_block_time_anything_else_is_an_rpc_error(text: object) -> None:
    class Node:
        def status(self) -> dict[str, Any]:
            return {"sync_info": {"latest_block_time": text}}

    with pytest.raises(RPCError):
        block_time(Node())
