"""`nesad query` and `nesad status` (``nesachain.cli.query_cmds``) without a chain: an unreachable node, and a
mistyped address, each one line on stderr."""

from __future__ import annotations

import json

from tests.cli.cli_support import run


def test_cli_unreachable_node_is_one_line_error(capsys):
    rc, _, err = run(capsys, "status", "--node", "http://127.0.0.1:1")
    assert rc == 1 and err.startswith("error: cannot reach node") and err.count("\n") == 1


def test_cli_mistyped_address_says_what_is_wrong_with_it(tmp_path, capsys):
    home = ["--home", str(tmp_path), "--keyring-backend", "test"]
    rc, out, _ = run(capsys, "keys", "add", "alice", *home, "-o", "json")
    address = json.loads(out)["address"]
    typo = address[:-1] + ("q" if address[-1] != "q" else "p")  # one character off: the checksum fails
    rc, _, err = run(capsys, "query", "bank", "balance", typo, *home, "--node", "http://127.0.0.1:1")
    assert rc == 1 and err.count("\n") == 1 and "bad checksum" in err and "no key has that name" in err, err
    rc, _, err = run(capsys, "query", "bank", "balance", "bob", *home, "--node", "http://127.0.0.1:1")
    assert rc == 1 and err.startswith("error: no key named 'bob'"), err
