"""The wallet's keyring: named ed25519 keys in one JSON file, written atomically (mode 0600).

Two backends, as in the Cosmos SDK:
- ``file`` (default): each private key sealed with XSalsa20-Poly1305 under a key derived from the
  passphrase by Argon2id (libsodium via PyNaCl). The passphrase comes from NESAD_KEYRING_PASSPHRASE
  or a prompt.
- ``test``: private keys stored in plain text, for localnets and tests only. Never for real funds.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.pwhash
import nacl.secret
from nacl.signing import SigningKey

from nesachain.errors import KeyringError
from nesachain.files import write_json_atomic
from nesachain.types.address import address_from_pubkey, encode_address

__all__ = ["BACKENDS", "KeyInfo", "Keyring"]

BACKENDS = ("file", "test")
_VERSION = 1
_MAX_NAME = 64


@dataclass(frozen=True)
class KeyInfo:
    name: str
    address: str
    pubkey: bytes

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "address": self.address, "pubkey": self.pubkey.hex()}


def _check_name(name: str) -> None:
    if not name or len(name) > _MAX_NAME or not all(c.isalnum() or c in "-_." for c in name):
        raise KeyringError(f"invalid key name {name!r}: use 1-{_MAX_NAME} letters, digits, '-', '_', '.'")


class Keyring:
    def __init__(self, directory: str | Path, backend: str = "file", passphrase: str | None = None) -> None:
        if backend not in BACKENDS:
            raise KeyringError(f"unknown keyring backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.backend = backend
        self.path = Path(directory) / f"keyring-{backend}.json"
        self._passphrase = passphrase

    # file I/O ---------------------------------------------------------------------------------
    def _load(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"version": _VERSION, "keys": {}}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise KeyringError(f"keyring {self.path} is unreadable: {exc}") from None
        if not isinstance(data, dict) or data.get("version") != _VERSION or not isinstance(data.get("keys"), dict):
            raise KeyringError(f"keyring {self.path} is not a version-{_VERSION} keyring")
        return data

    def _save(self, data: dict[str, Any]) -> None:
        write_json_atomic(self.path, data, private=True)

    # secrets ----------------------------------------------------------------------------------
    def _need_passphrase(self) -> str:
        if self._passphrase is None:
            raise KeyringError("the file keyring needs a passphrase (set NESAD_KEYRING_PASSPHRASE)")
        if len(self._passphrase) < 8:
            raise KeyringError("keyring passphrase must be at least 8 characters")
        return self._passphrase

    def _seal(self, seed: bytes) -> dict[str, str]:
        if self.backend == "test":
            return {"seed": seed.hex()}
        salt = secrets.token_bytes(nacl.pwhash.argon2id.SALTBYTES)
        key = nacl.pwhash.argon2id.kdf(
            nacl.secret.SecretBox.KEY_SIZE,
            self._need_passphrase().encode(),
            salt,
            opslimit=nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE,
            memlimit=nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE,
        )
        box = nacl.secret.SecretBox(key)
        return {"salt": salt.hex(), "sealed": bytes(box.encrypt(seed)).hex()}

    def _open(self, name: str, entry: dict[str, str]) -> bytes:
        try:
            if self.backend == "test":
                return bytes.fromhex(entry["seed"])
            key = nacl.pwhash.argon2id.kdf(
                nacl.secret.SecretBox.KEY_SIZE,
                self._need_passphrase().encode(),
                bytes.fromhex(entry["salt"]),
                opslimit=nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE,
                memlimit=nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE,
            )
            return nacl.secret.SecretBox(key).decrypt(bytes.fromhex(entry["sealed"]))
        except nacl.exceptions.CryptoError:
            raise KeyringError(f"wrong passphrase for key {name!r}") from None
        except (KeyError, ValueError):
            raise KeyringError(f"key {name!r} in {self.path} is damaged") from None

    # API --------------------------------------------------------------------------------------
    def add(self, name: str, seed: bytes | None = None) -> KeyInfo:
        _check_name(name)
        data = self._load()
        if name in data["keys"]:
            raise KeyringError(f"key {name!r} already exists in {self.path}")
        seed = secrets.token_bytes(32) if seed is None else seed
        if len(seed) != 32:
            raise KeyringError(f"an ed25519 private key seed is 32 bytes, got {len(seed)}")
        pub = bytes(SigningKey(seed).verify_key)
        info = KeyInfo(name, encode_address(address_from_pubkey(pub)), pub)
        for other in data["keys"].values():
            if other.get("address") == info.address:
                raise KeyringError(f"this private key is already stored as {other.get('name')!r}")
        data["keys"][name] = {"name": name, "address": info.address, "pubkey": pub.hex(), **self._seal(seed)}
        self._save(data)
        return info

    def list(self) -> list[KeyInfo]:
        return [self._info(e) for _, e in sorted(self._load()["keys"].items())]

    def _info(self, entry: dict[str, str]) -> KeyInfo:
        return KeyInfo(entry["name"], entry["address"], bytes.fromhex(entry["pubkey"]))

    def _entry(self, name_or_address: str) -> dict[str, str]:
        keys = self._load()["keys"]
        if name_or_address in keys:
            entry: dict[str, str] = keys[name_or_address]
            return entry
        for entry in keys.values():
            if entry.get("address") == name_or_address:
                return entry
        raise KeyringError(f"no key named {name_or_address!r} in {self.path} (see `nesad keys list`)")

    def show(self, name_or_address: str) -> KeyInfo:
        return self._info(self._entry(name_or_address))

    def signing_key(self, name_or_address: str) -> SigningKey:
        entry = self._entry(name_or_address)
        return SigningKey(self._open(entry["name"], entry))

    def export(self, name: str) -> bytes:
        """The raw 32-byte private key seed."""
        entry = self._entry(name)
        return self._open(entry["name"], entry)

    def delete(self, name: str) -> None:
        data = self._load()
        if name not in data["keys"]:
            raise KeyringError(f"no key named {name!r} in {self.path}")
        del data["keys"][name]
        self._save(data)
