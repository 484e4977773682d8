"""Model-agnostic sharded execution: one adapter for Hugging Face models (``hf_*``: the layers found from the
model's own forward, stages run through it), torch.fx graphs, the partitioner, shard folders, KV caches, stage
runners, and the side-process server that runs a block range for miners (``.server``).

    write_shards / read_manifest / load_stage       shard folders (per-block safetensors + manifest)
    hf_check.check_shards                           a shard folder against its whole model (``nesad model check``)
    partition / balanced_layers                     the DP that cuts units into k contiguous stages
    Sampling / choose                               decoding settings (the client and the local reference)

The server (``nesachain.shard_exec.server``: ``MinerServer``, ``MinerConfig``) is imported from there; this
package never imports it, so the client and the verifier, which use the compute here, never load it.
Importing this package loads no model and starts nothing. Errors: ``.errors`` (root ``ShardExecError``);
what crosses the wire is ``nesachain.protocol``'s.
"""

from __future__ import annotations

from nesachain.shard_exec.errors import ManifestError, PartitionError, ShardExecError
from nesachain.shard_exec.partition import CostWeights, balanced_layers, partition
from nesachain.shard_exec.sampling import Sampling, choose
from nesachain.shard_exec.shard_files import load_stage, read_manifest, write_shards

__all__ = [
    "CostWeights",
    "ManifestError",
    "PartitionError",
    "Sampling",
    "ShardExecError",
    "balanced_layers",
    "choose",
    "load_stage",
    "partition",
    "read_manifest",
    "write_shards",
]
