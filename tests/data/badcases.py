"""The shared bad-manifest table (``bad_manifests.yaml``) and the table of refused changes
(``bad_changes.yaml``), expanded into test cases."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, NamedTuple

import yaml

BAD_MANIFESTS = Path(__file__).parent / "bad_manifests.yaml"
BAD_CHANGES = Path(__file__).parent / "bad_changes.yaml"


def _set(obj: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        obj = obj.setdefault(p, {})
    obj[leaf] = value


def _unset(obj: dict[str, Any], dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        obj = obj[p]
    del obj[leaf]


def load_bad_cases() -> list[tuple[str, dict[str, Any], str]]:
    """(case name, manifest, expected message) for every row of the shared table."""
    table = yaml.safe_load(BAD_MANIFESTS.read_text())
    out = []
    for case in table["cases"]:
        doc = copy.deepcopy(table["bases"][case["base"]])
        for path in case.get("unset", []):
            _unset(doc, path)
        for path, value in (case.get("set") or {}).items():
            _set(doc, path, value)
        out.append((case["name"], doc, case["expect"]))
    return out


class BadChange(NamedTuple):
    """A valid object, an update of it the API server refuses, and the refusal's text."""

    name: str
    before: dict[str, Any]
    after: dict[str, Any]
    expect: str


def load_bad_transitions() -> list[BadChange]:
    """Every row of ``bad_changes.yaml``; ``before`` is a base of ``bad_manifests.yaml``."""
    bases = yaml.safe_load(BAD_MANIFESTS.read_text())["bases"]
    out = []
    for case in yaml.safe_load(BAD_CHANGES.read_text())["cases"]:
        before = copy.deepcopy(bases[case["base"]])
        after = copy.deepcopy(before)
        for path, value in case["set"].items():
            _set(after, path, value)
        out.append(BadChange(case["name"], before, after, case["expect"]))
    return out
