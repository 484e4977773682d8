"""How fast a miner's layers run after a pause: the same decode steps back to back and after gaps.

    .venv/bin/python bench/idle_gap.py [--gap-ms 45] [--rounds 3] [--threads 1] [--write-docs]

One process loads the middle 10 of SmolLM2-135M's 30 layers as a miner does (``load_stage`` on a
3-block shard folder) and runs 64 one-token decode steps after a 16-token prefill, timing each step
(the median of each round is printed). Before every step it waits ``--gap-ms`` in one of these ways:

- ``none``: no gap, steps back to back (what local generation does: the next layers follow at once);
- ``sleep``: ``time.sleep``, the core idles (what a miner does while the other miners and the client
  work, when they run on other cores);
- ``spin``: a Python busy loop (the core is busy, but with no vector or memory work);
- ``other layers``: the other 20 layers' weights streamed through a matrix-vector product (what the
  core does when the other stages run in this same process, as in local generation);
- ``sleep, touch weights``: the sleep, then this stage's own weights through a matrix-vector product;
- ``sleep, warm()``: the sleep, then ``stage.warm()`` (its first layer on a scratch token);
- ``sleep, warm(), 2 ms``: the same with the last 2 ms of the gap after the warm-up (how fast its gain
  fades);
- ``sleep, warm() x3``: three warm-ups back to back at the end of the gap, what a miner pinned to one CPU
  does just before a step is due (``nesachain/shard_exec/server/warm.py``: back to back until it comes).

The per-layer line shows where a slow step loses its time: spread over all layers, or in the first.
Not a test: numbers depend on the machine and its load. ``--write-docs`` puts the tables into
docs/benchmarks.md between ``<!-- bench:idle_gap -->`` and ``<!-- /bench:idle_gap -->`` (``bench/report.py``).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from collections.abc import Callable

import torch
from report import Lines, add_write_docs_flag, write_section  # bench/report.py: docs/benchmarks.md
from scratch import scratch_dir  # bench/scratch.py: the shard folder, removed at exit

PREFILL, STEPS = 16, 64


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gap-ms", type=float, default=45.0, help="the pause before each step (default 45 ms)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    add_write_docs_flag(ap)
    args = ap.parse_args()
    if not (args.gap_ms >= 0 and args.rounds >= 1 and args.threads >= 1):
        ap.error("--gap-ms must be >= 0, --rounds and --threads >= 1")
    torch.set_num_threads(args.threads)

    from nesachain.models import load_smollm2
    from nesachain.shard_exec.shard_files import load_stage, write_shards
    from nesachain.shard_exec.sources import Source

    model, tok = load_smollm2()
    shard_dir = scratch_dir("nesa-idle-")
    write_shards(Source("smollm2-135m", model, tok), shard_dir, 3)
    others = [p.detach().clone() for i in (0, 2) for p in model.model.layers[i * 10:(i + 1) * 10].parameters()
              if p.ndim == 2]  # the other two stages' matrices, as plain tensors
    del model
    stage = load_stage(shard_dir, 1, 2)
    marks: list[float] = []
    for layer in stage.layers:  # type: ignore[attr-defined]
        layer.register_forward_pre_hook(lambda *_: marks.append(time.perf_counter()))
    gap = args.gap_ms / 1000
    vec = torch.randn(max(max(w.shape) for w in others))

    def spin() -> None:
        end = time.perf_counter() + gap
        while time.perf_counter() < end:
            pass

    def other_layers() -> None:
        for w in others:
            w @ vec[: w.shape[1]]

    own = [p.detach().view(p.shape[0], -1) for p in stage.layers.parameters() if p.ndim == 2]  # type: ignore[attr-defined]

    def touch_weights() -> None:
        time.sleep(gap)
        for w in own:
            w @ vec[: w.shape[1]]

    def warm(times: int, idle_after: float = 0.0) -> Callable[[], None]:
        def wait() -> None:
            time.sleep(max(0.0, gap - idle_after))
            for _ in range(times):
                stage.warm()
            time.sleep(idle_after)

        return wait

    waits: dict[str, Callable[[], None] | None] = {
        "none": None, "sleep": lambda: time.sleep(gap), "spin": spin, "other layers": other_layers,
        "sleep, touch weights": touch_weights, "sleep, warm()": warm(1), "sleep, warm(), 2 ms": warm(1, 0.002),
        "sleep, warm() x3": warm(3)}
    hidden = torch.randn(1, PREFILL + STEPS, stage.width)  # type: ignore[attr-defined]

    def run(wait: Callable[[], None] | None) -> tuple[float, list[float]]:
        state = stage.new_state(1, PREFILL + STEPS)
        stage.run({"hidden": hidden[:, :PREFILL]}, {}, 0, state)
        totals, per = [], []
        for i in range(STEPS - 1):
            if wait is not None:
                wait()
            marks.clear()
            t0 = time.perf_counter()
            stage.run({"hidden": hidden[:, PREFILL + i: PREFILL + i + 1]}, {}, PREFILL + i, state)
            t1 = time.perf_counter()
            ts = [t0, *marks, t1]
            totals.append(t1 - t0)
            per.append([b - a for a, b in itertools.pairwise(ts)])
        return statistics.median(totals) * 1000, [statistics.median(p[j] for p in per) * 1000
                                                   for j in range(len(per[0]))]

    run(None)  # warm-up
    t0 = time.perf_counter()
    other_layers()
    other_ms = (time.perf_counter() - t0) * 1000
    results: dict[str, list[float]] = {k: [] for k in waits}
    layers: dict[str, list[list[float]]] = {k: [] for k in waits}
    for r in range(args.rounds):
        for name, wait in waits.items():  # interleaved: a slow spell of a shared host falls on all of them
            total, per = run(wait)
            results[name].append(total)
            layers[name].append(per)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    base = statistics.median(results["none"])
    md = Lines()
    md(f"SmolLM2-135M layers 10-19, one-token decode steps (median of each round), {args.threads} thread(s), "
       f"gap {args.gap_ms:g} ms (the 'other layers' gap took {other_ms:.1f} ms).")
    md()
    md("| gap | " + " | ".join(f"round {r + 1} ms" for r in range(args.rounds)) + " | median vs none |")
    md("|---|" + "---:|" * (args.rounds + 1))
    for name, ms in results.items():
        md(f"| {name} | " + " | ".join(f"{x:.2f}" for x in ms) + f" | {statistics.median(ms) / base:.2f} |")
    md()
    md("Per layer, last round, ms (the first column is the step's own preamble before layer 0):")
    md()
    width = len(next(iter(layers.values()))[-1])
    md("| gap | preamble | " + " | ".join(f"layer {10 + j}" for j in range(width - 1)) + " |")
    md("|---|" + "---:|" * width)
    for name, per_rounds in layers.items():
        md(f"| {name} | " + " | ".join(f"{x:.2f}" for x in per_rounds[-1]) + " |")
    if args.write_docs:
        write_section("idle_gap", md.text())


if __name__ == "__main__":
    main()
