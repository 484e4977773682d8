"""A test run SIGKILLed while its localnet runs: the guard stops every process the localnet recorded."""

from __future__ import annotations

import json
import selectors
import subprocess
import sys
import time
from pathlib import Path

from nesachain.localnet.net import Localnet, pid_running
from tests.integration.conftest import free_base_port

REPO = Path(__file__).resolve().parents[2]


def test_a_killed_test_run_leaves_no_localnet_process_behind(tmp_path: Path) -> None:
    root = tmp_path / "net"
    code = f"""
import json, time
from nesachain.localnet.net import Localnet
net = Localnet({str(root)!r}, n=1, base_port={free_base_port(1)}, chain_id="nesa-guard-1")
net.init()
net.up(wait_height=2)
net.guard()
print(json.dumps(net.pids()), flush=True)
time.sleep(300)
"""
    run = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           text=True, cwd=REPO)
    pids: dict[str, int] = {}
    try:
        assert run.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(run.stdout, selectors.EVENT_READ)
            assert sel.select(timeout=120), "the localnet did not come up within 120 s"
        pids = json.loads(run.stdout.readline())
        assert sorted(pids) == ["app0", "node0"] and all(pid_running(p) for p in pids.values())
        time.sleep(1.5)  # the guard polls every 0.5 s: it must not stop a localnet whose starter lives
        assert all(pid_running(p) for p in pids.values())
        run.kill()  # as a CI timeout would: no fixture teardown runs
        run.wait()
        deadline = time.monotonic() + 30
        while any(pid_running(p) for p in pids.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(pid_running(p) for p in pids.values()), "the guard did not stop the localnet"
        while "guard: stopped" not in (root / "guard.log").read_text() and time.monotonic() < deadline + 15:
            time.sleep(0.2)  # it says so after the last process is gone
        assert "guard: stopped" in (root / "guard.log").read_text()
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        if root.exists():
            Localnet.load(root).down()  # only what it recorded, by pid
