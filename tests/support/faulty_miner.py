"""``python tests/support/faulty_miner.py FAULT ARGS…``: ``nesad miner start ARGS…`` with a fault put in.

FAULT is ``perturb=REL`` (outputs with relative noise REL), ``no-reveal`` (commits, never reveals),
``refuse-data`` (serves no frames to verifiers) or ``hostile-log=KIND`` (answers verifiers with garbage:
list, types, huge, slow). The localnet's ``start_miner(program=…)`` runs it.
"""

from __future__ import annotations

import sys
from typing import Any

from faults import DataWithholdingServer, SilentResultAgent, hostile_log_server, perturbing

from nesachain.cli.main import build_parser
from nesachain.cli.miner_cmds import miner_settings, print_ready
from nesachain.errors import NesaError
from nesachain.logging import configure
from nesachain.miner.start import start_miner


def seams(fault: str) -> dict[str, Any]:
    if fault.startswith("perturb="):
        return {"server_class": perturbing(float(fault.removeprefix("perturb=")))}
    if fault == "no-reveal":
        return {"result_agent": SilentResultAgent}
    if fault == "refuse-data":
        return {"server_class": DataWithholdingServer}
    if fault.startswith("hostile-log="):
        return {"server_class": hostile_log_server(fault.removeprefix("hostile-log="))}
    raise SystemExit(f"unknown fault {fault!r}: perturb=REL, no-reveal, refuse-data or hostile-log=KIND")


def main(argv: list[str]) -> int:
    fault, rest = argv[0], argv[1:]
    args = build_parser().parse_args(rest)
    if (args.command, getattr(args, "miner_command", None)) != ("miner", "start"):
        raise SystemExit("give `miner start …` after the fault")
    configure(json=False)
    try:
        start_miner(miner_settings(args), print_ready, **seams(fault))
    except NesaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
