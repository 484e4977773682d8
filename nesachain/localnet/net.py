"""A localnet of N validators on 127.0.0.1: each a CometBFT node plus its own `nesad start` app.

Used by `python -m nesachain.localnet` (the scripts in localnet/) and by the integration tests.
Processes started here are tracked by pid in ``<root>/pids.json``; only those are ever signalled.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from nesachain.errors import ConfigError, RPCError
from nesachain.localnet.config import (
    NodePorts,
    cometbft_init,
    configure_node,
    consensus_pubkey,
    node_id,
    write_genesis,
)
from nesachain.wallet.keyring import Keyring
from nesachain.wallet.rpc import CometRPC

__all__ = ["REPO", "Localnet", "find_cometbft"]

REPO = Path(__file__).resolve().parents[2]
FAUCET_AMOUNT = 10**15
OPERATOR_AMOUNT = 10**12
VALIDATOR_SELF_BOND = 10_000_000  # operator i self-bonds this at genesis (power 10 at 10^6 unes/power)


def find_cometbft() -> str:
    for cand in (os.environ.get("NESA_COMETBFT"), str(REPO / "bin" / "cometbft"), shutil.which("cometbft")):
        if cand and Path(cand).is_file():
            return cand
    raise ConfigError("cometbft not found: run `make setup` (installs the pinned v0.38 binary into ./bin)")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Localnet:
    def __init__(
        self,
        root: str | Path,
        n: int = 4,
        base_port: int = 26656,
        chain_id: str = "nesa-localnet-1",
        timeout_commit: str = "400ms",
    ) -> None:
        self.root = Path(root).resolve()
        self.n = n
        self.base_port = base_port
        self.chain_id = chain_id
        self.timeout_commit = timeout_commit
        self._procs: dict[str, subprocess.Popen[bytes]] = {}  # by name: app0, node0, miner1, …

    # layout -----------------------------------------------------------------------------------
    def home(self, i: int) -> Path:
        return self.root / f"node{i}"

    def ports(self, i: int) -> NodePorts:
        return NodePorts.for_node(self.base_port, i)

    def rpc(self, i: int = 0, timeout: float = 10.0) -> CometRPC:
        return CometRPC(f"http://127.0.0.1:{self.ports(i).rpc}", timeout=timeout)

    def keyring(self) -> Keyring:
        return Keyring(self.root / "wallet", "test")

    @property
    def initialized(self) -> bool:
        return (self.root / "localnet.json").exists()

    # init -------------------------------------------------------------------------------------
    def init(self, app_state_template: Path | None = None, extra_balances: dict[str, int] | None = None,
             shards: dict[str, Path] | None = None) -> None:
        """Write node homes and one genesis. ``shards`` maps a model id to its shard folder, whose
        manifest gives the block hashes registered on chain (placeholder hashes otherwise)."""
        if self.initialized:
            raise ConfigError(f"{self.root} already holds a localnet (run `down --clean` to remove it)")
        binary = find_cometbft()
        self.root.mkdir(parents=True, exist_ok=True)
        homes = [self.home(i) for i in range(self.n)]
        for h in homes:
            cometbft_init(binary, h)
        template = app_state_template or REPO / "genesis" / "localnet.json"
        app_state = {k: v for k, v in json.loads(template.read_text()).items() if not k.startswith("_")}
        ring = self.keyring()
        balances = [{"address": ring.add("faucet").address, "amount": FAUCET_AMOUNT}]
        for i in range(self.n):
            balances.append({"address": ring.add(f"operator{i}").address, "amount": OPERATOR_AMOUNT})
        for address, amount in sorted((extra_balances or {}).items()):
            balances.append({"address": address, "amount": amount})
        app_state.setdefault("bank", {})["balances"] = balances
        app_state.setdefault("staking", {})["create_validators"] = [
            {"operator": balances[1 + i]["address"], "pubkey": consensus_pubkey(h), "moniker": f"node{i}",
             "amount": VALIDATOR_SELF_BOND}
            for i, h in enumerate(homes)
        ]
        for model in app_state.get("inference", {}).get("models", []):
            model.setdefault("owner", balances[0]["address"])
            model.setdefault("block_hashes", _block_hashes(model, (shards or {}).get(model["model_id"])))
        write_genesis(homes, self.chain_id, app_state)
        ids = [node_id(h) for h in homes]
        for i, h in enumerate(homes):
            peers = ",".join(f"{ids[j]}@127.0.0.1:{self.ports(j).p2p}" for j in range(self.n) if j != i)
            configure_node(h, self.ports(i), peers, f"node{i}", self.timeout_commit)
        meta = {"n": self.n, "base_port": self.base_port, "chain_id": self.chain_id,
                "template_sha256": template_digest(template)}
        (self.root / "localnet.json").write_text(json.dumps(meta, indent=2))

    def add_node(self, share_key_with: int | None = None) -> int:
        """Prepare one more (non-genesis) node that syncs from the others; returns its index.
        ``share_key_with``: copy that node's priv_validator_key (a double-signing setup, tests only)."""
        if not self.initialized:
            raise ConfigError(f"no localnet in {self.root}: run init first")
        i = self.n
        home = self.home(i)
        cometbft_init(find_cometbft(), home)
        shutil.copyfile(self.home(0) / "config" / "genesis.json", home / "config" / "genesis.json")
        if share_key_with is not None:
            src = self.home(share_key_with) / "config" / "priv_validator_key.json"
            shutil.copyfile(src, home / "config" / "priv_validator_key.json")
        peers = ",".join(f"{node_id(self.home(j))}@127.0.0.1:{self.ports(j).p2p}" for j in range(i))
        configure_node(home, self.ports(i), peers, f"node{i}", self.timeout_commit)
        self.n += 1
        meta = json.loads((self.root / "localnet.json").read_text())
        meta["n"] = self.n
        (self.root / "localnet.json").write_text(json.dumps(meta, indent=2))
        return i

    def stale(self) -> bool:
        """True when the localnet was made from another genesis template than today's."""
        meta = json.loads((self.root / "localnet.json").read_text())
        return bool(meta.get("template_sha256") != template_digest(REPO / "genesis" / "localnet.json"))

    @classmethod
    def load(cls, root: str | Path) -> Localnet:
        meta = json.loads((Path(root) / "localnet.json").read_text())
        return cls(root, meta["n"], meta["base_port"], meta["chain_id"])

    # processes --------------------------------------------------------------------------------
    def _pidfile(self) -> Path:
        return self.root / "pids.json"

    def pids(self) -> dict[str, int]:
        """Recorded processes of this localnet by name."""
        return self._read_pids()

    def _read_pids(self) -> dict[str, int]:
        try:
            data: dict[str, int] = json.loads(self._pidfile().read_text())
            return data
        except (OSError, ValueError):
            return {}

    def _write_pid(self, name: str, pid: int | None) -> None:
        pids = self._read_pids()
        if pid is None:
            pids.pop(name, None)
        else:
            pids[name] = pid
        self._pidfile().write_text(json.dumps(pids, indent=2, sort_keys=True))

    def start_app(self, i: int, timeout: float = 30.0) -> None:
        port = self.ports(i).abci
        if _port_open(port):
            raise ConfigError(f"port {port} for node{i}'s app is already in use")
        cmd = [sys.executable, "-m", "nesachain.cli.main", "start", "--home", str(self.home(i) / "app"),
               "--abci", f"tcp://127.0.0.1:{port}"]
        proc = self.spawn(f"app{i}", cmd, self.home(i) / "app.log")
        deadline = time.monotonic() + timeout
        while not _port_open(port):
            if proc.poll() is not None:
                raise ConfigError(f"node{i}'s app exited with {proc.returncode}; see {self.home(i) / 'app.log'}")
            if time.monotonic() > deadline:
                raise ConfigError(f"node{i}'s app did not listen on {port} within {timeout:.0f}s")
            time.sleep(0.1)

    def start_node(self, i: int) -> None:
        p = self.ports(i)
        cmd = [find_cometbft(), "node", "--home", str(self.home(i)),
               "--proxy_app", f"tcp://127.0.0.1:{p.abci}",
               "--rpc.laddr", f"tcp://127.0.0.1:{p.rpc}", "--p2p.laddr", f"tcp://127.0.0.1:{p.p2p}"]
        self.spawn(f"node{i}", cmd, self.home(i) / "cometbft.log")

    def spawn(self, name: str, cmd: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        """Start a process of this localnet in its own session, logging to ``log_path``; its pid is
        recorded under ``name`` so `down` (or another process) can stop exactly it."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        self._procs[name] = proc
        self._write_pid(name, proc.pid)
        return proc

    def start(self, i: int) -> None:
        self.start_app(i)
        self.start_node(i)

    def guard(self) -> subprocess.Popen[bytes]:
        """Have this localnet stopped once this process is gone, however it ends (``localnet.guard``).
        For test runs; `nesad localnet up` leaves its localnet running on purpose."""
        with open(self.root / "guard.log", "ab") as log:
            cmd = [sys.executable, "-m", "nesachain.localnet.guard", str(self.root), str(os.getpid())]
            return subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)

    def up(self, wait_height: int = 1, timeout: float = 90.0) -> None:
        if not self.initialized:
            raise ConfigError(f"no localnet in {self.root}: run init first")
        for i in range(self.n):
            self.start(i)
        for i in range(self.n):
            self.rpc(i).wait_height(wait_height, timeout)

    def _signal_pid(self, name: str, sig: int) -> None:
        pid = self._read_pids().get(name)
        if pid is None:
            return
        proc = self._procs.get(name)
        if proc is not None and proc.pid == pid:
            if proc.poll() is None:
                proc.send_signal(sig)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        elif _is_ours(pid, self.root):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
            _wait_gone(pid, 15)
        self._write_pid(name, None)

    def alive(self, i: int, role: str = "node") -> bool:
        """Whether node i's CometBFT ("node") or app ("app") process started here still runs."""
        return self.running(f"{role}{i}")

    def recorded_alive(self, name: str) -> bool:
        """Whether the process recorded as ``name`` (maybe by another command) still runs."""
        pid = self._read_pids().get(name)
        return pid is not None and _is_ours(pid, self.root)

    def running(self, name: str) -> bool:
        proc = self._procs.get(name)
        return proc is not None and proc.poll() is None

    def wait_exit(self, i: int, role: str = "node", timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive(i, role):
                return True
            time.sleep(0.1)
        return False

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal the recorded process ``name`` (and wait for it to go)."""
        self._signal_pid(name, sig)

    def kill_app(self, i: int, sig: int = signal.SIGKILL) -> None:
        self._signal_pid(f"app{i}", sig)

    def kill_node(self, i: int, sig: int = signal.SIGKILL) -> None:
        self._signal_pid(f"node{i}", sig)

    def stop(self, i: int, sig: int = signal.SIGTERM) -> None:
        self.kill_node(i, sig)
        self.kill_app(i, sig)

    def down(self) -> None:
        """Stop everything this localnet started: agents first, then CometBFT nodes, then apps."""
        order = ("verifier", "miner", "node", "app")

        def rank(name: str) -> tuple[int, str]:
            return next((i for i, p in enumerate(order) if name.startswith(p)), len(order)), name

        for name in sorted(self._read_pids(), key=rank):
            self._signal_pid(name, signal.SIGTERM)

    def clean(self) -> None:
        self.down()
        if self.root.exists():
            shutil.rmtree(self.root)

    # status -----------------------------------------------------------------------------------
    def status(self) -> list[dict[str, Any]]:
        out = []
        for i in range(self.n):
            row: dict[str, Any] = {"node": i, "rpc": f"127.0.0.1:{self.ports(i).rpc}"}
            try:
                st = self.rpc(i, timeout=2).status()
                row.update(height=int(st["sync_info"]["latest_block_height"]),
                           app_hash=st["sync_info"]["latest_app_hash"], up=True)
            except RPCError:
                row.update(height=None, app_hash=None, up=False)
            out.append(row)
        return out


def template_digest(template: Path) -> str:
    """Identifies the genesis template a localnet was made from (a changed template means a stale net)."""
    return hashlib.sha256(template.read_bytes()).hexdigest()


def _block_hashes(model: dict[str, Any], shard_dir: Path | None) -> list[str]:
    if shard_dir is None:
        return ["0" * 64] * int(model["n_blocks"])
    manifest = json.loads((shard_dir / "manifest.json").read_text())
    if manifest["n_blocks"] != model["n_blocks"]:
        raise ConfigError(f"{shard_dir} has {manifest['n_blocks']} blocks, genesis says {model['n_blocks']}")
    return [b["sha256"] for b in sorted(manifest["blocks"], key=lambda b: b["index"])]


def _is_ours(pid: int, root: Path) -> bool:
    """Only signal a recorded pid if it is still a process of this localnet (pids get reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return str(root).encode() in cmdline


def pid_running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is not: an orphan's reaper may never collect it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while pid_running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
