from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from nesachain.kernels import KernelError
from nesachain.kernels.int8_linear import Int8Linear, dequantize_linear_weight, quantize_linear_weight


def test_int8_weight_random_matrix_within_half_step_outliers_fp16() -> None:
    weight = torch.randn(96, 200, generator=torch.Generator().manual_seed(0)) * 0.02
    weight[5, 7] = 3.0  # one large weight: taken out, does not coarsen row 5
    q = quantize_linear_weight(weight, max_fraction=1 / 512)
    assert q.codes.dtype == torch.int8 and q.positions.numel() == 96 * 200 // 512
    assert 5 * 200 + 7 in q.positions.tolist()
    rebuilt = dequantize_linear_weight(q)
    is_outlier = torch.zeros(weight.numel(), dtype=torch.bool)
    is_outlier[q.positions] = True
    err = (rebuilt - weight).abs().view(-1)
    bound = (q.scales / 254.0)[:, None].expand(96, 200).reshape(-1) * (1 + 1e-6)
    assert bool((err[~is_outlier] <= bound[~is_outlier]).all())
    assert bool((err[is_outlier] <= weight.view(-1).abs()[is_outlier] * 2**-11).all())
    assert float(q.scales[5]) < 0.2  # the row's step is set by its ordinary weights


@pytest.mark.parametrize("bias", [True, False])
def test_int8_linear_forward_matches_float_linear_on_dequantized_weight(bias: bool) -> None:
    torch.manual_seed(1)
    linear = nn.Linear(128, 64, bias=bias)
    int8 = Int8Linear.from_linear(linear)
    x = torch.randn(3, 5, 128)
    expected = nn.functional.linear(x, dequantize_linear_weight(quantize_linear_weight(linear.weight)), linear.bias)
    assert torch.allclose(int8(x), expected, atol=1e-5)
    assert torch.allclose(int8(x), linear(x), atol=0.02)


def test_int8_weight_bad_input_raises_kernel_error() -> None:
    with pytest.raises(KernelError):
        quantize_linear_weight(torch.ones(3, 4, 5))
    with pytest.raises(KernelError):
        quantize_linear_weight(torch.ones(3, 4, dtype=torch.int64))


@pytest.mark.slow
def test_int8_linear_smollm2_every_decoder_linear_int8_agreement_high(
    smollm2: tuple[Any, Any], pydoc_windows: torch.Tensor, reference_logits: torch.Tensor
) -> None:
    model = smollm2[0]
    swapped: list[tuple[nn.Module, str, nn.Linear]] = []
    for layer in model.model.layers:
        for parent in (layer.self_attn, layer.mlp):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.Linear):
                    swapped.append((parent, name, child))
                    setattr(parent, name, Int8Linear.from_linear(child))
    try:
        window = pydoc_windows[:2]
        with torch.no_grad():
            logits = torch.stack([model(w.view(1, -1)).logits[0] for w in window])
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)
    agreement = float((logits[:, :-1].argmax(-1) == reference_logits[:2, :-1].argmax(-1)).float().mean())
    print(f"\nint8 weights in all {len(swapped)} decoder Linear layers: top-1 agreement {agreement:.2%}")
    assert len(swapped) == 30 * 7
    assert agreement >= 0.95
