"""Errors raised while locating or converting a packaged model.

    NesaError
    └── ModelLoadError     a model package is missing, or its files cannot be read or converted
"""

from __future__ import annotations

from nesachain.errors import NesaError


class ModelLoadError(NesaError):
    """A model shipped inside an installed package could not be found or loaded."""
