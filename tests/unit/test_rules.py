"""The alert and recording rules of ``dashboards/rules/`` with the real promtool (Debian's
``prometheus`` package, as for the live tests): ``promtool check rules`` is clean, every
``promtool test rules`` file passes, every alert has a test that fires it and one where
it must stay quiet, every alert carries its labels and annotations with a runbook anchor
that exists in docs/observability.md, the chart ships the same files, and every
recording rule the dashboards query is recorded."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tierserve.dashboards import names
from tierserve.dev.cluster import prometheus

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "dashboards" / "rules"
CHART_RULES = ROOT / "charts" / "tierserve" / "rules"
RULE_FILES = sorted(RULES.glob("*.yaml"))
TEST_FILES = sorted((RULES / "tests").glob("*.yaml"))
DOCS = ROOT / "docs" / "observability.md"


@pytest.fixture(scope="module")
def promtool() -> str:
    try:
        return str(prometheus.promtool())
    except prometheus.PrometheusUnavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)


def _rules(kind: str) -> list[dict[str, Any]]:
    """Every rule of the rule files that has key ``kind`` (alert or record)."""
    return [r for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"]
            for r in g["rules"] if kind in r]


ALERTS = _rules("alert")


def test_promtool_check_rules(promtool: str) -> None:
    assert [f.name for f in RULE_FILES] == ["alerts.yaml", "recording.yaml"]
    res = _run(promtool, "check", "rules", *map(str, RULE_FILES))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "FAILED" not in res.stdout + res.stderr


@pytest.mark.parametrize("test_file", TEST_FILES, ids=[f.stem for f in TEST_FILES])
def test_promtool_test_rules(promtool: str, test_file: Path) -> None:
    res = _run(promtool, "test", "rules", str(test_file))
    assert res.returncode == 0, res.stdout + res.stderr


def _alert_tests() -> list[dict[str, Any]]:
    return [case for f in TEST_FILES for test in yaml.safe_load(f.read_text())["tests"]
            for case in test.get("alert_rule_test", [])]


def test_every_alert_has_a_test_that_fires_it_and_one_that_must_not() -> None:
    cases = _alert_tests()
    fired = {c["alertname"] for c in cases if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    alerts = {a["alert"] for a in ALERTS}
    assert len(alerts) == len(ALERTS) >= 8
    assert not alerts - fired, f"alerts no promtool test fires: {sorted(alerts - fired)}"
    assert not alerts - quiet, f"alerts no promtool test keeps quiet: {sorted(alerts - quiet)}"
    assert not (fired | quiet) - alerts, f"tests of unknown alerts: {(fired | quiet) - alerts}"


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ +(.+?) *$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("alert", ALERTS, ids=[a["alert"] for a in ALERTS])
def test_alert_labels_annotations_and_runbook(alert: dict[str, Any]) -> None:
    assert alert["alert"].startswith("Tierserve")
    assert alert["labels"]["severity"] in ("critical", "warning")
    notes = alert["annotations"]
    assert set(notes) == {"summary", "description", "runbook"}, notes
    page, _, anchor = notes["runbook"].partition("#")
    assert page == "docs/observability.md"
    assert anchor == alert["alert"].lower()
    assert anchor in _anchors(DOCS.read_text()), f"no section #{anchor} in {page}"


def test_chart_ships_the_same_rule_files() -> None:
    shipped = sorted(p.name for p in CHART_RULES.glob("*.yaml"))
    assert shipped == [f.name for f in RULE_FILES], "run `make rules`"
    for f in RULE_FILES:
        assert (CHART_RULES / f.name).read_bytes() == f.read_bytes(), \
            f"charts/tierserve/rules/{f.name} differs from dashboards/rules: run `make rules`"


def test_the_dashboards_rule_names_are_recorded() -> None:
    recorded = {r["record"] for r in _rules("record")}
    missing = set(names.all_rule_names()) - recorded
    assert not missing, f"the dashboards query rules nobody records: {sorted(missing)}"
    for w in names.BURN_WINDOWS:  # what the burn-rate alerts read
        assert names.burn_rate(w) in recorded
