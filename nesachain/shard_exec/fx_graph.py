"""Generic partitioning of any torch.fx-traceable model into k sequential stages.

    trace(model)                       -> GraphModule (torch.fx.symbolic_trace)
    profile(gm, example_inputs)        -> GraphProfile: per-node compute/param cost, bytes live at each cut
    plan_stages(profile, k)            -> cut positions (DP of ``partition.partition``)
    split(gm, profile, bounds)         -> list[StageGraph], one GraphModule per stage

The *units* are the graph's compute nodes in topological order (placeholders, get_attr and output are
not units: a stage copies the get_attr nodes it uses). Everything defined before a cut and used after it
crosses the cut, named by its fx node name: tensors travel as frames, small Python values (a batch size
from ``x.size(0)``) as msgpack values. Cuts where anything else would cross are not allowed.
"""

from __future__ import annotations

import hashlib
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from nesachain.shard_exec.errors import PartitionError
from nesachain.shard_exec.partition import CostWeights, partition

__all__ = ["GraphProfile", "StageGraph", "graph_digest", "plan_stages", "profile", "split", "trace"]


def trace(model: nn.Module) -> fx.GraphModule:
    """Symbolically trace ``model`` (works on the meta device: nothing is computed)."""
    try:
        return fx.symbolic_trace(model)
    except Exception as exc:  # fx raises many kinds of errors for untraceable control flow
        raise PartitionError(f"torch.fx cannot trace {type(model).__name__}: {exc}") from exc


def graph_digest(gm: fx.GraphModule) -> str:
    """sha256 of the traced code: a miner checks it retraced the same graph the manifest was cut from."""
    return hashlib.sha256(gm.code.encode()).hexdigest()


def _is_value(v: Any) -> bool:
    """A non-tensor that may cross a cut (goes into the message's ``values``)."""
    if isinstance(v, bool | int | float):
        return True
    return isinstance(v, tuple | list | torch.Size) and all(isinstance(x, int) for x in v)


@dataclass
class GraphProfile:
    """Costs of the compute nodes of a traced graph, measured on example inputs."""

    units: list[str]  # compute node names in topological order
    inputs: list[str]  # placeholder names
    compute: list[float]  # estimated FLOPs per unit
    params: list[float]  # parameter bytes per unit
    cut_bytes: list[float]  # bytes live just before unit j (index n: the output)
    allowed: list[bool]
    live: list[list[str]]  # names live just before unit j
    specs: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"kind", "shape", "dtype"}


class _Recorder(fx.Interpreter):
    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm)
        self.values: dict[str, Any] = {}

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        self.values[n.name] = out
        return out


def _flops(gm: fx.GraphModule, n: fx.Node, out: Any, values: dict[str, Any]) -> float:
    numel = float(out.numel()) if isinstance(out, torch.Tensor) else 1.0
    if n.op == "call_module":
        mod = gm.get_submodule(str(n.target))
        if isinstance(mod, nn.Conv1d | nn.Conv2d | nn.Conv3d):
            return 2.0 * numel * (mod.in_channels // mod.groups) * math.prod(mod.kernel_size)
        if isinstance(mod, nn.Linear):
            return 2.0 * numel * mod.in_features
    if n.op == "call_function" and n.target in (torch.nn.functional.conv2d, torch.nn.functional.linear,
                                                torch.matmul, operator.matmul, torch.bmm):
        w = n.args[1] if len(n.args) > 1 else None
        wv = values.get(w.name) if isinstance(w, fx.Node) else None
        if isinstance(wv, torch.Tensor):
            k = math.prod(wv.shape[1:]) if n.target is torch.nn.functional.conv2d else wv.shape[-1] \
                if n.target is torch.nn.functional.linear else wv.shape[-2]
            return 2.0 * numel * float(k)
    return numel


def _spec(v: Any) -> dict[str, Any]:
    if isinstance(v, torch.Tensor):
        return {"kind": "tensor", "shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")}
    return {"kind": "value", "type": type(v).__name__}


