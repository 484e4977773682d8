"""A decoder stage's warm-up (``nesachain.shard_exec.hf_stages``): it stops between two operations once a
step comes, and changes no session's results."""

from __future__ import annotations

from collections.abc import Callable

import torch
from shard_exec_support import Sharded

from nesachain.shard_exec.shard_files import load_stage


def _stop_after(n: int, calls: list[int]) -> Callable[[], bool]:
    """A stop flag that is asked once per operation and turns true at the (n+1)-th."""
    def stop() -> bool:
        calls.append(1)
        return len(calls) > n

    return stop


def test_a_warm_up_stops_between_operations_once_a_step_comes(smol: Sharded) -> None:
    stage = load_stage(smol.dir, 1, 2)
    layer = stage.layers[0]  # type: ignore[attr-defined]
    leaves = [m for m in layer.modules() if next(m.children(), None) is None]
    hooks = [dict(m._forward_pre_hooks) | dict(m._forward_hooks) for m in layer.modules()]  # the stage's own
    calls: list[int] = []
    stage.warm(_stop_after(10**6, calls))
    assert len(calls) == len(leaves) >= 7  # asked before each of the layer's operations: projections, MLP, norms
    calls.clear()
    stage.warm(_stop_after(2, calls))
    assert len(calls) == 3  # it left at the third
    calls.clear()
    stage.warm(_stop_after(0, calls))  # a step already waiting: it leaves before the layer's first operation
    assert len(calls) == 1
    assert [dict(m._forward_pre_hooks) | dict(m._forward_hooks) for m in layer.modules()] == hooks  # none stays


def test_decoder_warm_up_leaves_a_session_bit_identical(smol: Sharded) -> None:
    stage = load_stage(smol.dir, 1, 2)
    hidden = torch.randn(1, 12, stage.width, generator=torch.Generator().manual_seed(3))  # type: ignore[attr-defined]

    def run(warm: bool) -> list[torch.Tensor]:
        state = stage.new_state(1, 16)
        outs = [stage.run({"hidden": hidden[:, :8]}, {}, 0, state)[0]["hidden"]]
        for i in range(8, 12):
            if warm:
                stage.warm()
                stage.warm(_stop_after(4, []))  # one left half-way
                stage.warm()
            outs.append(stage.run({"hidden": hidden[:, i:i + 1]}, {}, i, state)[0]["hidden"])
        return outs

    plain, warmed = run(False), run(True)
    assert all(torch.equal(a, b) for a, b in zip(plain, warmed, strict=True))


def test_decoder_stage_runs_from_two_threads_at_once_as_one_at_a_time(tiny_gpt2: Sharded) -> None:
    """A verifier judges challenges in a pool: two sessions stepped at once on one stage get what each gets
    alone (a stage's cut of the model's forward is kept per thread)."""
    from concurrent.futures import ThreadPoolExecutor

    stage = load_stage(tiny_gpt2.dir, 0, 1)
    inputs = [torch.randn(1, 24, 64, generator=torch.Generator().manual_seed(s)) for s in (1, 2)]

    def session(hidden: torch.Tensor) -> list[torch.Tensor]:
        state = stage.new_state(1, 24)
        outs = [stage.run({"hidden": hidden[:, :4]}, {}, 0, state)[0]["hidden"]]
        outs += [stage.run({"hidden": hidden[:, i:i + 1]}, {}, i, state)[0]["hidden"] for i in range(4, 24)]
        return outs

    alone = [session(h) for h in inputs]
    for _ in range(3):
        with ThreadPoolExecutor(2) as pool:
            together = list(pool.map(session, inputs))
        assert all(torch.equal(a, b) for x, y in zip(alone, together, strict=True) for a, b in zip(x, y, strict=True))
