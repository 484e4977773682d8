"""bank's registered errors (codespace "bank"); shared failures use the "sdk" codespace."""

from __future__ import annotations

from nesachain.types.errors import register

CODESPACE = "bank"

ErrAmountOverflow = register(CODESPACE, 2, "amount overflows a 64-bit balance")
ErrModuleFundsShort = register(CODESPACE, 3, "module account holds less than requested")
