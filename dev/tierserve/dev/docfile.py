"""Write a generated document, or with ``--check`` say whether the committed one is stale
(what ``make crds`` / ``make values-doc`` and their freshness tests rely on)."""

from __future__ import annotations

import sys
from pathlib import Path


def write_or_check(out: Path, text: str, *, check: bool, command: str) -> int:
    """0 when written (or fresh with ``check``); 1 with ``check`` when ``out`` differs
    from ``text``, naming ``command`` that regenerates it."""
    if check:
        current = out.read_text() if out.exists() else ""
        if current != text:
            print(f"{out} is stale: run {command}", file=sys.stderr)
            return 1
        return 0
    out.write_text(text)
    return 0
