"""The package layout's rules, read from the import graph of every module of ``nesachain`` (imports inside
functions and ``TYPE_CHECKING`` blocks included): which package may import which, no cycle between
packages, nothing off chain reaching into a module's keeper, and a state machine that imports no
heavy or non-deterministic library."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nesachain"
CHAIN = {"abci", "modules", "store", "tx", "types"}
SHARED = {"nesachain", "errors", "files", "logging"}  # the version, the error root, atomic files, log set-up
# what each package may import besides itself (cli and localnet are entry points: anything)
ALLOWED: dict[str, set[str]] = {
    **{c: CHAIN | {"nesachain"} for c in CHAIN},
    "errors": set(), "files": set(), "logging": set(), "nesachain": set(),
    "kernels": {"errors", "types"},
    "protocol": {"errors", "kernels", "types"},
    "models": {"errors"},
    "shard_exec": {"errors", "kernels", "models", "protocol"},
    "shard_exec.server": {"errors", "kernels", "protocol", "shard_exec"},
    "wallet": {"errors", "files", "tx", "types"},
    "client": SHARED | {"kernels", "models", "modules", "protocol", "shard_exec", "tx", "types", "wallet"},
    "miner": SHARED | {"modules", "protocol", "shard_exec", "shard_exec.server", "tx", "types", "wallet"},
    "verifier": SHARED | {"kernels", "modules", "protocol", "shard_exec", "tx", "types", "wallet"},
}
ENTRY_POINTS = {"cli", "localnet"}
# what code outside the chain may take from a module: its messages, records, codes, params and event names
MODULE_SURFACE = {"msgs", "types", "errors", "params", "events"}
# the state machine stays deterministic and light: no accelerator or network library, no clock, no randomness
STATE_MACHINE = {"modules", "tx", "types"}
FORBIDDEN_IN_STATE_MACHINE = {"torch", "numpy", "numba", "aiohttp", "transformers", "safetensors", "urllib",
                              "socket", "asyncio", "threading", "random", "time", "subprocess", "secrets"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def package_of(module: str) -> str:
    """The layout's unit a module belongs to (the server is a unit of its own inside shard_exec)."""
    parts = module.split(".")
    if len(parts) == 1:
        return "nesachain"
    if parts[1] == "shard_exec" and len(parts) > 2 and parts[2] == "server":
        return "shard_exec.server"
    return parts[1]


def imports_of(path: Path) -> list[str]:
    """Every module a file imports (``from a import b`` names ``a.b`` when that is a module)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.append(full if full in MODULES else node.module)
    return found


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in MODULES.items():
        for target in imports_of(path):
            if target.split(".")[0] == "nesachain" and package_of(target) != package_of(module):
                graph[package_of(module)].add(package_of(target))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_layering_every_package_is_known_to_the_rules() -> None:
    packages = {package_of(m) for m in MODULES}
    assert packages <= set(ALLOWED) | ENTRY_POINTS, sorted(packages - set(ALLOWED) - ENTRY_POINTS)


def test_layering_each_package_imports_only_what_it_may() -> None:
    bad = [f"{src} imports {dst}" for src, dsts in sorted(package_graph().items()) if src not in ENTRY_POINTS
           for dst in sorted(dsts - ALLOWED[src])]
    assert not bad, bad


def test_layering_no_import_cycle_between_packages() -> None:
    assert cycles(package_graph()) == []


def test_layering_client_verifier_and_chain_never_import_the_miner_server_or_each_other() -> None:
    graph = package_graph()
    for role in ("client", "verifier", *sorted(CHAIN), "protocol", "wallet", "shard_exec"):
        assert "shard_exec.server" not in graph[role], role
        assert "miner" not in graph[role], role
    assert not {"client", "verifier"} & graph["miner"]
    assert not {"miner", "client"} & graph["verifier"]
    assert not {"miner", "verifier"} & graph["client"]


def test_layering_nothing_off_chain_reaches_into_a_module_past_its_surface() -> None:
    bad = []
    for module, path in MODULES.items():
        if package_of(module) in CHAIN:
            continue
        for target in imports_of(path):
            parts = target.split(".")
            if parts[:2] == ["nesachain", "modules"] and (len(parts) < 4 or parts[3] not in MODULE_SURFACE):
                bad.append(f"{module} imports {target}")
    assert not bad, bad


def test_layering_state_machine_imports_no_heavy_or_nondeterministic_library() -> None:
    bad = [f"{module} imports {target}" for module, path in MODULES.items() if package_of(module) in STATE_MACHINE
           for target in imports_of(path) if target.split(".")[0] in FORBIDDEN_IN_STATE_MACHINE]
    assert not bad, bad


@pytest.mark.parametrize(("graph", "expected"), [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set()}, []),
])
def test_layering_cycle_finder_finds_what_it_should(graph: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert cycles(graph) == expected
