"""Generate Python bindings for CometBFT's ABCI protos.

The gogoproto options only steer Go code generation; the wire format depends on field numbers and
types alone, so they are stripped before protoc runs and the gogoproto module is not needed.
Usage: gen_proto.py COMETBFT_PROTO_DIR OUT_DIR
"""

from __future__ import annotations

import pathlib
import re
import shutil
import sys

import grpc_tools
from grpc_tools import protoc

_FIELD_OPTS = re.compile(r"\s*\[\s*\(gogoproto\.[^\]]*\]")
_LINE_OPTS = re.compile(r"^\s*option\s+\(gogoproto\.[^;]*;\s*$", re.M)
_IMPORT = re.compile(r'^\s*import\s+"gogoproto/gogo.proto";\s*$', re.M)
_NEEDED = ("abci", "crypto", "types", "version")


def main() -> int:
    src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    stage = out.parent / (out.name + ".src")
    shutil.rmtree(stage, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    files = []
    for sub in _NEEDED:
        for proto in sorted((src / "tendermint" / sub).glob("*.proto")):
            text = proto.read_text()
            text = _IMPORT.sub("", text)
            text = _LINE_OPTS.sub("", text)
            text = _FIELD_OPTS.sub("", text)
            rel = proto.relative_to(src)
            dst = stage / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_text(text)
            files.append(str(rel))
    include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    rc = protoc.main(["protoc", f"-I{stage}", f"-I{include}", f"--python_out={out}", *files])
    if rc != 0:
        print(f"protoc failed with {rc}", file=sys.stderr)
        return rc
    for d in out.rglob("*"):
        if d.is_dir():
            (d / "__init__.py").touch()
    shutil.rmtree(stage)
    return 0


if __name__ == "__main__":
    sys.exit(main())
