"""`nesad keys` (``nesachain.cli.keys_cmds``): a key round trip, and a file keyring off a terminal."""

from __future__ import annotations

import json

from tests.cli.cli_support import run


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
