"""The demo's end checks: the scale-up counts only when it came during the burst from one
replica, the scale-down only after it; failures and objects not Ready are named."""

from __future__ import annotations

from typing import Any, cast

from tierserve.dev.demo.checks import Traffic, checks
from tierserve.dev.demo.traffic import DemoRecord
from tierserve.dev.demo.watch import Watcher
from tierserve.dev.live_timeline import ReplicaPoint

NAME = "smollm2-ray"
BURST = (100.0, 200.0)


def _traffic(specs: list[tuple[float, int]], records: list[DemoRecord] | None = None
             ) -> Traffic:
    watcher = Watcher(cast(Any, None))  # never started: the points are given
    watcher.points[NAME] = [ReplicaPoint(t, s, s, {}) for t, s in specs]
    return Traffic(records or [], watcher, 0.0, 0.0, BURST)


def _ok(t: Traffic, not_ready: list[str] | None = None) -> dict[str, bool]:
    return {what: ok for what, (ok, _) in checks(t, not_ready or [], NAME).items()}


def _record(ok: bool) -> DemoRecord:
    return DemoRecord("burst", "chat", 1.0, 1.5 if ok else None, 2.0, 8 if ok else 0, ok,
                      None if ok else "APITimeoutError: Request timed out.")


def test_a_run_that_scales_during_the_burst_and_back_passes() -> None:
    t = _traffic([(50, 1), (99, 1), (130, 2), (250, 2), (300, 1)], [_record(True)])
    assert all(_ok(t).values()), _ok(t)


def test_a_count_raised_before_the_burst_is_not_the_bursts_doing() -> None:
    ok = _ok(_traffic([(50, 1), (60, 2), (130, 2), (300, 1)]))
    assert not ok[f"{NAME} scaled up during the burst"]
    assert not ok[f"{NAME} scaled back down after it"]


def test_a_scale_up_after_the_burst_or_none_fails() -> None:
    assert not _ok(_traffic([(50, 1), (250, 2), (300, 1)]))[f"{NAME} scaled up during the burst"]
    ok = _ok(_traffic([(50, 1), (150, 1), (300, 1)]))
    assert not ok[f"{NAME} scaled up during the burst"]


def test_no_scale_down_after_the_burst_fails() -> None:
    ok = _ok(_traffic([(50, 1), (130, 2), (300, 2)]))
    assert ok[f"{NAME} scaled up during the burst"]
    assert not ok[f"{NAME} scaled back down after it"]


def test_failed_requests_and_objects_not_ready_are_named() -> None:
    t = _traffic([(50, 1), (130, 2), (300, 1)], [_record(True), _record(False)])
    results = checks(t, ["llmroute/qa-cpu: DeploymentsNotReady"], NAME)
    ready_ok, why = results["every LLMDeployment and LLMRoute Ready"]
    assert not ready_ok and "qa-cpu" in why
    failed_ok, why = results["no failed request (2 sent)"]
    assert not failed_ok and "APITimeoutError" in why
