"""The README's tables for SREs cannot go stale: every condition reason the code can set
has a row in *Condition reasons* (and no row names a reason the code no longer sets),
every Event reason that is not a condition's is named below the table, and every alert
in ``dashboards/rules/`` has a row in the alerts table (and no row is an alert that does
not exist).

The reasons come from the same scan of the source as ``test_condition_reasons.py``
(every string literal passed as a reason), plus the autoscaler's ``Verdict`` reasons and
``*_EVENT`` constants, so a new ``Problem("NewReason", ...)`` fails here until the README
says what it means and what to do.
"""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from tests.unit.test_condition_reasons import SOURCES, _all_reasons, _reasons, _strings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
RULES = ROOT / "dashboards" / "rules"
# Event reasons besides the Ready changes: post_event's literals, and the autoscaler's
# attainability Events (constants *_EVENT, posted through its EventSink); SLOUnattainable
# is also a sizing reason of the Ready condition, so it has a row as well
EVENTS = {"Scaled", "Pruned", "SLOUnattainable", "SLOAttainable"}
EVENT_ONLY = EVENTS - {"SLOUnattainable"}
# condition writers the shared scan does not know: callee -> position of the reason
MORE_WRITERS = {"Verdict": 1}


def _more_reasons(path: Path) -> set[str]:
    """Reasons passed to MORE_WRITERS, and the string constants named ``*_EVENT``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            index = MORE_WRITERS.get(name or "")
            if index is not None and len(node.args) > index:
                found |= set(_strings(node.args[index]))
        elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id.endswith("_EVENT") for t in node.targets):
            found |= set(_strings(node.value))
    return found


def code_reasons() -> set[str]:
    scanned = {r for root in SOURCES for path in (ROOT / root).rglob("*.py")
               for r in _more_reasons(path)}
    return {r for r, _ in _all_reasons()} | scanned


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:] if end < 0 else text[start:end]


def first_cells(text: str) -> list[str]:
    """The first column's code span of each table row (``| `X` | ...`` or a link ``[X]``)."""
    out = []
    for line in text.splitlines():
        if not line.startswith("| ") or line.startswith("|---"):
            continue
        cell = line.split("|")[1].strip()
        for left, right in (("`", "`"), ("[", "]")):
            if cell.startswith(left) and right in cell[1:]:
                out.append(cell[1:].split(right)[0])
    return out


def _reason_section() -> str:
    return _section(README.read_text(), "### Condition reasons")


def test_every_condition_reason_has_a_row() -> None:
    code = code_reasons() - EVENT_ONLY
    rows = set(first_cells(_reason_section()))
    assert not code - rows, f"README's condition reasons table lacks {sorted(code - rows)}"
    assert not rows - code, f"README names reasons the code never sets: {sorted(rows - code)}"


def test_event_reasons_are_named_and_really_posted() -> None:
    assert code_reasons() >= EVENTS  # still posted as Events somewhere
    section = _reason_section()
    for reason in EVENTS:
        assert f"`{reason}`" in section.split("| `AsExpected` |")[-1], reason


def _alerts() -> set[str]:
    names = set()
    for path in RULES.glob("*.yaml"):
        for group in (yaml.safe_load(path.read_text()) or {}).get("groups") or []:
            names |= {r["alert"] for r in group.get("rules") or [] if "alert" in r}
    return names


def test_every_alert_has_a_row() -> None:
    alerts = _alerts()
    section = _section(README.read_text(), "## For SREs")
    table = section.split("**Alerts**", 1)[1].split("###", 1)[0]
    rows = set(first_cells(table))
    assert len(alerts) >= 8
    assert not alerts - rows, f"README's alerts table lacks {sorted(alerts - rows)}"
    assert not rows - alerts, f"README lists alerts that do not exist: {sorted(rows - alerts)}"


def test_first_cells_reads_code_and_link_cells() -> None:
    table = ("| reason | x |\n|---|---|\n| `Ready` | y |\n| [Alert](docs/o.md#alert) | z |\n"
             "| plain | w |\n")
    assert first_cells(table) == ["Ready", "Alert"]


def test_the_scan_sees_a_new_reason(tmp_path: Path) -> None:
    source = tmp_path / "new.py"
    source.write_text('Problem("QuotaExceeded", "m")\nVerdict(False, "TooBig", "m")\n'
                      'LATE_EVENT = "Late"\n')
    assert [r for r, _ in _reasons(source)] == ["QuotaExceeded"]
    assert _more_reasons(source) == {"TooBig", "Late"}
    assert "QuotaExceeded" not in first_cells(_reason_section())
