"""Memory per miner for a mixture-of-experts model sharded by layer, against one process holding it whole.

    .venv/bin/python bench/moe_memory.py [--layers 8] [--experts 8] [--hidden 512] [--ffn 1024] [--blocks 4]
        [--write-docs]

A random-init Mixtral-style model (``from_config``: nothing is downloaded; top-2 of ``--experts`` experts in
every layer, grouped-query attention, untied head) is saved as a Hugging Face folder and sharded into
``--blocks`` blocks by ``write_shards``, which finds its layers from its own forward (the experts are inside
each layer, so a block holds whole layers, experts and router together). One miner process per block on
127.0.0.1 (``--threads 1``) serves a relayed route; the client generates 16 greedy tokens through it and they
must be the whole model's. Reported per miner: the bytes of its layers' weights (``/info`` ``param_bytes``) and
its resident memory (``rss_bytes``) after the generation; and, for comparison, the resident memory of a process
that imported torch and transformers only, and of one that loaded the whole model and generated the same
tokens. Not a test.

``--write-docs`` puts the table into docs/benchmarks.md between ``<!-- bench:moe-memory -->`` and
``<!-- /bench:moe-memory -->`` (``bench/report.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import torch
from pipeline import info, start_miners  # bench/pipeline.py: miner processes on 127.0.0.1, their /info
from report import Lines, add_write_docs_flag, write_sections  # bench/report.py: docs/benchmarks.md
from scratch import scratch_dir  # bench/scratch.py: the folders, removed at exit

REPO = Path(__file__).resolve().parents[1]
NEW_TOKENS = 16
RSS = "def rss(): return int([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1]) / 1024"


def whole_rss(folder: Path, ids: list[int]) -> tuple[float, float, list[int]]:
    """(RSS MiB after importing torch and transformers, RSS MiB after loading and running the whole model,
    its greedy tokens)."""
    code = f"""
import json, torch; torch.set_num_threads(1)
{RSS}
import transformers
base = rss()
from nesachain.shard_exec.reference import local_generate
model = transformers.AutoModelForCausalLM.from_pretrained({str(folder)!r}, dtype=torch.float32).eval()
tokens, _, _ = local_generate(model, torch.tensor([{ids}]), {NEW_TOKENS})
print(json.dumps([base, rss(), tokens]))
"""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    base, after, tokens = json.loads(out.stdout.strip().splitlines()[-1])
    return float(base), float(after), list(tokens)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--ffn", type=int, default=1024, help="each expert's intermediate size")
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--blocks", type=int, default=4)
    add_write_docs_flag(ap)
    args = ap.parse_args()
    if min(args.layers, args.experts, args.hidden, args.ffn, args.blocks) < 1 or args.blocks > args.layers:
        ap.error("sizes must be >= 1, and --blocks at most --layers")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)

    import transformers

    from nesachain.client import parse_route
    from nesachain.client.models import DecoderClient
    from nesachain.shard_exec.hf_shard import example_ids
    from nesachain.shard_exec.shard_files import write_shards
    from nesachain.shard_exec.sources import load_source

    config = transformers.MixtralConfig(
        vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=args.ffn, num_hidden_layers=args.layers,
        num_attention_heads=8, num_key_value_heads=2, num_local_experts=args.experts, num_experts_per_tok=2,
        tie_word_embeddings=False, initializer_range=0.1)
    torch.manual_seed(0)
    model = transformers.MixtralForCausalLM(config).eval()
    folder = scratch_dir("nesa-moe-hf-") / "mixtral"
    model.save_pretrained(str(folder))
    layer = model.model.layers[0]
    experts = sum(p.numel() for n, p in layer.named_parameters() if ".experts." in f".{n}")
    per_layer = sum(p.numel() for p in layer.parameters())
    total = sum(p.numel() for p in model.parameters())
    del model
    src = load_source(str(folder))
    shard_dir = scratch_dir("nesa-moe-shards-")
    write_shards(src, shard_dir, args.blocks, replace=True)
    ids = example_ids(src.model.config, 8, seed=3)
    del src
    ranges = [f"{i}:{i + 1}" for i in range(args.blocks)]
    miners = start_miners(shard_dir, ranges, threads=1, cpus=[None] * len(ranges))
    try:
        client = DecoderClient.from_shard_dir(shard_dir)
        route = parse_route(",".join(f"{addr}@{r}" for (_, addr), r in zip(miners, ranges, strict=True)), push=False)

        async def gen() -> list[int]:
            return [t async for t in client.generate(route, ids, NEW_TOKENS)]

        tokens = asyncio.run(gen())
        infos = [info(addr) for _, addr in miners]
    finally:
        for p, _ in miners:
            os.kill(p.pid, signal.SIGTERM)
        for p, _ in miners:
            p.wait(timeout=30)
    base, whole, whole_tokens = whole_rss(folder, ids[0].tolist())
    if tokens != whole_tokens:
        raise SystemExit(f"the route's tokens {tokens} are not the whole model's {whole_tokens}")

    md = Lines()
    md(f"Mixtral-style random-init model: {args.layers} layers of {args.experts} experts (top 2; {args.hidden} wide, "
       f"experts {args.ffn}), {total / 1e6:.0f} M parameters ({total * 4 / 2**20:.0f} MiB fp32), experts "
       f"{100 * experts / per_layer:.0f} % of a layer; sharded into {args.blocks} blocks by layer, one miner process "
       f"per block; the route's {NEW_TOKENS} greedy tokens identical to the whole model's.")
    md()
    md("| process | weights held, MiB | RSS after generating, MiB |")
    md("|---|---|---|")
    md(f"| torch + transformers imported, no model | 0 | {base:.0f} |")
    md(f"| the whole model (from_pretrained, generate) | {total * 4 / 2**20:.0f} | {whole:.0f} |")
    for r, x in zip(ranges, infos, strict=True):
        md(f"| miner blocks {r} (layers {x['units'][0]}:{x['units'][1]}) | {x['param_bytes'] / 2**20:.0f} | "
           f"{x['rss_bytes'] / 2**20:.0f} |")
    if args.write_docs:
        write_sections({"moe-memory": md.text()})


if __name__ == "__main__":
    main()
