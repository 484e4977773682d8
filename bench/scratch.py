"""A bench script's scratch folder (SmolLM2's shards alone are 0.5 GB), removed when the script ends.

The folder goes on a normal exit, an exception, Ctrl-C and SIGTERM (turned into ``SystemExit``, so the
script's ``finally`` blocks also stop the miners it started); only SIGKILL leaves it behind.
"""

from __future__ import annotations

import atexit
import shutil
import signal
import sys
import tempfile
from pathlib import Path


def scratch_dir(prefix: str) -> Path:
    """A new folder under the system's temporary directory, removed at exit."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    return path
