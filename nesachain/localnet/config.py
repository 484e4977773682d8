"""Writing a localnet's files: node homes via `cometbft init`, one shared genesis, per-node config."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nesachain.errors import ConfigError

__all__ = ["NodePorts", "app_validators", "consensus_pubkey", "node_id", "set_toml", "write_genesis"]


@dataclass(frozen=True)
class NodePorts:
    p2p: int
    rpc: int
    abci: int

    @classmethod
    def for_node(cls, base: int, index: int) -> NodePorts:
        b = base + 10 * index
        return cls(b, b + 1, b + 2)


def set_toml(text: str, section: str | None, key: str, value: str) -> str:
    """Replace ``key = …`` inside ``[section]`` (None: the top level before any section)."""
    lines = text.split("\n")
    current: str | None = None
    pat = re.compile(rf"^{re.escape(key)}\s*=")
    for i, line in enumerate(lines):
        header = re.match(r"^\[([^\]]+)\]\s*$", line)
        if header:
            current = header.group(1)
            continue
        if current == section and pat.match(line):
            lines[i] = f"{key} = {value}"
            return "\n".join(lines)
    raise ConfigError(f"config.toml has no {key} in [{section or 'top level'}]")


def node_id(home: Path) -> str:
    key = json.loads((home / "config" / "node_key.json").read_text())
    raw = base64.b64decode(key["priv_key"]["value"])
    return hashlib.sha256(raw[32:]).hexdigest()[:40]


def validator_entry(home: Path, name: str, power: int) -> dict[str, Any]:
    pv = json.loads((home / "config" / "priv_validator_key.json").read_text())
    return {"address": pv["address"], "pub_key": pv["pub_key"], "power": str(power), "name": name}


def cometbft_init(binary: str, home: Path) -> None:
    res = subprocess.run([binary, "init", "--home", str(home)], capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        raise ConfigError(f"cometbft init failed for {home}: {res.stderr.strip()}")


def consensus_pubkey(home: Path) -> str:
    """The node's ed25519 consensus public key (base64), as priv_validator_key.json holds it."""
    pv = json.loads((home / "config" / "priv_validator_key.json").read_text())
    return str(pv["pub_key"]["value"])


def app_validators(homes: list[Path], chain_id: str, app_state: dict[str, Any]) -> list[dict[str, Any]]:
    """genesis.json's validators, computed by running InitChain on app_state in memory, so CometBFT's
    genesis set is exactly the one the app returns (staking.create_validators)."""
    from nesachain.abci.chain import Chain
    from nesachain.store.commit import CommitStore

    names = {consensus_pubkey(h): f"node{i}" for i, h in enumerate(homes)}
    _, updates = Chain(CommitStore()).init_chain(chain_id, app_state)
    out = []
    for u in updates:
        b64 = base64.b64encode(u.pubkey).decode()
        out.append({"address": hashlib.sha256(u.pubkey).hexdigest()[:40].upper(),
                    "pub_key": {"type": "tendermint/PubKeyEd25519", "value": b64},
                    "power": str(u.power), "name": names.get(b64, "")})
    return out


def write_genesis(homes: list[Path], chain_id: str, app_state: dict[str, Any], power: int = 10) -> dict[str, Any]:
    """Write one genesis.json into every home. Its validators are the set InitChain returns for
    app_state when staking creates any; otherwise every home's key with ``power``."""
    base = json.loads((homes[0] / "config" / "genesis.json").read_text())
    validators = app_validators(homes, chain_id, app_state)
    if not validators:
        validators = [validator_entry(h, f"node{i}", power) for i, h in enumerate(homes)]
    genesis = {
        "genesis_time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "chain_id": chain_id,
        "initial_height": "1",
        "consensus_params": base["consensus_params"],
        "validators": validators,
        "app_hash": "",
        "app_state": app_state,
    }
    text = json.dumps(genesis, indent=2)
    for h in homes:
        (h / "config" / "genesis.json").write_text(text)
    return genesis


def configure_node(home: Path, ports: NodePorts, peers: str, moniker: str, timeout_commit: str) -> None:
    path = home / "config" / "config.toml"
    text = path.read_text()
    edits: list[tuple[str | None, str, str]] = [
        (None, "moniker", json.dumps(moniker)),
        (None, "proxy_app", json.dumps(f"tcp://127.0.0.1:{ports.abci}")),
        (None, "log_level", json.dumps("main:info,state:info,*:error")),
        ("rpc", "laddr", json.dumps(f"tcp://127.0.0.1:{ports.rpc}")),
        ("rpc", "timeout_broadcast_tx_commit", json.dumps("30s")),
        ("p2p", "laddr", json.dumps(f"tcp://127.0.0.1:{ports.p2p}")),
        ("p2p", "persistent_peers", json.dumps(peers)),
        ("p2p", "addr_book_strict", "false"),
        ("p2p", "allow_duplicate_ip", "true"),
        ("p2p", "pex", "false"),
        ("consensus", "timeout_commit", json.dumps(timeout_commit)),
        ("consensus", "timeout_propose", json.dumps("2s")),
        ("tx_index", "indexer", json.dumps("kv")),
    ]
    for section, key, value in edits:
        text = set_toml(text, section, key, value)
    path.write_text(text)
