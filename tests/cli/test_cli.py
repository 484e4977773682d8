"""The `nesad` command line without a chain: keys, argument errors, unreachable nodes."""

from __future__ import annotations

import json

import pytest

from nesachain.cli.main import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_keys_add_show_export_import_roundtrip(tmp_path, capsys):
    home = ["--home", str(tmp_path), "--keyring-backend", "test"]
    rc, out, _ = run(capsys, "keys", "add", "alice", *home, "-o", "json")
    assert rc == 0
    alice = json.loads(out)
    rc, out, _ = run(capsys, "keys", "show", "alice", "-a", *home)
    assert (rc, out.strip()) == (0, alice["address"])
    rc, seed, err = run(capsys, "keys", "export", "alice", *home)
    assert rc == 0 and "private key" in err
    rc, _, _ = run(capsys, "keys", "delete", "alice", *home)
    rc, out, _ = run(capsys, "keys", "import", "again", seed.strip(), *home, "-o", "json")
    assert rc == 0 and json.loads(out)["address"] == alice["address"]


def test_cli_file_keyring_without_passphrase_off_terminal_is_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("NESAD_KEYRING_PASSPHRASE", raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    rc, _, err = run(capsys, "keys", "add", "a", "--home", str(tmp_path), "--keyring-backend", "file")
    assert rc == 1 and err.startswith("error: ") and err.count("\n") == 1 and "NESAD_KEYRING_PASSPHRASE" in err


def test_cli_unreachable_node_is_one_line_error(capsys):
    rc, _, err = run(capsys, "status", "--node", "http://127.0.0.1:1")
    assert rc == 1 and err.startswith("error: cannot reach node") and err.count("\n") == 1


@pytest.mark.parametrize("amount", ["-5", "1.5", "10atom", "0", str(2**64), "-5unes"])
def test_cli_bad_amount_rejected_before_signing(tmp_path, capsys, amount):
    rc, _, err = run(capsys, "tx", "bank", "send", "a", "b", amount, "--home", str(tmp_path),
                     "--keyring-backend", "test", "--node", "http://127.0.0.1:1")
    assert rc in (1, 2) and f"amount {amount!r}" in err and err.count("\n") == 1, err


@pytest.mark.parametrize("abci", ["unix:///tmp/x.sock", "tcp://127.0.0.1:99999"])
def test_cli_start_rejects_bad_listen_address(tmp_path, capsys, abci):
    rc, _, err = run(capsys, "start", "--home", str(tmp_path), "--abci", abci)
    assert rc == 1 and "--abci must look like" in err and err.count("\n") == 1


def test_cli_start_with_a_state_that_is_no_database_is_one_line_and_leaves_it_alone(tmp_path, capsys):
    (tmp_path / "state.db").write_bytes(b"not sqlite")
    rc, _, err = run(capsys, "start", "--home", str(tmp_path), "--abci", "tcp://127.0.0.1:0")
    assert rc == 1 and err.startswith("error: cannot open the app's state") and err.count("\n") == 1, err
    assert (tmp_path / "state.db").read_bytes() == b"not sqlite"
    rc, _, err = run(capsys, "start", "--home", str(tmp_path / "state.db" / "sub"), "--abci", "tcp://127.0.0.1:0")
    assert rc == 1 and err.startswith("error: cannot open the app's state"), err  # a file where a folder must be


@pytest.mark.parametrize(("flag", "value"), [("--poll", "0"), ("--tolerance", "nan")])
def test_cli_verifier_refuses_a_poll_or_tolerance_it_cannot_run_with(tmp_path, capsys, flag, value):
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "manifest.json").write_text("{}")
    rc, _, err = run(capsys, "verifier", "start", "op", "--shards", f"m={tmp_path / 'shards'}", flag, value,
                     "--home", str(tmp_path), "--keyring-backend", "test", "--node", "http://127.0.0.1:1")
    assert rc == 1 and err.startswith(f"error: {flag} must be") and err.count("\n") == 1, err


def test_cli_mistyped_address_says_what_is_wrong_with_it(tmp_path, capsys):
    home = ["--home", str(tmp_path), "--keyring-backend", "test"]
    rc, out, _ = run(capsys, "keys", "add", "alice", *home, "-o", "json")
    address = json.loads(out)["address"]
    typo = address[:-1] + ("q" if address[-1] != "q" else "p")  # one character off: the checksum fails
    rc, _, err = run(capsys, "query", "bank", "balance", typo, *home, "--node", "http://127.0.0.1:1")
    assert rc == 1 and err.count("\n") == 1 and "bad checksum" in err and "no key has that name" in err, err
    rc, _, err = run(capsys, "query", "bank", "balance", "bob", *home, "--node", "http://127.0.0.1:1")
    assert rc == 1 and err.startswith("error: no key named 'bob'"), err


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


@pytest.mark.parametrize(("option", "code"), [
    (["--fee", "-5"], "code 8 (sdk): fee"), (["--memo", "x" * 257], "code 2 (sdk): memo is 257 characters"),
    (["--sequence", "-1"], "code 2 (sdk): sequence -1"),
])
def test_cli_tx_checks_fee_memo_and_sequence_before_contacting_the_node(tmp_path, capsys, option, code):
    home = ["--home", str(tmp_path), "--keyring-backend", "test"]
    assert run(capsys, "keys", "add", "a", *home)[0] == 0
    rc, _, err = run(capsys, "tx", "bank", "send", "a", "a", "5", *home, "--node", "http://127.0.0.1:1", *option)
    assert rc == 1 and err.startswith("error: not sent: the chain would refuse it with " + code), err


def test_cli_tx_sends_again_when_another_tx_of_the_account_took_its_sequence(tmp_path, capsys, monkeypatch):
    """A validator's or miner's agents sign with the same account; the wallet signs again with the
    sequence CheckTx expects, or, after a tx dropped at recheck, with the sequence read again."""
    from nesachain.types.encoding import encode
    from nesachain.wallet.txs import TxOutcome

    outcomes = [TxOutcome("A", 0, 3, "sdk", "account expects sequence 8, tx has 7", "check",
                          encode({"expected_sequence": 8})),
                TxOutcome("A", 0, 3, "sdk", "dropped from the mempool at recheck: another tx took sequence 8",
                          "check"),
                TxOutcome("B", 12, 0, "", "", "deliver")]
    sent: list[int | None] = []

    def fake_send(rpc, key, account, msgs, chain_id, fee, memo, sequence, wait, timeout):  # one signed tx
        sent.append(sequence)
        return outcomes[len(sent) - 1]

    monkeypatch.setattr("nesachain.wallet.txs._send", fake_send)
    monkeypatch.setattr("nesachain.wallet.txs.time.sleep", lambda s: None)
    home = ["--home", str(tmp_path), "--keyring-backend", "test"]
    assert run(capsys, "keys", "add", "a", *home)[0] == 0
    rc, out, _ = run(capsys, "tx", "bank", "send", "a", "a", "5", *home, "--chain-id", "c")
    assert (rc, sent) == (0, [None, 8, None]) and "committed at height 12" in out
    sent.clear()  # with --sequence the user chose the sequence: no second try
    outcomes[:] = outcomes[:1]
    rc, out, _ = run(capsys, "tx", "bank", "send", "a", "a", "5", *home, "--chain-id", "c", "--sequence", "7")
    assert (rc, sent) == (1, [7]) and "code 3 (sdk)" in out
