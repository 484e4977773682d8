"""`nesad`: the node, wallet and miner command line. Every failure is one line on stderr and a
non-zero exit status."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence

from nesachain.cli import (
    infer_cmds,
    inference_cmds,
    keys_cmds,
    miner_cmds,
    model_cmds,
    node_cmds,
    query_cmds,
    staking_cmds,
    tx_cmds,
    verifier_cmds,
)
from nesachain.errors import NesaError
from nesachain.logging import configure

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nesad", description="nesachain node, wallet and miner")
    sub = parser.add_subparsers(dest="command", required=True)
    for mod in (node_cmds, keys_cmds, tx_cmds, query_cmds, staking_cmds, inference_cmds, model_cmds, miner_cmds,
                infer_cmds, verifier_cmds):
        mod.register(sub)
    return parser


# argparse reads "-5unes" as an unknown option and then asks for the amount it swallowed
_NEGATIVE_AMOUNT = re.compile(r"-\d[\d.]*unes")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    for token in argv:
        if _NEGATIVE_AMOUNT.fullmatch(token):
            print(f"error: amount {token!r} is negative: amounts are whole numbers of unes above 0, e.g. 5unes",
                  file=sys.stderr)
            return 2
    args = parser.parse_args(argv)
    configure(json=False)  # logs go to stderr, stdout is the command's output; `nesad start` switches to JSON
    try:
        rc: int = args.func(args)
    except NesaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `nesad … | head`: the reader left; say nothing more, as other CLIs do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return rc


if __name__ == "__main__":
    sys.exit(main())
