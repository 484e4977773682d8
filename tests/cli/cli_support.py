"""Run ``nesad`` in this process, as the CLI's tests do: its exit status, stdout and stderr."""

from __future__ import annotations

import pytest

from nesachain.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err
