"""`nesad tx bank send` and the options of every tx (``nesachain.cli.tx_cmds``): amounts, fee, memo and
sequence checked before the node is contacted, and a tx sent again when another took its sequence."""

from __future__ import annotations

import pytest

from tests.cli.cli_support import run


@pytest.mark.parametrize("amount", ["-5", "1.5", "10atom", "0", str(2**64), "-5unes"])
def test_cli_bad_amount_rejected_before_signing(tmp_path, capsys, amount):
    rc, _, err = run(capsys, "tx", "bank", "send", "a", "b", amount, "--home", str(tmp_path),
                     "--keyring-backend", "test", "--node", "http://127.0.0.1:1")
    assert rc in (1, 2) and f"amount {amount!r}" in err and err.count("\n") == 1, err


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


class _DryRunNode:
    """A node that answers the queries a tx needs and fails the test if anything is sent."""

    def __init__(self) -> None:
        self.sent = 0

    def chain_id(self) -> str:
        return "dry-1"

    def abci_query(self, path, data=None, height=0):
        import json

        from nesachain.wallet.rpc import QueryResponse

        answers = {"auth/account": {"address": "x", "sequence": 4},
                   "auth/params": {"min_fee": 1000, "max_tx_bytes": 65536, "fee_per_byte": 3, "fee_per_msg": 500}}
        return QueryResponse(0, "", "", json.dumps(answers[path]).encode(), 1)

    def broadcast_tx_sync(self, tx):
        self.sent += 1
        raise AssertionError("a dry run sent a tx")


def test_cli_tx_dry_run_prints_size_messages_and_required_fee_and_sends_nothing(tmp_path, capsys, monkeypatch):
    """Before: there was no --dry-run (argparse refused it), and the fee was the flat minimum."""
    import json

    from nesachain.tx.fees import required_fee

    node = _DryRunNode()
    monkeypatch.setattr("nesachain.cli.tx_cmds.rpc_from", lambda args: node)
    home = ["--home", str(tmp_path), "--keyring-backend", "test"]
    assert run(capsys, "keys", "add", "a", *home)[0] == 0
    rc, out, err = run(capsys, "tx", "bank", "send", "a", "a", "5", *home, "--dry-run", "-o", "json")
    assert rc == 0, err
    shown = json.loads(out)
    assert shown["sent"] is False and node.sent == 0
    assert shown["msgs"] == 1 and shown["types"] == ["bank/MsgSend"] and shown["sequence"] == 4
    assert shown["fee"] == shown["required_fee"] == required_fee(shown["bytes"], 1, min_fee=1000, fee_per_byte=3,
                                                                   fee_per_msg=500)
    rc, out, _ = run(capsys, "tx", "bank", "send", "a", "a", "5", *home, "--dry-run", "--fee", "1000")
    assert rc == 1 and "fee: 1000unes" in out and "(the chain would refuse this fee)" in out and node.sent == 0
    assert "size: " in out and "messages: 1 (bank/MsgSend)" in out


@pytest.mark.parametrize("option", [["--dry-run"], ["--fee", "5000"], ["--sequence", "3"], ["--no-wait"]])
def test_cli_inference_request_refuses_single_tx_options_before_running_anything(tmp_path, capsys, option):
    """A request sends several txs (open, then close) and pays a real escrow. Before: it took the single-tx
    options and ignored them, so ``--dry-run`` opened a session, ran the prompt and paid for it."""
    with pytest.raises(SystemExit) as exc:
        run(capsys, "tx", "inference", "request", "a", "--model", "m", "--shards", str(tmp_path), "--prompt", "hi",
            "--home", str(tmp_path), "--keyring-backend", "test", "--node", "http://127.0.0.1:1", *option)
    assert exc.value.code == 2
    assert f"unrecognized arguments: {option[0]}" in capsys.readouterr().err
