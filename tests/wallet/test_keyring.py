"""The wallet keyring: encrypted and test backends, errors, atomic writes."""

from __future__ import annotations

import json
import os

import pytest

from nesachain.errors import KeyringError
from nesachain.wallet.keyring import Keyring


def test_keyring_file_backend_encrypts_and_checks_passphrase(tmp_path):
    ring = Keyring(tmp_path, "file", "correct horse")
    info = ring.add("alice")
    raw = (tmp_path / "keyring-file.json").read_text()
    seed = ring.export("alice")
    assert seed.hex() not in raw
    assert info.address.startswith("nesa1")
    assert oct(os.stat(tmp_path / "keyring-file.json").st_mode & 0o777) == "0o600"
    with pytest.raises(KeyringError, match="wrong passphrase"):
        Keyring(tmp_path, "file", "wrong passphrase!").signing_key("alice")
    assert bytes(Keyring(tmp_path, "file", "correct horse").signing_key(info.address).verify_key) == info.pubkey


def test_keyring_test_backend_plaintext_roundtrip_import(tmp_path):
    ring = Keyring(tmp_path, "test")
    a = ring.add("a")
    seed = ring.export("a")
    ring.delete("a")
    b = ring.add("b", seed)
    assert a.address == b.address
    assert [k.name for k in ring.list()] == ["b"]


@pytest.mark.parametrize("name", ["", "has space", "x" * 65, "semi;colon"])
def test_keyring_invalid_names_rejected(tmp_path, name):
    with pytest.raises(KeyringError, match="invalid key name"):
        Keyring(tmp_path, "test").add(name)


def test_keyring_duplicates_and_missing_keys_rejected(tmp_path):
    ring = Keyring(tmp_path, "test")
    ring.add("a", b"\x01" * 32)
    with pytest.raises(KeyringError, match="already exists"):
        ring.add("a")
    with pytest.raises(KeyringError, match="already stored"):
        ring.add("b", b"\x01" * 32)
    with pytest.raises(KeyringError, match="no key named"):
        ring.show("zz")
    with pytest.raises(KeyringError, match="32 bytes"):
        ring.add("c", b"\x01" * 31)


def test_keyring_damaged_file_is_an_error_not_a_crash(tmp_path):
    (tmp_path / "keyring-test.json").write_text("{not json")
    with pytest.raises(KeyringError, match="unreadable"):
        Keyring(tmp_path, "test").list()
    (tmp_path / "keyring-test.json").write_text(json.dumps({"version": 99, "keys": {}}))
    with pytest.raises(KeyringError, match="version"):
        Keyring(tmp_path, "test").list()


def test_keyring_short_passphrase_rejected(tmp_path):
    with pytest.raises(KeyringError, match="at least 8"):
        Keyring(tmp_path, "file", "short").add("a")
    assert not (tmp_path / "keyring-file.json").exists()
