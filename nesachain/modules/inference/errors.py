"""inference's registered errors (codespace "inference")."""

from __future__ import annotations

from nesachain.types.errors import register

CODESPACE = "inference"

ErrUnknownModel = register(CODESPACE, 2, "unknown model")
ErrModelExists = register(CODESPACE, 3, "model already registered")
ErrInvalidModel = register(CODESPACE, 4, "invalid model")
ErrRouteGap = register(CODESPACE, 5, "route does not cover the model's blocks contiguously")
ErrMinerUnavailable = register(CODESPACE, 6, "miner is not active, not bonded or does not serve those blocks")
ErrEscrowTooSmall = register(CODESPACE, 7, "escrow is below the session's maximum cost")
ErrUnknownSession = register(CODESPACE, 8, "unknown session")
ErrWrongPhase = register(CODESPACE, 9, "session is not in the phase this message needs")
ErrNotInRoute = register(CODESPACE, 10, "miner is not part of this session's route")
ErrAlreadyCommitted = register(CODESPACE, 11, "already committed")
ErrRevealMismatch = register(CODESPACE, 12, "reveal does not match its commitment")
ErrDeadlinePassed = register(CODESPACE, 13, "deadline passed")
ErrNotValidator = register(CODESPACE, 14, "signer is not a bonded validator")
ErrUnknownChallenge = register(CODESPACE, 15, "unknown challenge")
ErrNotCommitted = register(CODESPACE, 16, "no commitment to reveal")
ErrUnauthorizedMiner = register(CODESPACE, 17, "signer does not own this miner")
ErrInvalidSessionMsg = register(CODESPACE, 18, "invalid session message")
ErrInvalidStandIn = register(CODESPACE, 19, "invalid stand-in")
ErrInvalidStepCount = register(CODESPACE, 20, "revealed step count does not fit the tokens the hop served")
