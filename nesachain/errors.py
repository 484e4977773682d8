"""The root of nesachain's off-chain exception tree.

    NesaError
    ├── ConfigError        bad command-line input, genesis or config files
    ├── KeyringError       missing keys, wrong passphrase, corrupt keyring
    ├── RPCError           a CometBFT node could not be reached or answered an error
    ├── KernelError        kernels: a tensor the kernels cannot encode
    │   └── FrameError     a tensor frame that cannot be decoded
    ├── ProtocolError      protocol: a malformed message or frame (WireError), a miner's refusal (StepError)
    ├── ShardExecError     shard_exec: a bad shard folder (ManifestError), a model it cannot cut (PartitionError)
    ├── ClientError        client: a route with no live miner (RouteError, NoRouteError), a miner unreachable
    ├── ChainAgentError    miner: the chain refused a miner tx (MinerGone: the miner is unbonded)
    └── ModelLoadError     models: a packaged model that cannot be loaded

Each package declares its own next to its code.

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
