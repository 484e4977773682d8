"""Stop a localnet once the process that started it is gone, even if that process was SIGKILLed.

    python -m nesachain.localnet.guard ROOT PARENT_PID

``Localnet.guard()`` starts this for the test suites' localnets: a test run killed before its
fixtures could stop their nodes (a CI timeout, ``kill -9``) then leaves no node, app, miner or
verifier behind. It signals only the processes recorded in ``ROOT/pids.json`` (by pid, as ``down``
does), and exits by itself once none of them runs.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from nesachain.localnet.net import Localnet, pid_running

POLL_S = 0.5


def watch(root: Path, parent: int, poll_s: float = POLL_S) -> str:
    """Wait until ``parent`` is gone (then stop the localnet: "stopped") or the localnet's processes
    are (nothing to do: "already down")."""
    net = Localnet.load(root)
    while True:
        if not pid_running(parent):
            net.down()
            return "stopped"
        if not any(net.recorded_alive(name) for name in net.pids()):
            return "already down"
        time.sleep(poll_s)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or not args[1].isdigit():
        print("usage: python -m nesachain.localnet.guard ROOT PARENT_PID", file=sys.stderr)
        return 2
    print(f"guard: {watch(Path(args[0]), int(args[1]))}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
