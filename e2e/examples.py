"""Which files of ``examples/`` are Tierserve objects, so that an e2e test applies every
one of them (``e2e/test_operator.py``'s examples fixture applies them all to the real API
server) and a new example is covered the moment it is added.

A file is a set of Tierserve objects when every YAML document in it has an
``apiVersion`` of the ``tierserve.io`` group; anything else in ``examples/`` (the
router's configuration file) is checked by ``tests/unit/test_examples_applied.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
GROUP = "tierserve.io/"


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def is_custom_resources(path: Path) -> bool:
    docs = documents(path)
    return bool(docs) and all(str(d.get("apiVersion", "")).startswith(GROUP) for d in docs)


def custom_resource_files(folder: Path = EXAMPLES) -> list[Path]:
    """Every example made of Tierserve objects, LLMDeployments first (routes name them)."""
    files = [p for p in sorted(folder.glob("*.yaml")) if is_custom_resources(p)]
    kinds = {p: {d["kind"] for d in documents(p)} for p in files}
    return sorted(files, key=lambda p: "LLMDeployment" not in kinds[p])
