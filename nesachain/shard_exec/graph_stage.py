"""Miner-side runner for consecutive stages of an fx-partitioned graph model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from nesachain.protocol.errors import WireError
from nesachain.protocol.messages import ErrorCode
from nesachain.shard_exec.fx_graph import StageGraph
from nesachain.shard_exec.stage import Tensors, Values

__all__ = ["GraphStage"]

_FLOAT = {"float32", "float16", "bfloat16", "float64"}


class GraphStage:
    """Stages ``[a, b)`` run in sequence; inputs and outputs are named by the graph's node names."""

    kind = "graph"

    def __init__(self, stages: Sequence[StageGraph], specs: dict[str, dict[str, Any]]) -> None:
        self.stages = list(stages)
        self.specs = specs
        self.in_names = self.stages[0].in_names
        seen: set[int] = set()
        self.param_bytes = 0
        for st in self.stages:
            for t in list(st.module.parameters()) + list(st.module.buffers()):
                if id(t) not in seen:
                    seen.add(id(t))
                    self.param_bytes += t.numel() * t.element_size()

    def session_bytes(self, batch: int, max_length: int) -> int:
        return 0

    def new_state(self, batch: int, max_length: int) -> None:
        return None

    def n_tokens(self, tensors: Tensors) -> int:
        return 0

    def _check(self, name: str, value: Any) -> Any:
        spec = self.specs.get(name, {"kind": "tensor"})
        if value is None:
            raise WireError(ErrorCode.BAD_REQUEST, f"missing input {name!r}")
        if spec["kind"] == "value":
            if isinstance(value, torch.Tensor):
                raise WireError(ErrorCode.BAD_DTYPE, f"{name} must be a plain value, got a tensor")
            return value
        if not isinstance(value, torch.Tensor):
            raise WireError(ErrorCode.BAD_DTYPE, f"{name} must be a tensor")
        want = spec.get("shape")
        if want is not None and (value.ndim != len(want) or list(value.shape[1:]) != list(want[1:])):
            raise WireError(ErrorCode.BAD_SHAPE,
                            f"{name} must be (B, {', '.join(map(str, want[1:]))}), got {tuple(value.shape)}")
        dt = spec.get("dtype")
        if dt in _FLOAT:
            if not value.is_floating_point():
                raise WireError(ErrorCode.BAD_DTYPE, f"{name} must be floating point, got {value.dtype}")
            return value.to(getattr(torch, dt))
        if dt is not None and str(value.dtype).removeprefix("torch.") != dt:
            raise WireError(ErrorCode.BAD_DTYPE, f"{name} must be {dt}, got {value.dtype}")
        return value

    def run(self, tensors: Tensors, values: Values, position: int, state: Any) -> tuple[Tensors, Values]:
        env: dict[str, Any] = {}
        for name in self.in_names:
            env[name] = self._check(name, tensors.get(name, values.get(name)))
        batch = {v.shape[0] for v in env.values() if isinstance(v, torch.Tensor) and v.ndim > 0}
        if len(batch) > 1:
            raise WireError(ErrorCode.BAD_SHAPE, f"inputs disagree on the batch size: {sorted(batch)}")
        with torch.inference_mode():
            for st in self.stages:
                out = st.module(*[env[n] for n in st.in_names])
                env = dict(zip(st.out_names, out, strict=True))
        out_t = {k: v for k, v in env.items() if isinstance(v, torch.Tensor)}
        out_v = {k: (list(v) if isinstance(v, tuple | torch.Size) else v)
                 for k, v in env.items() if not isinstance(v, torch.Tensor)}
        return out_t, out_v

    def probe(self) -> tuple[Tensors, Values, int]:
        tensors: Tensors = {}
        values: Values = {}
        for name in self.in_names:
            spec = self.specs.get(name, {})
            if spec.get("kind") == "tensor":
                shape = [1, *spec["shape"][1:]]
                dt = getattr(torch, spec["dtype"])
                tensors[name] = torch.randn(shape).to(dt) if spec["dtype"] in _FLOAT else torch.zeros(shape, dtype=dt)
            else:
                values[name] = 1
        return tensors, values, 1

    def warm(self, stop: Callable[[], bool] | None = None) -> None:
        """Nothing to warm: a graph stage has no decode loop."""
