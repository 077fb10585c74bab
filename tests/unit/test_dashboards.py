"""The dashboards as code: committed JSON is fresh, every panel is complete (title,
unit, legend, queries on the template variables), SLO lines come from the deployments'
own SLO series, every query is valid PromQL (real promtool), and the query lister
substitutes the variables the way Grafana does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tierserve.cli.main import main
from tierserve.dashboards import generate, names
from tierserve.dashboards.cli import parse_time, parse_vars
from tierserve.dashboards.queries import (
    annotation_queries,
    label_values,
    panel_queries,
    panels,
    substitute,
    variable_queries,
)
from tierserve.dev.cluster import prometheus

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = generate.as_dicts()
IDS = [d["uid"] for d in DASHBOARDS]
VARIABLES = ["datasource", "namespace", "model", "deployment", "route"]


@pytest.mark.parametrize("out", ["dashboards/json", "charts/tierserve/dashboards"])
def test_committed_dashboards_are_fresh(out: str) -> None:
    for name, text in generate.rendered().items():
        path = ROOT / out / name
        assert path.exists(), f"{out}/{name} missing: run `tierserve dashboards generate`"
        assert path.read_text() == text, f"{out}/{name} is stale: run " \
                                         "`tierserve dashboards generate`"
    extra = {p.name for p in (ROOT / out).glob("*.json")} - set(generate.rendered())
    assert not extra, f"{out} holds dashboards no module generates: {extra}"


def test_generate_check_reports_a_stale_copy(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dashboards", "generate", "--out", str(tmp_path)]) == 0
    assert main(["dashboards", "generate", "--out", str(tmp_path), "--check"]) == 0
    (tmp_path / "tierserve-router.json").write_text("{}")
    assert main(["dashboards", "generate", "--out", str(tmp_path), "--check"]) == 1
    assert "stale: " + str(tmp_path / "tierserve-router.json") in capsys.readouterr().out


def test_the_five_dashboards() -> None:
    assert IDS == ["tierserve-fleet", "tierserve-deployment", "tierserve-router",
                   "tierserve-autoscaler", "tierserve-operator"]


@pytest.mark.parametrize("dash", DASHBOARDS, ids=IDS)
def test_every_panel_is_complete(dash: dict[str, Any]) -> None:
    titles = [p["title"] for p in panels(dash)]
    assert len(titles) == len(set(titles)), f"panel titles repeat: {titles}"
    for p in panels(dash):
        assert p["title"] and p["targets"], p
        assert p["fieldConfig"]["defaults"].get("unit"), f"{p['title']}: no unit"
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for t in p["targets"]:
            assert t["expr"] and t["refId"], (p["title"], t)
            assert t.get("legendFormat"), f"{p['title']} {t['refId']}: no legend"
        if p["type"] == "timeseries":
            assert p["options"]["legend"]["showLegend"] is True, p["title"]


@pytest.mark.parametrize("dash", DASHBOARDS, ids=IDS)
def test_template_variables_come_from_label_values(dash: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert list(variables) == VARIABLES
    assert variables["datasource"]["type"] == "datasource"
    for name, query in variable_queries(dash).items():
        selector, label = label_values(query)
        assert label == name and selector.startswith("tierserve_"), query
        assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*"


@pytest.mark.parametrize("dash", DASHBOARDS, ids=IDS)
def test_slo_lines_are_the_deployments_own_series(dash: dict[str, Any]) -> None:
    """Any panel drawing latency against an SLO gets the target from the operator's
    ``tierserve_deployment_slo_*`` series, dashed; no target is a typed-in number."""
    for q in panel_queries(dash):
        if "SLO" in q.legend:
            assert q.target and re.search(r"tierserve_deployment_slo_t(tf|po)t_seconds",
                                          q.expr), q
        if q.target:
            assert re.search(r"tierserve_(deployment|autoscaler)_", q.expr), q
            assert not re.search(r"\b\d+\.\d+\b", q.expr), f"typed-in number: {q}"


def test_slo_drill_down_has_the_required_panels() -> None:
    dash = DASHBOARDS[1]
    kinds = {p["title"]: p["type"] for p in panels(dash)}
    assert [t for t, k in kinds.items() if k == "heatmap"] == [
        "TTFT heatmap", "TPOT heatmap (inter-token latency)", "End-to-end latency heatmap"]
    exprs = " ".join(q.expr for q in panel_queries(dash))
    for w in ("5m", "1h", "6h"):
        assert names.ttft_attainment(w) in exprs and names.tpot_attainment(w) in exprs
        assert names.burn_rate(w) in exprs
    assert "tierserve_deployment_replicas_desired" in annotation_queries(dash)["Scale events"]


def test_recording_rules_used_are_the_named_ones() -> None:
    used = {m for d in DASHBOARDS for q in panel_queries(d)
            for m in re.findall(r"tierserve:[a-z_]+:[a-z_0-9]+", q.expr)}
    assert used and used <= set(names.all_rule_names()), used - set(names.all_rule_names())
    with pytest.raises(ValueError, match="'7m'"):
        names.attainment("7m")


def _promtool() -> Path:
    try:
        return prometheus.binary().with_name("promtool")
    except prometheus.PrometheusUnavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query (as the expression of a recording rule), with the
    variables substituted as Grafana would for one selected value."""
    values = {"namespace": "team", "deployment": "chat", "model": "m", "route": "r"}
    rules = [{"record": f"check:{i}", "expr": q.expr} for i, q in enumerate(
        q for d in DASHBOARDS for q in panel_queries(d, values, "30s"))]
    rules += [{"record": f"check:a{i}", "expr": expr} for i, expr in enumerate(
        e for d in DASHBOARDS for e in annotation_queries(d, values).values())]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    out = subprocess.run([str(_promtool()), "check", "rules", str(path)],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(rules)} rules found" in out.stdout


def test_substitute_like_grafana() -> None:
    expr = 'rate(x{namespace=~"$namespace", deployment=~"${deployment}"}[$__rate_interval])'
    assert substitute(expr, {"namespace": "a", "deployment": ".*"}, "15s") == \
        'rate(x{namespace=~"a", deployment=~".*"}[15s])'
    with pytest.raises(KeyError, match=r"\$deployment"):
        substitute(expr, {"namespace": "a"})
    q = panel_queries(DASHBOARDS[0], {"namespace": "team"})[0]
    assert 'namespace=~"team"' in q.expr and 'deployment=~".*"' in q.expr


def test_time_and_variable_flags() -> None:
    assert parse_time("now-15m", now=1000.0) == 100.0
    assert parse_time("1700000000") == 1700000000.0
    with pytest.raises(Exception, match="'yesterday' is not a time"):
        parse_time("yesterday")
    assert parse_vars(["namespace=team", "route=a=b"]) == {"namespace": "team", "route": "a=b"}
    with pytest.raises(SystemExit, match="'namespace'"):
        parse_vars(["namespace"])


def test_missing_extra_names_it() -> None:
    """Without the SDK the command says which extra brings it (in a fresh interpreter
    where importing the SDK fails)."""
    code = ("import sys; sys.modules['grafana_foundation_sdk'] = None\n"
            "from tierserve.cli.main import main\n"
            "raise SystemExit(main(['dashboards', 'generate', '--out', sys.argv[1]]))")
    out = subprocess.run([sys.executable, "-c", code, "/nonexistent"], capture_output=True,
                         text=True, check=False)
    assert out.returncode == 2, out.stderr
    assert "grafana_foundation_sdk" in out.stderr and "tierserve[dashboards]" in out.stderr
