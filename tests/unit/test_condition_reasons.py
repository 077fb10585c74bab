"""Every condition reason written in the code matches ``metav1.Condition``'s pattern.

The API server refuses a status whose condition reason does not match
``^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$`` (the CRDs carry upstream's schema), and the
operator would then fail its status write on every retry. ``Condition`` checks the
pattern when a reason is used, but only on the paths a test runs; this scan reads every
string literal passed as a reason (the calls below, and any ``reason=``) in the source
roots that write conditions or Events, so a new reason with a space or a hyphen fails
here whether or not a test reaches it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PATTERN = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
# callee -> position of its reason argument
REASON_ARG = {"Problem": 0, "SizingError": 0, "Readiness": 3, "cond": 2, "post_event": 2}
SOURCES = ["operator/tierserve", "core/tierserve", "autoscaler/tierserve", "routing/tierserve"]


def _strings(node: ast.expr) -> list[str]:
    """String literals of a reason expression (a constant or ``a if c else b``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _strings(node.body) + _strings(node.orelse)
    return []


def _reasons(path: Path) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
        args = [k.value for k in node.keywords if k.arg == "reason"]
        index = REASON_ARG.get(name or "")
        if index is not None and len(node.args) > index:
            args.append(node.args[index])
        found += [(s, node.lineno) for a in args for s in _strings(a)]
    return found


def _all_reasons() -> list[tuple[str, str]]:
    return [(reason, f"{path.relative_to(ROOT)}:{line}")
            for root in SOURCES for path in sorted((ROOT / root).rglob("*.py"))
            for reason, line in _reasons(path)]


def test_the_scan_finds_the_known_reasons() -> None:
    reasons = {r for r, _ in _all_reasons()}
    for known in ("ReplicasReady", "InsufficientGPUMemory", "DeploymentNotFound",
                  "Unschedulable", "AsExpected"):
        assert known in reasons


def test_every_reason_matches_the_condition_pattern() -> None:
    bad = [f"{where}: {reason!r}" for reason, where in _all_reasons()
           if not PATTERN.match(reason)]
    assert not bad, f"condition reasons the API server refuses: {bad}"


def test_the_scan_catches_a_bad_reason(tmp_path: Path) -> None:
    source = tmp_path / "bad.py"
    source.write_text('Problem("Not Ready", "m")\ncond("Ready", False, "a-b", "m")\n')
    assert [r for r, _ in _reasons(source)] == ["Not Ready", "a-b"]
