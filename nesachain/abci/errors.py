"""The "query" codespace: refusals of ABCI queries that no module's own codes describe."""

from __future__ import annotations

from nesachain.types.errors import register

CODESPACE = "query"

ErrQueryTooLarge = register(CODESPACE, 2, "query scans too many entries")
ErrQueryInterrupted = register(CODESPACE, 3, "the state changed while the query ran")
