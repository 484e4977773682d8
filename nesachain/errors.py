"""The root of nesachain's off-chain exception tree.

    NesaError
    ├── ConfigError        bad command-line input, genesis or config files
    ├── KeyringError       missing keys, wrong passphrase, corrupt keyring
    ├── RPCError           a CometBFT node could not be reached or answered an error
    └── (kernels, shard_exec and others add their own subclasses next to their code)

On-chain rejections are not exceptions: they are registered codes (``nesachain.types.errors``).
"""

from __future__ import annotations


class NesaError(Exception):
    """Root of every error nesachain raises on purpose."""


class ConfigError(NesaError):
    """A command-line argument, genesis file or config file is not usable."""


class KeyringError(NesaError):
    """A key is missing, the passphrase is wrong or the keyring file is damaged."""


class RPCError(NesaError):
    """A CometBFT node could not be reached, or answered with an error."""
