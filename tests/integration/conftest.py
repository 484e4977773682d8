"""Integration fixtures: real CometBFT localnets on 127.0.0.1, each in its own folder and ports."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from nesachain.localnet.net import Localnet


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_base_port(n_nodes: int, rng: random.Random | None = None) -> int:
    """A base port whose 10-wide slots for n_nodes are all free (tries at most 200 bases)."""
    rng = rng or random.Random()
    for _ in range(200):
        base = rng.randrange(11000, 32000, 100)  # below the ephemeral range (32768+): no clash with client ports
        if all(_free(base + 10 * i + k) for i in range(n_nodes) for k in range(3)):
            return base
    raise RuntimeError("no free port range found on 127.0.0.1")


def start_localnet(root: Path, n: int = 4, **kwargs: object) -> Localnet:
    net = Localnet(root, n=n, base_port=free_base_port(n), chain_id="nesa-test-1", **kwargs)  # type: ignore[arg-type]
    net.init()
    try:
        net.up(wait_height=2)
        net.guard()
    except BaseException:
        net.down()
        raise
    return net


@pytest.fixture(scope="module")
def localnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Localnet]:
    net = start_localnet(tmp_path_factory.mktemp("localnet"))
    try:
        yield net
    finally:
        net.down()
