"""Where the bench scripts put their tables: ``docs/benchmarks.md``, each between its own markers.

    <!-- bench:NAME -->
    Measured on DATE, MACHINE, torch VERSION: `COMMAND`

    TABLE
    <!-- /bench:NAME -->

A script run with ``--write-docs`` (``add_write_docs_flag``) hands its markdown to ``write_section`` (or
``write_sections`` for several tables at once), which replaces what lies between that name's markers and
nothing else. If a pair of markers is missing (or doubled), the file is left as it was and the script exits
with a message naming the markers: put them where the table belongs and run again. Not a test.

``Lines`` prints a table as it is built and keeps it for ``write_section``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["DOCS", "Lines", "add_write_docs_flag", "command_line", "header", "machine", "replace_sections",
           "write_section", "write_sections"]

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "benchmarks.md"
ENV_SHOWN = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")  # variables that change what a bench measures


class SectionError(ValueError):
    """The file lacks one pair of a section's markers."""


def add_write_docs_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--write-docs", action="store_true",
                        help="also write this run's table(s) into docs/benchmarks.md between their markers "
                             "(<!-- bench:NAME --> ... <!-- /bench:NAME -->)")


class Lines:
    """Markdown lines, printed as they come (a slow bench shows its rows as it measures them) and kept."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)

    def text(self) -> str:
        return "\n".join(self.lines).strip("\n")


def command_line(argv: list[str] | None = None) -> str:
    """The command that ran this script, as a reader would type it from the repository's root."""
    argv = list(sys.argv if argv is None else argv)
    script = Path(os.path.abspath(argv[0]))  # not resolve(): .venv/bin/python is a link out of the repository
    shown = str(script.relative_to(REPO)) if script.is_relative_to(REPO) else argv[0]
    exe = Path(os.path.abspath(sys.executable))
    python = str(exe.relative_to(REPO)) if exe.is_relative_to(REPO) else exe.name
    env = [f"{k}={shlex.quote(os.environ[k])}" for k in ENV_SHOWN if k in os.environ]
    return " ".join([*env, python, shlex.join([shown, *argv[1:]])])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f", {int(line.split()[1]) / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return ""


def machine() -> str:
    """CPU model and core count (and memory), torch's version, and the GPU where this run used CUDA."""
    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    where = f"{_cpu_model()}, {cores} cores" + (f" ({usable} usable)" if usable != cores else "") + _memory_gib()
    try:
        import torch
    except ImportError:
        return f"{where}, no torch"
    where += f", torch {torch.__version__}"
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        where += f", {torch.cuda.get_device_name()}"
    return where


def header(command: str, when: datetime.date | None = None) -> str:
    """The line above a table: when, where and how it was measured."""
    day = (when or datetime.datetime.now(datetime.UTC).date()).isoformat()
    return f"Measured on {day}, {machine()}: `{command}`"


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"


def replace_sections(text: str, sections: Mapping[str, str], head: str) -> str:
    """``text`` with each named section's body replaced by ``head`` and its markdown; SectionError if a
    section does not have exactly one pair of markers, in order."""
    for name, body in sections.items():
        begin, end = _markers(name)
        if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
            raise SectionError(f"needs one {begin} … {end} pair for the {name} table")
        before, rest = text.split(begin)
        after = rest.split(end)[1]
        table = body.strip("\n")
        text = f"{before}{begin}\n{head}\n\n{table}\n{end}{after}"
    return text


def write_sections(sections: Mapping[str, str], command: str | None = None, path: Path = DOCS) -> None:
    """Put each table (name -> markdown) between its markers in ``path``, under one header line; all or
    nothing, written atomically. Missing markers: the file is left alone and the script exits non-zero."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise SystemExit(f"cannot write the bench tables: {exc}") from None
    try:
        text = replace_sections(text, sections, header(command or command_line()))
    except SectionError as exc:
        raise SystemExit(f"{path}: {exc}; {path.name} left as it was") from None
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    print(f"\nwrote {', '.join(sections)} into {path}", file=sys.stderr)


def write_section(name: str, markdown: str, command: str | None = None, path: Path = DOCS) -> None:
    """``write_sections`` for one table."""
    write_sections({name: markdown}, command, path)
