"""SmolLM2-135M through 3 miners on loopback against single-process local generation.

    .venv/bin/python bench/pipeline.py [--threads 1] [--new-tokens 64] [--prompt-tokens 16] [--runs 3]
        [--cpu N | --spread | --no-pin] [--no-warm-ahead] [--write-docs]

Local: the whole model in this process with its own KV cache (``reference.local_generate``). Remote: the
model sharded into 3 blocks, one miner process per block on 127.0.0.1 (each with the same torch thread
count), the client keeping embeddings and head. Same dtype (fp32), batch 1, greedy, 16-token prompt, 64
new tokens; local's weights in transparent huge pages where the platform has them, as the miners' and
the client's are (``nesachain/shard_exec/hugepages.py``). Reported: time to first token, decode tokens/s
(tokens after the first over the time after the first), the remote/local ratio, per-hop overhead =
(remote decode step − local decode step) / 3, and activation bytes per decode step for each compression
scheme; plus memory of a miner against a process holding the whole model. Medians over ``--runs`` after
one warm-up; the ratio is the median of each run's tokens/s over the local run of its round (a round
runs local, then every scheme, each round starting one scheme further on), so that a shared host's slow
drifts fall on both sides. Also each run's median time between consecutive tokens and its ratio (local
over remote, median over rounds): a burst of load from other work moves a median step little and a run's
tokens/s much. And where a decode step's time goes: its layers (local: the model's layers, timed apart
from the LM head in a separate pass each round; remote: the median over decode steps of the miners'
reported compute) and the rest (the median step minus the layers). Not a test.

Where the processes run: by default (``--spread``, where this process may use two CPUs or more) this
process (client and local generation) is pinned to the first CPU it may use and the miners to the others
in turn, consecutive miners on different CPUs (with two CPUs: client 0, miners 1, 0, 1), as miners on
machines of their own keep their own core, and as the README tells a miner's operator to pin it.
``--cpu N`` pins this process and the miners it starts to CPU N, so that local and remote runs get one
and the same core. With ``--no-pin`` each process runs wherever the scheduler puts it, and a miner's core idles
while the other miners and the client work. Layers run slower right after a pause, whether the core
idled, spun or ran other work (``bench/idle_gap.py`` measures each); a miner pauses at every step, local
generation never does. A miner pinned to one CPU warms its compute path just before each step is due
(``nesachain/shard_exec/server/warm.py``; ``--no-warm-ahead`` turns that off); the report says how many
warm-ups each ran.

``--write-docs`` puts the two tables into docs/benchmarks.md between ``<!-- bench:pipeline -->`` …
``<!-- /bench:pipeline -->`` and ``<!-- bench:pipeline-memory -->`` … ``<!-- /bench:pipeline-memory -->``
(``bench/report.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import torch
from report import Lines, add_write_docs_flag, write_sections  # bench/report.py: docs/benchmarks.md
from scratch import scratch_dir  # bench/scratch.py: the shard folder, removed at exit

REPO = Path(__file__).resolve().parents[1]
PROMPT = ("<|im_start|>user\nExplain in a few sentences why the sky is blue and why sunsets are red, "
          "for a curious child.<|im_end|>\n<|im_start|>assistant\n")


def start_miners(shard_dir: Path, ranges: list[str], threads: int, cpus: list[int | None],
                 warm_ahead: bool = True) -> list[tuple[subprocess.Popen[str], str]]:
    """One miner process per block range; miner i pinned to ``cpus[i]`` (None: inherit this process's CPUs)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS=str(threads))
    procs = []
    for rng, cpu in zip(ranges, cpus, strict=True):
        cmd = [sys.executable, "-m", "nesachain.cli.main", "miner", "start", "--model", str(shard_dir),
               "--blocks", rng, "--port", "0", "--threads", str(threads), "--exit-with-parent", str(os.getpid()),
               "--push-allow", "127.0.0.1"]
        if not warm_ahead:
            cmd.append("--no-warm-ahead")
        pin = None if cpu is None else (lambda c=cpu: os.sched_setaffinity(0, {c}))
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                      cwd=str(REPO), preexec_fn=pin))
    out = []
    for p in procs:
        assert p.stdout is not None and p.stderr is not None
        line = p.stdout.readline()  # blocks until the miner prints its URL (or exits)
        if not line.startswith("miner listening"):
            p.kill()
            why = p.stderr.read().strip().splitlines()[-5:]
            raise SystemExit(f"miner failed to start: {line!r}; its last words:\n" + "\n".join(why))
        threading.Thread(target=p.stderr.read, daemon=True).start()  # drain its log so it never blocks
        url = dict(f.split("=", 1) for f in line.split()[2:])["url"]
        out.append((p, url.removeprefix("ws://").removesuffix("/ws")))
    return out


