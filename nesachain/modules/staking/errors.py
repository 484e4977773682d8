"""staking's registered errors (codespace "staking"). Shared failures (insufficient funds, bad
addresses) use the "sdk" codespace."""

from __future__ import annotations

from nesachain.types.errors import register

CODESPACE = "staking"

# validators and delegations
ErrValidatorExists = register(CODESPACE, 2, "validator already exists for this operator")
ErrDuplicateConsKey = register(CODESPACE, 3, "consensus public key already used by a validator")
ErrUnknownValidator = register(CODESPACE, 4, "validator does not exist")
ErrInvalidConsPubKey = register(CODESPACE, 5, "invalid ed25519 public key")
ErrInsufficientShares = register(CODESPACE, 6, "undelegating more than is delegated")
ErrNoDelegation = register(CODESPACE, 7, "no delegation to this validator")
ErrInvalidMoniker = register(CODESPACE, 8, "invalid moniker")
ErrSelfBondTooLow = register(CODESPACE, 9, "self-bond gives no consensus power (below power_reduction)")
ErrValidatorDrained = register(CODESPACE, 10, "validator has shares but no tokens left; cannot delegate")
# slashing
ErrNotJailed = register(CODESPACE, 11, "validator is not jailed")
ErrJailPeriod = register(CODESPACE, 12, "jail period has not ended")
ErrTombstoned = register(CODESPACE, 13, "validator is tombstoned for double-signing and can never be unjailed")
ErrPowerTooLow = register(CODESPACE, 14, "validator's tokens give no consensus power; cannot unjail")
ErrDelegationTooSmall = register(CODESPACE, 15, "delegation too small to buy one share")
ErrMaxUnbondingEntries = register(CODESPACE, 16, "too many unbonding entries for this delegator and validator "
                                                 "(max_entries)")
ErrInvalidConsPossession = register(CODESPACE, 17, "consensus key proof of possession does not verify")
ErrSelfDelegationTooLow = register(CODESPACE, 18, "operator's self-delegation below min_self_delegation")
# miners and models
ErrUnknownModel = register(CODESPACE, 20, "model is not registered")
ErrInvalidBlockRange = register(CODESPACE, 21, "invalid block range for the model")
ErrMinerBondTooLow = register(CODESPACE, 22, "miner bond below min_miner_bond")
ErrMinerExists = register(CODESPACE, 23, "miner key already registered")
ErrUnknownMiner = register(CODESPACE, 24, "miner is not registered")
ErrNotMinerOwner = register(CODESPACE, 25, "signer does not own this miner")
ErrInvalidMinerKey = register(CODESPACE, 26, "invalid miner key")
ErrMinerUnbonding = register(CODESPACE, 27, "miner is unbonding")
ErrInvalidEndpoint = register(CODESPACE, 28, "invalid miner endpoint")
ErrInvalidMinerSpec = register(CODESPACE, 29, "invalid declared memory or throughput")
ErrInvalidPossession = register(CODESPACE, 30, "miner key proof of possession does not verify")
