"""The demo's report from synthetic records and cluster objects: client-side figures per
route (failures count as misses), deployments with status.slo, the tier split from the
router's counters, the A/B readout, the Scaled Events, and the three files written."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from tierserve.dev.demo import report
from tierserve.dev.demo.figures import p95_ms, slo_figures
from tierserve.dev.demo.readouts import COST_SAVED, ESCALATIONS, TIER_REQUESTS
from tierserve.dev.demo.traffic import DemoRecord
from tierserve.dev.live_timeline import ReplicaPoint


def _ok(model: str, start: float, ttft: float, phase: str = "burst") -> DemoRecord:
    # 11 tokens over 0.2 s after the first: TPOT 20 ms, within both deployments' targets
    return DemoRecord(phase, model, start, start + ttft, start + ttft + 0.2, 11, True, None)


RECORDS = [
    _ok("qa", 0, 0.5, "steady"), _ok("qa", 10, 2.0), _ok("qa", 11, 1.0),
    DemoRecord("burst", "qa", 12, None, 13, 0, False, "APIStatusError: 502"),
    _ok("chat", 1, 0.3, "steady"), _ok("chat", 12, 0.9),
    _ok("smollm2-135m-instruct", 14, 0.2),
]


def _ready(status: str = "True") -> list[dict[str, str]]:
    return [{"type": "Ready", "status": status, "reason": "Serving"}]


def _deployment(name: str, model: str, runtime: str, ttft: int, tpot: int,
                status_slo: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"model": {"name": model}, "runtime": runtime,
                     "slo": {"ttftP95Ms": ttft, "tpotP95Ms": tpot, "targetAttainment": 0.9}},
            "status": {"replicas": 1, "readyReplicas": 1, "conditions": _ready(),
                       "slo": status_slo}}


DEPLOYMENTS = [
    _deployment("smollm2-ray", "smollm2-135m-instruct", "rayServe", 1000, 40,
                {"observedTtftP95Ms": 800.0, "observedTpotP95Ms": 31.5, "attainment": 0.95,
                 "targetAttainment": 0.9}),
    _deployment("gemma3-triton", "gemma-3-270m", "triton", 1500, 60),
]
AB = {"variants": [{"name": "ray", "requests": 12, "errorRate": 0.0, "ttftP50Ms": 120.0,
                    "ttftP95Ms": 300.0, "tpotP50Ms": 20.0, "tpotP95Ms": 25.0},
                   {"name": "triton", "requests": 9, "errorRate": 0.1}],
      "test": "two-sided Mann-Whitney U on ttft_seconds", "pValue": 0.31,
      "significant": False}
ROUTES = [
    {"metadata": {"name": "qa-cpu"}, "status": {"conditions": _ready()},
     "spec": {"model": "qa", "tiers": {"fast": "gemma3-triton", "slow": "smollm2-ray"}}},
    {"metadata": {"name": "chat-ab"}, "status": {"conditions": _ready("False"), "ab": AB},
     "spec": {"model": "chat", "variants": [
         {"name": "ray", "deployment": "smollm2-ray", "weight": 50},
         {"name": "triton", "deployment": "gemma3-triton", "weight": 50}]}},
]
EVENTS = [
    {"reason": "Scaled", "message": "scaled 2 -> 1: attainment above target (idle)",
     "involvedObject": {"name": "smollm2-ray"}, "lastTimestamp": "2026-12-01T10:05:00Z"},
    {"reason": "Created", "message": "RayService created",
     "involvedObject": {"name": "smollm2-ray"}, "lastTimestamp": "2026-12-01T10:00:00Z"},
    {"reason": "Scaled", "message": "scaled 1 -> 2: predicted TTFT p95 over the SLO",
     "involvedObject": {"name": "smollm2-ray"}, "eventTime": "2026-12-01T10:02:00Z"},
]
POINTS = {"smollm2-ray": [ReplicaPoint(0, 1, 1, {}), ReplicaPoint(12, 2, 1, {}),
                          ReplicaPoint(20, 2, 2, {}), ReplicaPoint(30, 1, 1, {})]}


def _sample(value: float, **labels: str) -> dict[str, Any]:
    return {"metric": labels, "value": [1700000000.0, str(value)]}


def prom(query: str) -> list[dict[str, Any]]:
    return {TIER_REQUESTS: [_sample(30, route="qa", tier="fast"),
                            _sample(10, route="qa", tier="slow"),
                            _sample(5, route="other", tier="fast")],
            ESCALATIONS: [_sample(4, route="qa", reason="lowConfidence"),
                          _sample(1, route="qa", reason="error")],
            COST_SAVED: [_sample(0.0123, route="qa")]}[query]


def _summary(prom_query: Any = prom) -> dict[str, Any]:
    return report.summarize(RECORDS, POINTS, EVENTS, ROUTES, DEPLOYMENTS, prom_query)


def test_requests_failures_and_phases_are_counted_from_the_records() -> None:
    s = _summary()
    assert (s["requests"], s["answered"], s["failed"]) == (7, 6, 1)
    assert s["errors"] == [{"error": "APIStatusError: 502", "count": 1}]
    assert [(p["phase"], p["requests"], p["failed"]) for p in s["phases"]] == [
        ("steady", 2, 0), ("burst", 5, 1)]


def test_routes_are_judged_against_their_first_deployment_and_failures_miss() -> None:
    routes = {r["model"]: r for r in _summary()["routes"]}
    qa = routes["qa"]
    # the fast tier's targets (1500/60 ms); of 4 requests the 2 s TTFT and the failure miss
    assert (qa["slo_from"], qa["ttft_slo_ms"], qa["mode"]) == ("gemma3-triton", 1500, "tiered")
    assert (qa["requests"], qa["failed"], qa["attainment"]) == (4, 1, 0.5)
    assert qa["ttft_p95_ms"] == 2000.0 and qa["tpot_p95_ms"] == 20.0
    chat = routes["chat"]
    assert (chat["slo_from"], chat["attainment"], chat["ready"]) == ("smollm2-ray", 1.0, False)
    direct = routes["smollm2-135m-instruct"]  # asked by the deployment's served name
    assert (direct["mode"], direct["deployments"], direct["requests"]) == (
        "direct", ["smollm2-ray"], 1)


def test_deployments_carry_readiness_replicas_targets_and_status_slo() -> None:
    deps = {d["name"]: d for d in _summary()["deployments"]}
    ray = deps["smollm2-ray"]
    assert (ray["ready"], ray["replicas_min"], ray["replicas_max"]) == (True, 1, 2)
    assert ray["status_slo"]["observedTpotP95Ms"] == 31.5
    assert ray["slo_target"] == {"ttft_p95_ms": 1000, "tpot_p95_ms": 40, "attainment": 0.9}
    assert deps["gemma3-triton"]["replicas_max"] is None  # never polled


def test_tier_split_escalations_and_cost_saved_come_from_the_router_counters() -> None:
    tiers = _summary()["tiers"]
    assert tiers["source"] == "prometheus" and list(tiers["routes"]) == ["qa"]
    qa = tiers["routes"]["qa"]
    assert (qa["fast"], qa["slow"], qa["slow_share"]) == (30, 10, 0.25)
    assert qa["escalations"] == {"lowConfidence": 4, "error": 1}
    assert qa["cost_saved_usd"] == pytest.approx(0.0123)


def test_without_prometheus_or_when_it_fails_the_report_says_so() -> None:
    assert "no Prometheus" in _summary(None)["tiers"]["note"]

    def broken(query: str) -> list[dict[str, Any]]:
        raise OSError("connection refused")

    assert "connection refused" in _summary(broken)["tiers"]["note"]


def test_ab_readout_and_scale_events_with_their_reasons() -> None:
    s = _summary()
    assert [(a["route"], a["pValue"]) for a in s["ab"]] == [("chat-ab", 0.31)]
    assert [e["message"].split(":")[0] for e in s["scale_events"]] == [
        "scaled 1 -> 2", "scaled 2 -> 1"]  # Scaled only, oldest first


def test_markdown_has_every_section_with_its_figures() -> None:
    md = report.render_summary(_summary())
    assert "Requests: 7 sent, 6 answered, 1 failed." in md
    assert "| qa-cpu | qa | tiered | yes | 4 | 1 | 2000 / 1500 | 20 / 60 | 50.0% |" in md
    assert "| smollm2-ray | rayServe | yes | 1/1 | 1-2 | 800 / 1000 | 31.5 / 40 |" in md
    assert "| qa | 30 | 10 | 25.0% | error 1, lowConfidence 4 | 0.012300 |" in md
    assert "p = 0.31, significant: no" in md and "| triton | 9 | 10.0% | -/- | -/- |" in md
    assert "predicted TTFT p95 over the SLO" in md
    assert "no Prometheus" in report.render_summary(_summary(None))


def test_write_puts_summary_json_md_and_a_png_timeline_in_the_folder(tmp_path: Path) -> None:
    out = report.write(tmp_path / "demo-output", RECORDS, POINTS, EVENTS, ROUTES, DEPLOYMENTS,
                       prom)
    assert out == tmp_path / "demo-output"
    assert json.loads((out / "summary.json").read_text()) == _summary()
    assert (out / "summary.md").read_text() == report.render_summary(_summary())
    assert (out / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_empty_run_still_writes_a_report(tmp_path: Path) -> None:
    out = report.write(tmp_path, [], {}, [], [], [], None)
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["requests"], summary["routes"], summary["scale_events"]) == (0, [], [])
    assert (out / "timeline.png").exists()


def test_one_token_answers_have_no_tpot_but_still_count_for_ttft_and_attainment() -> None:
    # a buffered tier answer replayed as one chunk: 1 token, first chunk to end ~0 s
    one = DemoRecord("burst", "qa", 0, 0.4, 0.4001, 1, True, None)
    fig = slo_figures([one, _ok("qa", 1, 0.5)], 1000, 60)
    assert fig["tpot_p50_ms"] == 20.0 and fig["ttft_p95_ms"] == 500.0
    assert fig["attainment"] == 1.0
    assert math.isnan(slo_figures([one], 1000, 60)["tpot_p95_ms"])
    assert math.isnan(p95_ms([one])[1])
