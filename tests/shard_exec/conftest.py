"""torch on one thread in this process, as each miner runs (--threads 1), from collection on. The sharded
models and the miners these tests use are the fixtures of tests/conftest.py (the client's and the CLI's
tests use them too); their helpers, shard_exec_support.py and shard_exec_toy_models.py, are here."""

from __future__ import annotations

import torch

torch.set_num_threads(1)
