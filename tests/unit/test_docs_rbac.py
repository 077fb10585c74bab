"""docs/install.md's RBAC table is what the chart creates: the chart is rendered with the
real helm (every optional role switched on) and each rule of each Role and ClusterRole,
with the ServiceAccount it is bound to, must be one row of the table, and each row one
rule. A verb added to a template without the doc (or the other way round) fails here."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.unit.chart_support import CHART, helm_binary

INSTALL = Path(__file__).resolve().parents[2] / "docs" / "install.md"
RELEASE, SECRET = "rel", "router-keys"
# (role, kind, bound to, API group, resources, resource names, verbs)
Rule = tuple[str, str, str, str, frozenset[str], frozenset[str], frozenset[str]]


def _placeholders(name: str) -> str:
    if name == SECRET:
        return "<router.apiKeysSecret>"
    return re.sub(rf"^{RELEASE}-", "<release>-", name)


def _rendered() -> list[dict[str, Any]]:
    res = subprocess.run([helm_binary(), "template", RELEASE, str(CHART), "-n", "ns",
                          "--set", f"router.apiKeysSecret={SECRET}"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return [d for d in yaml.safe_load_all(res.stdout) if d]


def chart_rules(docs: list[dict[str, Any]]) -> set[Rule]:
    bound = {d["roleRef"]["name"]: d["subjects"][0]["name"] for d in docs
             if d["kind"] in ("RoleBinding", "ClusterRoleBinding")}
    out = set()
    for role in (d for d in docs if d["kind"] in ("Role", "ClusterRole")):
        name = role["metadata"]["name"]
        for rule in role["rules"]:
            [group] = rule["apiGroups"]
            out.add((_placeholders(name), role["kind"], _placeholders(bound[name]), group,
                     frozenset(rule["resources"]),
                     frozenset(map(_placeholders, rule.get("resourceNames") or [])),
                     frozenset(rule["verbs"])))
    return out


def _code(cell: str) -> list[str]:
    return re.findall(r"`([^`]*)`", cell)


def doc_rules(text: str) -> set[Rule]:
    """The rows of the table under ``## RBAC``; an empty role cell repeats the row above."""
    section = text.split("## RBAC", 1)[1]
    out, last = set(), ["", "", ""]
    for line in section.splitlines():
        if not line.startswith("| ") or line.startswith("| role"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0]:
            last = [_code(cells[0])[0], cells[1], _code(cells[2])[0]]
        resources, _, names = cells[4].partition(" named ")
        group = _code(cells[3])[0].strip('"')
        # "(only with ...)" notes name values, not resources
        kept = _code(resources.split(" (")[0])
        out.add((last[0], last[1], last[2], group, frozenset(kept), frozenset(_code(names)),
                 frozenset(v.strip() for v in cells[5].split(","))))
    return out


def test_the_rbac_table_is_what_the_chart_creates() -> None:
    chart = chart_rules(_rendered())
    doc = doc_rules(INSTALL.read_text())
    assert len(chart) > 20
    assert not chart - doc, f"rules the chart creates that docs/install.md lacks: {chart - doc}"
    assert not doc - chart, f"rows of docs/install.md the chart does not create: {doc - chart}"


def test_the_table_parser() -> None:
    text = ("## RBAC\n\n| role | kind | bound to | API group | resources | verbs |\n"
            "|---|---|---|---|---|---|\n"
            "| `<release>-x` (only with `a.b`) | Role | `sa` | `\"\"` (core) | `pods` "
            "| get, list |\n"
            "| | | | `ray.io` | `leases` named `<release>-l` | get |\n")
    assert doc_rules(text) == {
        ("<release>-x", "Role", "sa", "", frozenset({"pods"}), frozenset(), frozenset(
            {"get", "list"})),
        ("<release>-x", "Role", "sa", "ray.io", frozenset({"leases"}),
         frozenset({"<release>-l"}), frozenset({"get"}))}
