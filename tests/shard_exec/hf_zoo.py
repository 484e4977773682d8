"""Tiny random-init models of many transformers architectures (``from_config``: nothing is downloaded), for the
tests of the model-agnostic adapter (``test_hf_zoo.py``) and of ``nesad model check``.

Each entry: the model class, its config class, the config's sizes (hidden 64, 2-4 layers, a 128-token
vocabulary), its kind, and what it covers (checked against its manifest where the manifest can tell).
Weights are drawn with a wider spread than the default so that greedy decoding does not repeat one token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VOCAB = 128


@dataclass(frozen=True)
class Arch:
    model: str  # class name in transformers
    config: str
    sizes: dict[str, Any]
    kind: str  # "decoder" | "seq2seq" | "encoder"
    covers: tuple[str, ...] = field(default_factory=tuple)


def _dec(model: str, config: str, covers: tuple[str, ...], **sizes: Any) -> Arch:
    return Arch(model, config, sizes, "decoder", covers)


ARCHS: dict[str, Arch] = {
    # decoder-only
    "llama": _dec("LlamaForCausalLM", "LlamaConfig", ("rotary", "gqa", "untied"), hidden_size=64,
                  intermediate_size=128, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                  tie_word_embeddings=False),
    "mistral": _dec("MistralForCausalLM", "MistralConfig", ("rotary", "gqa", "sliding"), hidden_size=64,
                    intermediate_size=128, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                    sliding_window=4),
    "qwen2": _dec("Qwen2ForCausalLM", "Qwen2Config", ("rotary", "gqa", "sliding", "tied"), hidden_size=64,
                  intermediate_size=128, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                  use_sliding_window=True, sliding_window=4, max_window_layers=2, tie_word_embeddings=True),
    "gemma": _dec("GemmaForCausalLM", "GemmaConfig", ("rotary", "mqa", "tied", "scaled embeddings"), hidden_size=64,
                  intermediate_size=128, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=1,
                  head_dim=16),
    "gemma2": _dec("Gemma2ForCausalLM", "Gemma2Config", ("rotary", "gqa", "sliding", "tied", "post-norms",
                                                         "soft-capping"),
                   hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                   num_key_value_heads=2, head_dim=16, sliding_window=4),
    "gpt2": _dec("GPT2LMHeadModel", "GPT2Config", ("learned", "tied"), n_layer=3, n_embd=64, n_head=4,
                 n_positions=64),
    "gpt_neo": _dec("GPTNeoForCausalLM", "GPTNeoConfig", ("learned", "local attention", "tied"), num_layers=4,
                    hidden_size=64, num_heads=4, attention_types=[[["global", "local"], 2]], window_size=4,
                    max_position_embeddings=64),
    "gpt_neox": _dec("GPTNeoXForCausalLM", "GPTNeoXConfig", ("rotary", "parallel", "untied"), hidden_size=64,
                     intermediate_size=128, num_hidden_layers=3, num_attention_heads=4, use_parallel_residual=True),
    "gptj": _dec("GPTJForCausalLM", "GPTJConfig", ("rotary", "parallel", "untied"), n_embd=64, n_layer=3, n_head=4,
                 rotary_dim=8, n_positions=64),
    "bloom": _dec("BloomForCausalLM", "BloomConfig", ("alibi", "tied", "embedding norm"), hidden_size=64, n_layer=3,
                  n_head=4),
    "mpt": _dec("MptForCausalLM", "MptConfig", ("alibi", "tied"), d_model=64, n_layers=3, n_heads=4, max_seq_len=64),
    "falcon": _dec("FalconForCausalLM", "FalconConfig", ("rotary", "mqa", "parallel"), hidden_size=64,
                   num_hidden_layers=3, num_attention_heads=4, multi_query=True, parallel_attn=True, alibi=False,
                   new_decoder_architecture=False),
    "falcon_alibi": _dec("FalconForCausalLM", "FalconConfig", ("alibi",), hidden_size=64, num_hidden_layers=3,
                         num_attention_heads=4, multi_query=False, parallel_attn=False, alibi=True),
    "opt": _dec("OPTForCausalLM", "OPTConfig", ("learned", "tied", "projections in and out"), hidden_size=64,
                ffn_dim=128, num_hidden_layers=3, num_attention_heads=4, max_position_embeddings=64,
                word_embed_proj_dim=32),
    "phi": _dec("PhiForCausalLM", "PhiConfig", ("rotary", "parallel", "untied"), hidden_size=64,
                intermediate_size=128, num_hidden_layers=3, num_attention_heads=4),
    "starcoder2": _dec("Starcoder2ForCausalLM", "Starcoder2Config", ("rotary", "gqa", "sliding"), hidden_size=64,
                       intermediate_size=128, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                       sliding_window=4),
    "gpt_bigcode": _dec("GPTBigCodeForCausalLM", "GPTBigCodeConfig", ("learned", "mqa", "tied"), n_embd=64, n_layer=3,
                        n_head=4, multi_query=True, n_positions=64),
    "cohere": _dec("CohereForCausalLM", "CohereConfig", ("rotary", "parallel", "logit scale"), hidden_size=64,
                   intermediate_size=128, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2),
    "xglm": _dec("XGLMForCausalLM", "XGLMConfig", ("sinusoidal",), d_model=64, ffn_dim=128, num_layers=3,
                 attention_heads=4, max_position_embeddings=64),
    # mixtures of experts
    "mixtral": _dec("MixtralForCausalLM", "MixtralConfig", ("moe", "rotary", "gqa"), hidden_size=64,
                    intermediate_size=128, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                    num_local_experts=4, num_experts_per_tok=2),
    "qwen2_moe": _dec("Qwen2MoeForCausalLM", "Qwen2MoeConfig", ("moe", "shared expert", "rotary"), hidden_size=64,
                      intermediate_size=128, moe_intermediate_size=32, shared_expert_intermediate_size=64,
                      num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, num_experts=4,
                      num_experts_per_tok=2),
    "olmoe": _dec("OlmoeForCausalLM", "OlmoeConfig", ("moe", "rotary"), hidden_size=64, intermediate_size=64,
                  num_hidden_layers=3, num_attention_heads=4, num_experts=4, num_experts_per_tok=2),
    # encoder-decoders
    "bart": Arch("BartForConditionalGeneration", "BartConfig", dict(
        d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
        encoder_ffn_dim=128, decoder_ffn_dim=128, max_position_embeddings=64), "seq2seq", ("learned", "tied")),
    "mbart": Arch("MBartForConditionalGeneration", "MBartConfig", dict(
        d_model=64, encoder_layers=3, decoder_layers=3, encoder_attention_heads=4, decoder_attention_heads=4,
        encoder_ffn_dim=128, decoder_ffn_dim=128, max_position_embeddings=64), "seq2seq", ("learned", "final norms")),
    "marian": Arch("MarianMTModel", "MarianConfig", dict(
        d_model=64, encoder_layers=2, decoder_layers=3, encoder_attention_heads=4, decoder_attention_heads=4,
        encoder_ffn_dim=128, decoder_ffn_dim=128, max_position_embeddings=64, decoder_start_token_id=3,
        pad_token_id=3), "seq2seq", ("sinusoidal",)),
    "t5": Arch("T5ForConditionalGeneration", "T5Config", dict(
        d_model=64, d_kv=16, d_ff=128, num_layers=2, num_decoder_layers=3, num_heads=4), "seq2seq",
        ("relative", "tied", "carried position bias")),
    "umt5": Arch("UMT5ForConditionalGeneration", "UMT5Config", dict(
        d_model=64, d_kv=16, d_ff=128, num_layers=2, num_decoder_layers=2, num_heads=4), "seq2seq",
        ("relative", "tied")),
    "switch_transformers": Arch("SwitchTransformersForConditionalGeneration", "SwitchTransformersConfig", dict(
        d_model=64, d_kv=16, d_ff=128, num_layers=3, num_decoder_layers=3, num_heads=4, num_experts=4,
        encoder_sparse_step=1, decoder_sparse_step=1), "seq2seq", ("moe", "relative", "carried position bias")),
    # encoders
    "bert": Arch("BertModel", "BertConfig", dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
                                                 intermediate_size=128), "encoder", ("learned",)),
    "roberta": Arch("RobertaModel", "RobertaConfig", dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
                                                          intermediate_size=128), "encoder", ("learned",)),
    "distilbert": Arch("DistilBertModel", "DistilBertConfig", dict(dim=64, n_layers=3, n_heads=4, hidden_dim=128),
                       "encoder", ("learned",)),
    "electra": Arch("ElectraModel", "ElectraConfig", dict(hidden_size=64, embedding_size=32, num_hidden_layers=3,
                                                          num_attention_heads=4, intermediate_size=128),
                    "encoder", ("learned", "projection in")),
    "deberta_v2": Arch("DebertaV2Model", "DebertaV2Config", dict(hidden_size=64, num_hidden_layers=3,
                                                                 num_attention_heads=4, intermediate_size=128),
                       "encoder", ("relative",)),
}

# architectures `nesad model shard` refuses, and the reason it gives
REFUSED: dict[str, tuple[Arch, str]] = {
    "albert": (Arch("AlbertModel", "AlbertConfig", dict(hidden_size=64, embedding_size=32, num_hidden_layers=3,
                                                        num_attention_heads=4, intermediate_size=128), "encoder"),
               "runs 3 times in one forward: the layers are not a repeated stack of distinct layers"),
    "mpnet": (Arch("MPNetModel", "MPNetConfig", dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
                                                     intermediate_size=128), "encoder"),
              "gets 'position_bias' computed from weights outside the layers"),
}


def build(arch: Arch, seed: int = 0) -> Any:
    """The tiny model, random-init (seeded), in eval mode."""
    import torch
    import transformers

    config = getattr(transformers, arch.config)(vocab_size=VOCAB, **arch.sizes)
    for key, value in (("initializer_range", 0.2), ("init_std", 0.2), ("initializer_factor", 20.0)):
        if hasattr(config, key):
            setattr(config, key, value)
    torch.manual_seed(seed)
    return getattr(transformers, arch.model)._from_config(config).eval()


def save(arch: Arch, folder: Path, seed: int = 0) -> Path:
    """The tiny model saved as a Hugging Face folder (``save_pretrained``), as a user would have it."""
    build(arch, seed).save_pretrained(str(folder))
    return folder
