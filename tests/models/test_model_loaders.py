"""Packaged model loaders: each loads offline and computes something sensible."""

from __future__ import annotations

import torch

import nesachain.models as models


def test_models_public_api_is_stable() -> None:
    assert set(models.__all__) >= {"load_smollm2", "load_minilm", "load_efficientnet_lite0", "cache_root"}


def test_cache_root_env_override_is_used(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("NESA_CACHE_DIR", str(tmp_path))
    assert models.cache_root() == tmp_path.resolve()
    assert models.smollm2_cache_dir() == tmp_path.resolve() / "models" / "smollm2-135m"


def test_load_smollm2_greedy_answer_is_paris() -> None:
    model, tok = models.load_smollm2()
    assert model.config.num_hidden_layers == 30
    assert next(model.parameters()).dtype == torch.float32
    prompt = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    ids = tok(prompt, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=10, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids.shape[1] :])
    assert tok.eos_token == "<|im_end|>"


def test_load_minilm_similar_sentences_are_closer() -> None:
    model, tok = models.load_minilm()
    batch = tok(["A cat sits on the mat.", "A kitten rests on a rug.", "Stock prices fell sharply."],
                padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    emb = models.mean_pool(hidden, batch["attention_mask"])
    assert emb.shape == (3, 384)
    assert float(emb[0] @ emb[1]) > float(emb[0] @ emb[2]) + 0.2


def test_load_efficientnet_lite0_outputs_imagenet_logits() -> None:
    model = models.load_efficientnet_lite0()
    torch.manual_seed(0)
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 224, 224))
    assert logits.shape == (2, 1000)
    assert torch.isfinite(logits).all()
