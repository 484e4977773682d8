"""How long a verifier takes to check a challenged decode step: one pass against step by step.

    .venv/bin/python bench/replay.py [--prompt 16] [--steps 4,16,32] [--rounds 3] [--threads 1] [--write-docs]

To judge step k of a miner serving SmolLM2-135M's middle 10 layers, a verifier replays steps 0..k
(a prefill, then one token per step) on its own copy of the blocks. Step by step, as the miner ran
them, that is one pass over the 10 layers' weights per step; the steps of one decoder session feed
consecutive positions, so ``ShardReplayer.replay`` runs them as one forward pass instead. This
prints both times (medians over rounds) and how far the one-pass output is from the step-by-step
one (median element-wise relative deviation, the verifier's measure, and the largest absolute
difference); the verifier calls a median deviation up to 2e-3 a match. The inputs are the real
hidden states entering layer 10 for a fixed English text. Not a test: times depend on the machine.
``--write-docs`` puts the table into docs/benchmarks.md between ``<!-- bench:replay -->`` and
``<!-- /bench:replay -->`` (``bench/report.py``).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from report import Lines, add_write_docs_flag, write_section  # bench/report.py: docs/benchmarks.md
from scratch import scratch_dir  # bench/scratch.py: the shard folder, removed at exit

TEXT = ("The history of Rome spans more than two and a half thousand years. According to legend the city "
        "was founded in 753 BC by Romulus; it grew from a small settlement on the Tiber into the centre of an "
        "empire that reached from Britain to Mesopotamia, and its law, language and roads outlived it.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompt", type=int, default=16, help="prefill tokens (default 16)")
    ap.add_argument("--steps", default="4,16,32", help="challenged decode steps k (comma-separated)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    add_write_docs_flag(ap)
    args = ap.parse_args()
    try:
        ks = [int(k) for k in args.steps.split(",")]
    except ValueError:
        ap.error(f"--steps must be comma-separated integers, got {args.steps!r}")
    if not (args.prompt >= 1 and args.rounds >= 1 and args.threads >= 1 and ks and min(ks) >= 1):
        ap.error("--prompt, --rounds, --threads and every step must be >= 1")
    torch.set_num_threads(args.threads)

    from nesachain.models import load_smollm2
    from nesachain.protocol.frames import encode_tensor
    from nesachain.shard_exec.shard_files import block_hashes, read_manifest, write_shards
    from nesachain.shard_exec.sources import Source
    from nesachain.verifier.replay import ShardReplayer
    from nesachain.verifier.verdicts import relative_deviation

    model, tok = load_smollm2()
    ids = tok(TEXT, return_tensors="pt").input_ids
    need = args.prompt + max(ks)
    if ids.shape[1] < need:
        ap.error(f"the text has {ids.shape[1]} tokens; --prompt + the largest step must be <= that")
    with torch.inference_mode():
        hidden = model(ids[:, :need], output_hidden_states=True).hidden_states[10]  # what enters layer 10
    shard_dir = scratch_dir("nesa-replay-")
    write_shards(Source("smollm2-135m", model, tok), shard_dir, 3)
    del model
    hashes = block_hashes(read_manifest(shard_dir))
    replayer = ShardReplayer({"smollm2-135m": shard_dir}, lambda _: hashes)
    stage = replayer._stage("smollm2-135m", 1, 2)
    spans = [(0, args.prompt)] + [(p, p + 1) for p in range(args.prompt, need)]
    steps = [{"in": {"hidden": encode_tensor(hidden[:, a:b], "none")}, "out": {}, "position": a} for a, b in spans]

    def one_pass(k: int) -> torch.Tensor:
        return replayer.replay("smollm2-135m", 1, 2, steps[: k + 1])["hidden"]

    def step_by_step(k: int) -> torch.Tensor:
        state = stage.new_state(1, args.prompt + k)
        with torch.inference_mode():
            for a, b in spans[: k + 1]:
                out, _ = stage.run({"hidden": hidden[:, a:b]}, {}, a, state)
        return out["hidden"]

    md = Lines()
    md(f"Verifier replay of steps 0..k, SmolLM2-135M layers 10:20 (the real hidden states of a fixed text), "
       f"{args.prompt}-token prefill, {args.threads} thread(s), median of {args.rounds} rounds.")
    md()
    md("| k | step by step ms | one pass ms | speed-up | median relative deviation | max abs difference |")
    md("|---:|---:|---:|---:|---:|---:|")
    for k in ks:
        times: dict[str, list[float]] = {"seq": [], "one": []}
        for _ in range(args.rounds):
            for name, fn in (("seq", step_by_step), ("one", one_pass)):
                t0 = time.perf_counter()
                fn(k)
                times[name].append((time.perf_counter() - t0) * 1000)
        seq, one = statistics.median(times["seq"]), statistics.median(times["one"])
        a, b = step_by_step(k), one_pass(k)
        md(f"| {k} | {seq:.1f} | {one:.1f} | {seq / one:.1f}x | {relative_deviation(b, a):.1e} | "
           f"{(a - b).abs().max().item():.1e} |")
    if args.write_docs:
        write_section("replay", md.text())


if __name__ == "__main__":
    main()
