"""The state-machine fixtures of tests/abci (in-memory chains, funded keys), for the tx tests."""

from __future__ import annotations

from tests.abci.conftest import committed_chain

__all__ = ["committed_chain"]