def profile(gm: fx.GraphModule, example_inputs: tuple[torch.Tensor, ...]) -> GraphProfile:
    """Run the graph once on example inputs and measure every node's cost and every cut's traffic."""
    rec = _Recorder(gm)
    with torch.inference_mode():
        rec.run(*example_inputs)
    nodes = list(gm.graph.nodes)
    units = [n for n in nodes if n.op not in ("placeholder", "get_attr", "output")]
    index = {n: i for i, n in enumerate(units)}
    for n in nodes:
        if n.op == "placeholder":
            index[n] = -1
    out_node = next(n for n in nodes if n.op == "output")
    last_use: dict[fx.Node, int] = {}
    for n in [*units, out_node]:
        for inp in n.all_input_nodes:
            if inp.op != "get_attr":
                last_use[inp] = max(last_use.get(inp, -1), index.get(n, len(units)))
    compute, params = [], []
    for n in units:
        compute.append(_flops(gm, n, rec.values[n.name], rec.values))
        p = 0.0
        if n.op == "call_module":
            p = float(sum(t.numel() * t.element_size() for t in gm.get_submodule(str(n.target)).parameters()))
        for inp in n.all_input_nodes:
            v = rec.values.get(inp.name)
            if inp.op == "get_attr" and isinstance(v, torch.Tensor):
                p += v.numel() * v.element_size()
        params.append(p)
    live, cut_bytes, allowed = [], [], []
    for j in range(len(units) + 1):
        names = [n.name for n, last in last_use.items() if index[n] < j <= last]
        vals = [rec.values[x] for x in names]
        live.append(names)
        cut_bytes.append(float(sum(v.numel() * v.element_size() if isinstance(v, torch.Tensor) else 8
                                   for v in vals)))
        allowed.append(all(isinstance(v, torch.Tensor) or _is_value(v) for v in vals))
    specs = {name: _spec(rec.values[name]) for j in range(len(units) + 1) for name in live[j]}
    inputs = [n.name for n in nodes if n.op == "placeholder"]
    return GraphProfile([n.name for n in units], inputs, compute, params, cut_bytes, allowed, live, specs)


def plan_stages(prof: GraphProfile, k: int, weights: CostWeights = CostWeights()) -> list[int]:  # noqa: B008
    """Boundaries ``[0, …, n]`` of k stages over the profile's units."""
    return partition(prof.compute, k, prof.params, prof.cut_bytes, prof.allowed, weights)


@dataclass
class StageGraph:
    """One stage: a GraphModule taking ``in_names`` positionally and returning a tuple in ``out_names``."""

    module: fx.GraphModule
    in_names: list[str]
    out_names: list[str]  # ["output"] / ["output.0", …] for the last stage


def split(gm: fx.GraphModule, live: Mapping[int, Sequence[str]], units: Sequence[str],
          bounds: Sequence[int]) -> list[StageGraph]:
    """Cut ``gm`` at ``bounds`` into stage GraphModules sharing ``gm``'s submodules and parameters.

    ``live[b]`` names the values crossing the cut at each boundary ``b``.
    """
    by_name = {n.name: n for n in gm.graph.nodes}
    out_node = next(n for n in gm.graph.nodes if n.op == "output")
    placeholders = [n.name for n in gm.graph.nodes if n.op == "placeholder"]
    stages: list[StageGraph] = []
    for s in range(len(bounds) - 1):
        lo, hi = bounds[s], bounds[s + 1]
        in_names = list(live[lo]) if lo > 0 else placeholders
        out_names = None if hi == len(units) else list(live[hi])
        stages.append(_build_stage(gm, by_name, out_node, in_names, units[lo:hi], out_names, s))
    return stages


def _build_stage(gm: fx.GraphModule, by_name: dict[str, fx.Node], out_node: fx.Node, in_names: list[str],
                 unit_names: Sequence[str], out_names: list[str] | None, index: int) -> StageGraph:
    """Copy ``unit_names`` into a new graph fed by ``in_names``; ``out_names=None``: the model's output."""
    g = fx.Graph()
    env: dict[fx.Node, fx.Node] = {by_name[name]: g.placeholder(name) for name in in_names}

    def lookup(n: fx.Node) -> fx.Node:
        if n not in env:
            if n.op != "get_attr":
                raise PartitionError(f"stage {index} uses {n.name} which does not reach it")
            env[n] = g.node_copy(n, lookup)
        return env[n]

    for name in unit_names:
        env[by_name[name]] = g.node_copy(by_name[name], lookup)
    if out_names is None:
        result = fx.node.map_arg(out_node.args[0], lookup)
        if isinstance(result, tuple | list):
            g.output(tuple(result))
            out_names = [f"output.{i}" for i in range(len(result))]
        else:
            g.output((result,))
            out_names = ["output"]
    else:
        g.output(tuple(lookup(by_name[x]) for x in out_names))
    g.lint()  # type: ignore[no-untyped-call]
    return StageGraph(fx.GraphModule(gm, g), in_names, out_names)
