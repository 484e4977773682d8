"""`nesad tx miner register|update` (``nesachain.cli.staking_cmds``): the chain's stateless checks run
before the node is contacted."""

from __future__ import annotations

import pytest

from tests.cli.cli_support import run


@pytest.mark.parametrize(("flag", "value", "code"), [
    ("--endpoint", "::bad", "code 28 (staking)"),
    ("--throughput", "0", "code 29 (staking)"),
    ("--blocks", "2:2", "code 21 (staking)"),
])
def test_cli_tx_runs_the_chains_stateless_checks_before_contacting_the_node(tmp_path, capsys, flag, value, code):
    """Like the Cosmos SDK's ValidateBasic in the client: the node (a closed port here) is never asked,
    and the error carries the code CheckTx would have answered."""
    home = ["--home", str(tmp_path), "--keyring-backend", "test"]
    for name in ("owner", "miner"):
        assert run(capsys, "keys", "add", name, *home)[0] == 0

    def register(**changed: str) -> tuple[int, str, str]:
        opts = {"--endpoint": "127.0.0.1:7001", "--throughput": "1000", "--blocks": "0:2", **changed}
        return run(capsys, "tx", "miner", "register", "owner", "--miner-key", "miner", "--bond", "100unes",
                   "--model", "m", "--memory-mb", "512", *[x for kv in opts.items() for x in kv], *home,
                   "--node", "http://127.0.0.1:1")

    rc, _, err = register(**{flag: value})
    assert rc == 1 and err.startswith("error: not sent: the chain would refuse it with " + code), err
    assert err.count("\n") == 1
    rc, _, err = register()  # the same command with good values does go to the node
    assert rc == 1 and err.startswith("error: cannot reach node"), err
    # an update checks what it was given before it asks the node for the miner's other fields
    rc, _, err = run(capsys, "tx", "miner", "update", "owner", "miner", flag, value, *home, "--node", "http://127.0.0.1:1")
    assert rc == 1 and err.startswith("error: not sent: the chain would refuse it with " + code), err
    rc, _, err = run(capsys, "tx", "miner", "update", "owner", "miner", "--endpoint", "127.0.0.1:7002", *home,
                     "--node", "http://127.0.0.1:1")
    assert rc == 1 and err.startswith("error: cannot reach node"), err


def _priv_validator_key(path, seed: bytes) -> bytes:
    import base64
    import json

    from nacl.signing import SigningKey

    key = SigningKey(seed)
    pub = bytes(key.verify_key)
    path.write_text(json.dumps({
        "address": "00" * 20,
        "pub_key": {"type": "tendermint/PubKeyEd25519", "value": base64.b64encode(pub).decode()},
        "priv_key": {"type": "tendermint/PrivKeyEd25519", "value": base64.b64encode(seed + pub).decode()},
    }))
    return pub


def test_cli_create_validator_signs_a_proof_of_possession_with_the_node_key(tmp_path, capsys, monkeypatch):
    """Before: create-validator sent the consensus pubkey alone (no proof that the operator holds it)."""
    import base64

    from nacl.signing import VerifyKey

    from nesachain.modules.staking.msgs import validator_pop_bytes

    sent = []
    monkeypatch.setattr("nesachain.cli.staking_cmds.broadcast", lambda args, signer, msgs: sent.extend(msgs) or 0)
    home = ["--home", str(tmp_path), "--keyring-backend", "test"]
    assert run(capsys, "keys", "add", "op", *home)[0] == 0
    pub = _priv_validator_key(tmp_path / "pv.json", b"\x07" * 32)
    rc, _, err = run(capsys, "tx", "staking", "create-validator", "op", "--amount", "2000000", "--moniker", "n",
                     "--priv-validator-key", str(tmp_path / "pv.json"), "--chain-id", "c-1", *home)
    assert rc == 0, err
    (msg,) = sent
    assert msg.pubkey == pub
    VerifyKey(pub).verify(validator_pop_bytes("c-1", msg.operator), msg.pop)  # raises if it does not verify
    # a key kept elsewhere: the printed bytes, signed there, passed with --pubkey and --pop
    rc, out, _ = run(capsys, "tx", "staking", "pop-bytes", "op", "--chain-id", "c-1", *home)
    assert rc == 0 and bytes.fromhex(out.strip()) == validator_pop_bytes("c-1", msg.operator)
    rc, _, err = run(capsys, "tx", "staking", "create-validator", "op", "--amount", "2000000", "--moniker", "n",
                     "--pubkey", base64.b64encode(pub).decode(), "--pop", base64.b64encode(msg.pop).decode(),
                     "--chain-id", "c-1", *home)
    assert rc == 0 and sent[1] == msg, err
    rc, _, err = run(capsys, "tx", "staking", "create-validator", "op", "--amount", "2000000", "--moniker", "n",
                     "--pubkey", base64.b64encode(pub).decode(), "--chain-id", "c-1", *home)
    assert rc == 1 and "--pop" in err and len(sent) == 2
