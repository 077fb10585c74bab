"""The small labelled prompt set shipped in ``data/tiers.jsonl`` (seed for calibration
and the embedding nearest-neighbour classifier). Labels: ``fast`` or ``slow``."""

from __future__ import annotations

import functools
import json
from importlib import resources


@functools.cache
def labelled_set() -> tuple[tuple[str, str], ...]:
    text = resources.files("tierserve.routing").joinpath("data/tiers.jsonl").read_text()
    rows = (json.loads(line) for line in text.splitlines() if line.strip())
    return tuple((r["text"], r["tier"]) for r in rows)
