"""The `tensorstream` console script: runs the CLI binary shipped inside the package."""
from __future__ import annotations

import os
import sys
from pathlib import Path

_BINARY = Path(__file__).resolve().parent / "_lib" / "tensorstream"


def main() -> None:
    """Replaces this process with the CLI, passing the arguments through."""
    if not _BINARY.is_file():
        sys.exit(f"tensorstream: the CLI binary is missing at {_BINARY}; reinstall the package")
    os.execv(_BINARY, ["tensorstream", *sys.argv[1:]])
