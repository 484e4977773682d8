"""The "sdk" codespace: rejections shared by every module (tx decoding, signatures, fees)."""

from __future__ import annotations

from nesachain.types.errors import register

CODESPACE = "sdk"

ErrInternal = register(CODESPACE, 1, "internal error")
ErrTxDecode = register(CODESPACE, 2, "tx parse error")
ErrInvalidSequence = register(CODESPACE, 3, "invalid sequence")
ErrUnauthorized = register(CODESPACE, 4, "unauthorized")
ErrInsufficientFunds = register(CODESPACE, 5, "insufficient funds")
ErrUnknownRequest = register(CODESPACE, 6, "unknown request")
ErrInvalidAddress = register(CODESPACE, 7, "invalid address")
ErrInvalidCoins = register(CODESPACE, 8, "invalid coins")
ErrUnknownAddress = register(CODESPACE, 9, "unknown address")
ErrInvalidPubKey = register(CODESPACE, 10, "invalid pubkey")
ErrInsufficientFee = register(CODESPACE, 13, "insufficient fee")
ErrTxTooLarge = register(CODESPACE, 21, "tx too large")
ErrInvalidChainID = register(CODESPACE, 28, "invalid chain-id")
ErrInvalidRequest = register(CODESPACE, 18, "invalid request")
ErrWrongSignature = register(CODESPACE, 32, "signature verification failed")
ErrNotFound = register(CODESPACE, 38, "not found")
