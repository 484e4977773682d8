"""``bench/pipeline.py`` on two checkouts in turn, to judge a change of the compute path on a shared, noisy host.

    .venv/bin/python bench/pipeline_ab.py OLD_TREE NEW_TREE [--rounds 6] [--out DIR] [--write-docs]
    .venv/bin/python bench/pipeline_ab.py OLD_TREE NEW_TREE --summarise DIR [--write-docs]

Make the checkouts with ``git worktree add /tmp/ab-old <commit>`` (and the same for the new one). Each round
runs ``bench/pipeline.py --runs 1`` (its default pinning) in one checkout, then in the other, the next round
starting with the other one; each on its own code (``PYTHONPATH``, and its miners from its own folder), the same
converted SmolLM2 (``NESA_CACHE_DIR``, this checkout's ``.cache`` unless set). Each run writes its JSON to
``DIR/{old,new}-ROUND.json``; ``--summarise DIR`` reads such files instead of running.

Reported for each side, over its runs: the median and range (min–max) of the pipeline's decode tokens/s
(3 miners, no compression, pushes), of its ratio to local generation in the same run (which cancels the host's
slow drifts), of local generation's tokens/s, and of a middle miner's RSS; and new/old of the medians. Not a test.

``--write-docs`` puts the table into docs/benchmarks.md between ``<!-- bench:pipeline-ab -->`` and
``<!-- /bench:pipeline-ab -->`` (``bench/report.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from report import Lines, add_write_docs_flag, write_sections  # bench/report.py: docs/benchmarks.md

REPO = Path(__file__).resolve().parents[1]
SIDES = ("old", "new")


def run_rounds(trees: dict[str, Path], rounds: int, out: Path) -> None:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.setdefault("NESA_CACHE_DIR", str(REPO / ".cache"))
    out.mkdir(parents=True, exist_ok=True)
    for r in range(1, rounds + 1):
        order = SIDES if r % 2 else SIDES[::-1]
        for side in order:
            tree = trees[side]
            target = out / f"{side}-{r}.json"
            cmd = [sys.executable, str(tree / "bench" / "pipeline.py"), "--runs", "1", "--out", str(target)]
            done = subprocess.run(cmd, cwd=str(tree), env=dict(env, PYTHONPATH=str(tree)), capture_output=True,
                                  text=True)
            if done.returncode != 0:
                raise SystemExit(f"{side} round {r} failed: " + " | ".join(done.stderr.splitlines()[-5:]))
            print(f"round {r}: {side} done", file=sys.stderr, flush=True)


def load(out: Path) -> dict[str, list[dict[str, Any]]]:
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    for side in SIDES:
        for path in sorted(out.glob(f"{side}-*.json"), key=lambda p: int(p.stem.split("-")[1])):
            runs[side].append(json.loads(path.read_text()))
    if not all(runs.values()):
        raise SystemExit(f"{out} holds no old-N.json and new-N.json results")
    return runs


def summarise(runs: dict[str, list[dict[str, Any]]], trees: dict[str, Path]) -> str:
    def figures(r: dict[str, Any]) -> dict[str, float]:
        middle = r["memory"]["miners"][1]
        return {"tokens_per_s": r["remote"]["none"]["tokens_per_s"], "ratio": r["remote"]["none"]["ratio"],
                "local": r["local"]["tokens_per_s"], "rss": middle["rss_mib"]}

    per = {side: [figures(r) for r in rs] for side, rs in runs.items()}
    md = Lines()
    md(f"`bench/pipeline.py --runs 1` (SmolLM2-135M, 3 miners, scheme none, pushes; its default pinning), "
       f"{len(per['old'])} runs of each side in turn: old = `{_describe(trees['old'])}`, "
       f"new = `{_describe(trees['new'])}`. Median (min–max) over the runs.")
    md()
    md("| figure | old | new | new / old (medians) |")
    md("|---|---|---|---|")
    names = {"tokens_per_s": "pipeline decode tokens/s", "ratio": "its ratio to local in the same run",
             "local": "local generation tokens/s", "rss": "RSS of the miner of block 1:2, MiB"}
    for key, name in names.items():
        cells = []
        meds = []
        for side in SIDES:
            xs = [f[key] for f in per[side]]
            meds.append(statistics.median(xs))
            cells.append(f"{meds[-1]:.{0 if key == 'rss' else 2}f} ({min(xs):.{0 if key == 'rss' else 2}f}–"
                         f"{max(xs):.{0 if key == 'rss' else 2}f})")
        md(f"| {name} | {cells[0]} | {cells[1]} | {meds[1] / meds[0]:.3f} |")
    return md.text()


def _describe(tree: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(tree), "log", "-1", "--format=%h %s"], capture_output=True,
                             text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return str(tree)
    return out[:72]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--out", type=Path, default=REPO / ".cache" / "bench" / "pipeline-ab")
    ap.add_argument("--summarise", type=Path, default=None, help="read the runs' JSON from this folder")
    add_write_docs_flag(ap)
    args = ap.parse_args()
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    for side, tree in trees.items():
        if not (tree / "bench" / "pipeline.py").is_file():
            ap.error(f"{side} checkout {tree} has no bench/pipeline.py")
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    folder = args.summarise
    if folder is None:
        run_rounds(trees, args.rounds, args.out)
        folder = args.out
    table = summarise(load(folder), trees)
    if args.write_docs:
        write_sections({"pipeline-ab": table})


if __name__ == "__main__":
    main()