def info(addr: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{addr}/info", timeout=10) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def whole_model_rss(threads: int) -> tuple[float, float]:
    """(RSS MiB of a process that imported torch+transformers only, RSS MiB after loading and running the model)."""
    code = f"""
import torch; torch.set_num_threads({threads})
def rss(): return int([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1]) / 1024
import transformers
from transformers import LlamaForCausalLM
base = rss()
from nesachain.models import load_smollm2
from nesachain.shard_exec.hugepages import module_in_huge_pages
from nesachain.shard_exec.reference import local_generate
m, tok = load_smollm2()
module_in_huge_pages(m)
local_generate(m, torch.tensor([[1, 2, 3, 4]]), 8)
print(base, rss())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=str(REPO),
                         env=dict(os.environ, HF_HUB_OFFLINE="1"))
    base, full = out.stdout.split()[-2:]
    return float(base), float(full)


@torch.inference_mode()
def local_split(model: Any, ids: torch.Tensor, n: int) -> tuple[float, float]:
    """Median ms of a local decode step's layers (``model.model``) and of its LM head, over ``n`` steps."""
    past = model.model(ids, use_cache=True).past_key_values
    tok = torch.tensor([[int(ids[0, -1])]])
    layers, head = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        out = model.model(tok, past_key_values=past, use_cache=True)
        t1 = time.perf_counter()
        tok = model.lm_head(out.last_hidden_state[:, -1:]).argmax(-1)
        head.append(time.perf_counter() - t1)
        layers.append(t1 - t0)
        past = out.past_key_values
    return statistics.median(layers) * 1000, statistics.median(head) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--prompt-tokens", type=int, default=16)
    ap.add_argument("--runs", type=int, default=3)
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--cpu", type=int, default=None, help="pin this process and the miners to this CPU")
    where.add_argument("--spread", action="store_true",
                       help="pin this process to its first CPU and the miners to the others in turn "
                            "(the default where this process may use two CPUs or more)")
    where.add_argument("--no-pin", action="store_true",
                       help="pin nothing: every process runs wherever the scheduler puts it")
    ap.add_argument("--no-warm-ahead", action="store_true",
                    help="start the miners with --no-warm-ahead (pinned miners otherwise warm ahead of each step)")
    ap.add_argument("--out", type=Path, default=REPO / ".cache" / "bench" / "pipeline.json")
    add_write_docs_flag(ap)
    args = ap.parse_args()
    if min(args.threads, args.runs, args.prompt_tokens) < 1 or args.new_tokens < 2:
        ap.error("--threads, --runs and --prompt-tokens must be >= 1, --new-tokens >= 2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.cpu is not None:
        if args.cpu not in os.sched_getaffinity(0):
            ap.error(f"--cpu {args.cpu}: this process may run on CPUs {sorted(os.sched_getaffinity(0))}")
        os.sched_setaffinity(0, {args.cpu})  # inherited by the miners started below
    miner_cpus: list[int | None] = [None, None, None]
    cpus = sorted(os.sched_getaffinity(0))
    if args.spread and len(cpus) < 2:
        ap.error(f"--spread needs at least 2 CPUs; this process may run on {cpus}")
    spread = args.cpu is None and not args.no_pin and len(cpus) >= 2  # the default where it can
    if spread:
        # a CPU of its own for each miner where there are enough, else in turn, never two neighbours on one
        miner_cpus = list(cpus[1:4]) if len(cpus) >= 4 else [cpus[(i + 1) % len(cpus)] for i in range(3)]
        os.sched_setaffinity(0, {cpus[0]})
    torch.set_num_threads(args.threads)

    from nesachain.client import DecoderClient, GenerationStats, parse_route
    from nesachain.models import load_smollm2
    from nesachain.shard_exec.hugepages import module_in_huge_pages
    from nesachain.shard_exec.reference import local_generate
    from nesachain.shard_exec.shard_files import write_shards
    from nesachain.shard_exec.sources import Source

    model, tok = load_smollm2()
    ids = tok(PROMPT, add_special_tokens=False, return_tensors="pt").input_ids[:, : args.prompt_tokens]
    n = args.new_tokens
    shard_dir = scratch_dir("nesa-bench-")
    write_shards(Source("smollm2-135m", model, tok), shard_dir, 3)
    module_in_huge_pages(model)  # local's weights where the miners' and the client's are

    miners = start_miners(shard_dir, ["0:1", "1:2", "2:3"], args.threads, miner_cpus, not args.no_warm_ahead)
    results: dict[str, Any] = {"threads": args.threads, "cpu": args.cpu, "prompt_tokens": int(ids.shape[1]),
                               "spread": [cpus[0], *miner_cpus] if spread else None,
                               "new_tokens": n, "runs": args.runs, "remote": {}, "load_average": os.getloadavg()}
    try:
        hop = ",".join(f"{addr}@{i}:{i + 1}" for i, (_, addr) in enumerate(miners))
        client = DecoderClient.from_shard_dir(shard_dir)
        configs = [("none", "none", True), ("none (relay, no push)", "none", False)]
        configs += [(s, s, True) for s in ("fp16", "blockwise8", "mixed8")]

        async def gen(route: Any, k: int, stats: GenerationStats, stamps: list[float] | None = None) -> list[int]:
            tokens = []
            async for t in client.generate(route, ids, k, stats=stats):
                tokens.append(t)
                if stamps is not None:
                    stamps.append(time.perf_counter())
            return tokens

        def median_step(stamps: list[float]) -> float:
            """The median time between consecutive tokens: a burst of load on a shared host moves it little."""
            return statistics.median(b - a for a, b in itertools.pairwise(stamps))

        routes = {label: parse_route(hop, scheme=scheme, push=push) for label, scheme, push in configs}
        local_generate(model, ids, 8)  # warm-up
        for route in routes.values():
            asyncio.run(gen(route, 8, GenerationStats()))
        # interleave local and remote runs so that load from other processes hits all of them alike
        local_runs: list[tuple[list[int], float, float]] = []
        local_steps: list[float] = []
        local_parts: list[tuple[float, float]] = []
        measured: dict[str, list[tuple[GenerationStats, list[int]]]] = {label: [] for label in routes}
        steps: dict[str, list[float]] = {label: [] for label in routes}
        labels = list(routes)
        for r in range(args.runs):
            stamps: list[float] = []
            local_runs.append(local_generate(model, ids, n, token_times=stamps))
            local_steps.append(median_step(stamps))
            local_parts.append(local_split(model, ids, n - 1))
            for label in labels[r % len(labels):] + labels[: r % len(labels)]:  # each run starts one further on
                stats, stamps = GenerationStats(), []
                measured[label].append((stats, asyncio.run(gen(routes[label], n, stats, stamps))))
                steps[label].append(median_step(stamps))
            print(f"run {r + 1}/{args.runs} done", file=sys.stderr)
        ref_tokens = local_runs[0][0]
        local_ttft = statistics.median(x[1] for x in local_runs)
        local_decode = statistics.median((n - 1) / (x[2] - x[1]) for x in local_runs)
        results["local"] = {"ttft_ms": local_ttft * 1000, "tokens_per_s": local_decode,
                            "median_step_ms": statistics.median(local_steps) * 1000,
                            "layers_ms": statistics.median(x[0] for x in local_parts),
                            "head_ms": statistics.median(x[1] for x in local_parts)}
        for label, runs in measured.items():
            ttft = statistics.median(s.ttft_s for s, _ in runs)
            tps = statistics.median(s.tokens_per_s for s, _ in runs)
            # each run against the local run of its own round: slow drifts of a shared host cancel
            ratio = statistics.median(s.tokens_per_s * (x[2] - x[1]) / (n - 1)
                                      for (s, _), x in zip(runs, local_runs, strict=True))
            step_ratio = statistics.median(a / b for a, b in zip(local_steps, steps[label], strict=True))
            st = runs[0][0]
            step_ms = 1000 / tps
            compute = statistics.median(sum(c) for s, _ in runs for c in s.compute_ms)  # over every decode step
            nb = len(st.bytes_per_step[0])
            bytes_step = [statistics.mean(b[i] for b in st.bytes_per_step) for i in range(nb)]
            results["remote"][label] = {
                "ttft_ms": ttft * 1000, "tokens_per_s": tps, "ratio": ratio,
                "median_step_ms": statistics.median(steps[label]) * 1000, "median_step_ratio": step_ratio,
                "per_hop_overhead_ms": (step_ms - 1000 / local_decode) / 3,
                "miner_compute_ms_per_step": compute, "bytes_per_boundary": bytes_step,
                "bytes_per_step": sum(bytes_step), "same_tokens_as_local": runs[0][1] == ref_tokens,
            }
        infos = [info(addr) for _, addr in miners]
    finally:
        for p, _ in miners:
            os.kill(p.pid, signal.SIGTERM)
        for p, _ in miners:
            p.wait(timeout=30)
    base, full = whole_model_rss(args.threads)
    whole_params = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    results["memory"] = {"import_baseline_rss_mib": base, "whole_model_rss_mib": full, "whole_params_mib": whole_params,
                         "miners": [{"blocks": i["blocks"], "param_mib": i["param_bytes"] / 2**20,
                                     "rss_mib": i["rss_bytes"] / 2**20, "warm_ahead": i["warm_ahead"],
                                     "warm_ups": i["warm_ups"], "steps_served": i["steps_served"],
                                     "tokens_per_s_at_start": i["throughput_tokens_per_s"]} for i in infos]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    tables = render(results)
    if args.write_docs:
        write_sections(tables)


def render(r: dict[str, Any]) -> dict[str, str]:
    """Print the run's two tables; returns them by their docs/benchmarks.md section names."""
    loc = r["local"]
    pinned = ", nothing pinned" if r.get("cpu") is None else f", every process on CPU {r['cpu']}"
    if r.get("spread"):
        c = r["spread"]
        pinned = f", client and local on CPU {c[0]}, miners on CPUs {c[1]}, {c[2]}, {c[3]}"
    md = Lines()
    md(f"SmolLM2-135M, 3 miners on loopback vs local (fp32, batch 1, {r['prompt_tokens']}-token prompt, "
       f"{r['new_tokens']} new tokens, greedy, {r['threads']} torch thread(s) per process{pinned}); "
       f"load average during the run {' / '.join(f'{x:.2f}' for x in r['load_average'])}.")
    md()
    md("| run | TTFT ms | decode tokens/s | ratio to local | median step ms | its ratio | per-hop overhead ms "
       "| layers ms/step | rest ms/step | activation bytes/step (client→m0, m0→m1, m1→m2, m2→client) "
       "| same tokens |")
    md("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    md(f"| local (whole model, KV cache) | {loc['ttft_ms']:.1f} | {loc['tokens_per_s']:.1f} | 1.00 "
       f"| {loc['median_step_ms']:.1f} | 1.00 | – | {loc['layers_ms']:.1f} "
       f"| {loc['median_step_ms'] - loc['layers_ms']:.1f} | – | – |")
    for label, v in r["remote"].items():
        b = " / ".join(f"{x:,.0f}" for x in v["bytes_per_boundary"])
        md(f"| 3 miners, {label} | {v['ttft_ms']:.1f} | {v['tokens_per_s']:.1f} | {v['ratio']:.2f} | "
           f"{v['median_step_ms']:.1f} | {v['median_step_ratio']:.2f} | "
           f"{v['per_hop_overhead_ms']:.2f} | {v['miner_compute_ms_per_step']:.1f} | "
           f"{v['median_step_ms'] - v['miner_compute_ms_per_step']:.1f} | {b} (Σ {v['bytes_per_step']:,.0f}) "
           f"| {'yes' if v['same_tokens_as_local'] else 'no'} |")
    md()
    md(f"Medians over {r['runs']} runs. layers: local, the model's 30 layers (median of a decode step); "
       f"remote, the three miners' reported compute (median over decode steps of their sum: layers, frame "
       f"encoding, the hand-off to the compute thread). rest: the median step minus that (local: embedding "
       f"and LM head, {loc['head_ms']:.1f} ms of it the head; remote: the same plus the hops and frame decoding).")
    m = r["memory"]
    warm = [f"{x['warm_ups'] / max(1, x['steps_served']):.1f}" for x in m["miners"] if x.get("warm_ahead")]
    md("Miners warming ahead of their steps (pinned to one CPU): "
       + (f"all three, {' / '.join(warm)} warm-ups per step served." if len(warm) == 3 else
          "none." if not warm else f"{len(warm)} of 3."))
    mem = Lines()
    print("\nMemory: a miner against the whole model\n")
    mem("| process | weights MiB | RSS MiB |")
    mem("|---|---:|---:|")
    mem(f"| python + torch + transformers imported, no model | 0 | {m['import_baseline_rss_mib']:.0f} |")
    mem(f"| whole model (local generation) | {m['whole_params_mib']:.1f} | {m['whole_model_rss_mib']:.0f} |")
    for x in m["miners"]:
        mem(f"| miner blocks {x['blocks'][0]}:{x['blocks'][1]} | {x['param_mib']:.1f} | {x['rss_mib']:.0f} |")
    return {"pipeline": md.text(), "pipeline-memory": mem.text()}


if __name__ == "__main__":
    main()
