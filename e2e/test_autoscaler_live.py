"""The autoscaler's live path, end to end on real local servers.

``tierserve operator --target local`` runs an LLMDeployment as a Ray Serve app of the
simulated engine (profile ``qwen3.6-35b-a3b-gb10``: slow, batch-sensitive steps);
``tierserve router --kubernetes`` serves its LLMRoute; Debian's Prometheus (unpacked by
:mod:`tierserve.dev.cluster.prometheus`) scrapes the engine's vLLM metrics every 2 s; and
``tierserve autoscaler --kubeconfig --prometheus-url`` discovers the deployment from the
API server (no targets file). A closed-loop load step of 24 concurrent requests through
the router overloads one replica (its decode step passes the 35 ms TPOT target at about
14 sequences), while three replicas serve it within target. The test shows:

* the scale-up write comes while the load is on, seconds after the step, with an Event
  ``Scaled`` naming the reason, and the new replicas become ready;
* ``status.slo`` carries the observed TTFT/TPOT p95 against target and the attainment;
* after the load stops, the count goes back to 1 only after the scale-down
  stabilization window;
* with Prometheus stopped the autoscaler holds (says why, writes nothing) under load.

The measured figures are printed (``-s``) and quoted in docs/autoscaler.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tierserve.autoscaler.discovery import metrics_url
from tierserve.dev.cluster import prometheus
from tierserve.dev.cluster.harness import ClusterHandle
from tierserve.dev.cluster.procs import free_port, terminate
from tierserve.dev.waiting import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.ray]

NAME, MODEL = "chat", "chat"
DOWN_WINDOW_S = 30
IDLE_S = 30  # scaleToZeroAfterSeconds (the CRD's minimum)
CONCURRENCY = 24


def _deployment(ns: str) -> dict[str, Any]:
    """4B parameters with wide KV heads on an L4: the operator sizes 11 sequences per
    replica at the 35 ms TPOT target, close to what the simulated profile does (its step
    is ~30 ms at 11 sequences, ~47 ms at 24)."""
    return {"apiVersion": "tierserve.io/v1alpha1", "kind": "LLMDeployment",
            "metadata": {"name": NAME, "namespace": ns},
            "spec": {"model": {"name": MODEL + "-model", "uri": "hf://org/m",
                               "parametersBillions": 4, "maxContextLength": 2048,
                               "architecture": {"numLayers": 32, "numKvHeads": 32,
                                                "headDim": 128}},
                     "runtime": "rayServe", "engine": "simulated",
                     "engineProfile": "qwen3.6-35b-a3b-gb10",
                     "accelerator": {"type": "L4", "gpusPerReplica": 1},
                     "replicas": 1, "minReplicas": 1, "maxReplicas": 3,
                     "workload": {"inputTokens": 16, "outputTokens": 64},
                     "slo": {"ttftP95Ms": 2000, "tpotP95Ms": 35, "targetAttainment": 0.9},
                     "autoscaling": {"scaleUpStabilizationSeconds": 0,
                                     "scaleDownStabilizationSeconds": DOWN_WINDOW_S,
                                     "coldStartSeconds": 5}}}


def _route(ns: str) -> dict[str, Any]:
    return {"apiVersion": "tierserve.io/v1alpha1", "kind": "LLMRoute",
            "metadata": {"name": MODEL, "namespace": ns},
            "spec": {"model": MODEL,
                     "variants": [{"name": "only", "deployment": NAME, "weight": 100}]}}


def _get(cluster: ClusterHandle, ns: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(cluster.kubectl("get", "llmd", NAME, "-n", ns,
                                                     "-o", "json"))
    return obj


def _ready(obj: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def _scaled_events(cluster: ClusterHandle, ns: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(cluster.kubectl(
        "get", "events", "-n", ns, "--field-selector", f"involvedObject.name={NAME}",
        "-o", "json"))["items"]
    scaled = [e for e in items if e.get("reason") == "Scaled"]
    return sorted(scaled, key=lambda e: (e.get("eventTime") or e.get("lastTimestamp") or "",
                                         e["metadata"].get("creationTimestamp") or ""))


@dataclass
class Timeline:
    """spec/ready replicas and status.slo polled once a second (monotonic times)."""

    cluster: ClusterHandle
    ns: str
    points: list[tuple[float, int, int, dict[str, Any]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Timeline:
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                obj = _get(self.cluster, self.ns)
                st = obj.get("status") or {}
                self.points.append((time.monotonic(), int(obj["spec"]["replicas"]),
                                    int(st.get("readyReplicas") or 0), st.get("slo") or {}))
            self._stop.wait(1.0)

    def stop(self) -> None:
        self._stop.set()

    @property
    def spec(self) -> int:
        return self.points[-1][1] if self.points else 0

    @property
    def ready(self) -> int:
        return self.points[-1][2] if self.points else 0

    @property
    def slo(self) -> dict[str, Any]:
        return self.points[-1][3] if self.points else {}

    def first(self, pred: Callable[[int, int], bool], after: float) -> float:
        return next(t for t, s, r, _ in self.points if t >= after and pred(s, r))

    def last_increase(self) -> float:
        ups = [t for (_, s0, _, _), (t, s1, _, _) in zip(self.points, self.points[1:],
                                                         strict=False) if s1 > s0]
        return ups[-1]


class Load:
    """A closed loop of ``concurrency`` non-streamed completions through the router."""

    def __init__(self, base_url: str, concurrency: int) -> None:
        self.base_url, self.concurrency = base_url, concurrency
        self.ok, self.failed, self.errors = 0, 0, list[str]()
        self.done: list[tuple[float, float]] = []  # (start, end) of each completed request
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.started = time.monotonic()
        self._thread.start()

    async def _main(self) -> None:
        from openai import AsyncOpenAI

        client = AsyncOpenAI(base_url=self.base_url, api_key="unused", max_retries=0,
                             timeout=60)
        await asyncio.gather(*(self._worker(client) for _ in range(self.concurrency)))
        await client.close()

    async def _worker(self, client: Any) -> None:
        while not self._stop.is_set():
            start = time.monotonic()
            try:
                await client.completions.create(model=MODEL, prompt="tell me a story " * 4,
                                                max_tokens=64)
                self.ok += 1
                self.done.append((start, time.monotonic()))
            except Exception as exc:  # counted; the test asserts there are none
                self.failed += 1
                self.errors.append(repr(exc))

    def completed_since(self, t: float) -> int:
        """Requests started at or after ``t`` that have completed."""
        return sum(1 for start, _ in self.done if start >= t)

    def mean_ms_per_token(self, lo: float, hi: float) -> float | None:
        """Client-side mean latency per output token of requests run wholly in [lo, hi]."""
        runs = [(e - s) * 1000 / 64 for s, e in self.done if s >= lo and e <= hi]
        return round(sum(runs) / len(runs), 1) if runs else None

    def stop(self) -> float:
        self._stop.set()
        self._thread.join(timeout=90)
        return time.monotonic()


class AutoscalerProcess:
    def __init__(self, kubeconfig: Path, ns: str, prom_url: str, log: Path) -> None:
        self.log = log
        self.metrics_port = free_port()
        cmd = [sys.executable, "-m", "tierserve.cli.main", "autoscaler",
               "--kubeconfig", str(kubeconfig), "--namespace", ns,
               "--metrics-port", str(self.metrics_port),
               "--prometheus-url", prom_url, "--interval-s", "2", "--stale-after-s", "10",
               # with at most 3 replicas a step of one is worth doing; and the next
               # scale-down may follow after one window (default 60 s) to keep the test short
               "--knob", "down_min_step=1", "--knob", f"down_cooldown_s={DOWN_WINDOW_S}"]
        self.proc = subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def metrics(self) -> dict[str, float]:
        """The autoscaler's own series (``name{labels}`` -> value), {} when unreachable."""
        try:
            with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
                text = resp.read().decode()
        except OSError:
            return {}
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("tierserve_autoscaler_"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def decisions(self, action: str) -> float:
        """How many rounds ended in ``action`` ("hold", "up", ...) for the deployment."""
        return sum(v for k, v in self.metrics().items()
                   if k.startswith("tierserve_autoscaler_decisions_total{")
                   and f'action="{action}"' in k and f'deployment="{NAME}"' in k)

    def stop(self) -> None:
        terminate(self.proc)


@contextlib.contextmanager
def live_stack(cluster: ClusterHandle, namespace: str, operator_factory: Callable[..., Any],
               tmp_path: Path, deployment: dict[str, Any],
               ready_limit_s: float = 300) -> Iterator[dict[str, Any]]:
    """operator (local target) + ``deployment`` (named NAME) and its route + router +
    Prometheus + autoscaler, all stopped on exit. Skips (fails on CI) without Prometheus."""
    from e2e.test_router_cluster import RouterProcess

    prometheus.binary_or_skip()
    operator_factory("local-as", "-n", namespace, "--target", "local", "--local-workdir",
                     str(tmp_path / "local"), "--local-ray-port", str(free_port())).start()
    cluster.apply([deployment, _route(namespace)])
    wait_until(lambda: _ready(_get(cluster, namespace)), ready_limit_s,
               "Ray Serve deployment Ready")
    endpoint = _get(cluster, namespace)["status"]["endpoint"]
    target = prometheus.ScrapeTarget(metrics_url(endpoint),
                                     prometheus.deployment_labels(namespace, NAME))
    prom = prometheus.LocalPrometheus(tmp_path / "prom", [target], interval_s=2.0).start()
    router = RouterProcess(cluster.kubeconfig, namespace, tmp_path / "router.log")
    autoscaler = AutoscalerProcess(cluster.kubeconfig, namespace, prom.url,
                                   tmp_path / "autoscaler.log")
    timeline = Timeline(cluster, namespace).start()
    try:
        wait_until(lambda: MODEL in router.models(), 60, "router serves the route")
        wait_until(lambda: f"autoscaling {namespace}/{NAME}" in autoscaler.logs(), 60,
                 "autoscaler discovered the deployment")
        yield {"router": router, "prom": prom, "autoscaler": autoscaler,
               "timeline": timeline}
    finally:
        timeline.stop()
        autoscaler.stop()
        router.stop()
        prom.stop()


@pytest.fixture
def stack(cluster: ClusterHandle, namespace: str, operator_factory: Callable[..., Any],
          tmp_path: Path) -> Iterator[dict[str, Any]]:
    """operator (local target) + deployment + router + Prometheus + autoscaler."""
    with live_stack(cluster, namespace, operator_factory, tmp_path,
                    _deployment(namespace)) as parts:
        yield parts


def test_scales_up_under_a_load_step_and_down_after_the_window(
        cluster: ClusterHandle, namespace: str, stack: dict[str, Any]) -> None:
    tl: Timeline = stack["timeline"]
    autoscaler: AutoscalerProcess = stack["autoscaler"]
    figures: dict[str, Any] = {}
    wait_until(lambda: tl.spec == 1 and tl.ready == 1, 30, "one ready replica before the step")

    load = Load(stack["router"].url + "/v1", CONCURRENCY)
    try:
        wait_until(lambda: tl.spec > 1, 120, f"scale-up under load\n{autoscaler.logs()[-3000:]}")
        t_up = tl.first(lambda s, r: s > 1, load.started)
        wait_until(lambda: tl.ready == tl.spec > 1, 180, "new replicas ready")
        t_ready = tl.first(lambda s, r: r == s > 1, t_up)
        events = _scaled_events(cluster, namespace)
        assert events and all("scaled to" in e["message"] for e in events), events
        up_event = events[0]["message"]
        assert "demand" in up_event or "need" in up_event or "desired" in up_event, up_event
        # status.slo: observed p95s against the targets and the attainment
        wait_until(lambda: tl.slo.get("observedTpotP95Ms") is not None
                 and tl.slo.get("attainment") is not None, 60, "status.slo observed values")
        slo_under_load = dict(tl.slo)
        assert slo_under_load["tpotTargetMs"] == 35 and slo_under_load["ttftTargetMs"] == 2000
        # keep the step on for five closed-loop rounds on the new capacity
        wait_until(lambda: load.completed_since(t_ready) >= 5 * CONCURRENCY, 120,
                   f"{5 * CONCURRENCY} requests served on the scaled deployment")
        slo_scaled = dict(tl.slo)
        peak = max(s for _, s, _, _ in tl.points)
        # the decision is explained in the autoscaler's own metrics too
        own = autoscaler.metrics()
        for series in ("desired_replicas", "current_replicas", "ready_replicas",
                       "predicted_attainment", "observed_attainment"):
            assert any(k.startswith(f"tierserve_autoscaler_{series}{{") and NAME in k
                       for k in own), (series, own)
        for series in ("input_demand_replicas", "input_arrival_rate_rps",
                       "input_tpot_p95_seconds"):
            assert any(k.startswith(f"tierserve_autoscaler_{series}{{") and NAME in k
                       for k in own), (series, own)
        figures["autoscaler_metrics"] = {k: v for k, v in own.items()
                                         if "replicas{" in k or "attainment{" in k}
    finally:
        t_stop = load.stop()
    assert load.failed == 0, load.errors[:5]

    wait_until(lambda: tl.spec == 1, 240, f"scale-down\n{autoscaler.logs()[-3000:]}")
    t_first_down = tl.first(lambda s, r: s < peak, t_stop)
    t_down = tl.first(lambda s, r: s == 1, t_stop)
    t_last_up = tl.last_increase()
    figures.update({
        "step_to_scale_up_write_s": round(t_up - load.started, 1),
        "scale_up_to_ready_s": round(t_ready - t_up, 1),
        "peak_replicas": peak,
        "requests_ok": load.ok,
        "slo_at_scale_up": slo_under_load,
        "slo_after_5_rounds_scaled": slo_scaled,
        "client_ms_per_token_on_1_replica": load.mean_ms_per_token(load.started, t_ready),
        "client_ms_per_token_scaled": load.mean_ms_per_token(t_ready, t_stop),
        "load_stop_to_first_scale_down_s": round(t_first_down - t_stop, 1),
        "load_stop_to_scale_down_to_1_s": round(t_down - t_stop, 1),
        "last_scale_up_to_scale_down_s": round(t_down - t_last_up, 1),
        "scale_down_window_s": DOWN_WINDOW_S,
        "scaled_events": [e["message"] for e in _scaled_events(cluster, namespace)],
    })
    print("\nautoscaler live figures:", json.dumps(figures, indent=1))
    # No scale-down while the load was on. How long after it stops (the window) and how
    # soon after the step the scale-up came are figures, printed above: the window's rule
    # is asserted on a fake clock in tests/unit/test_autoscaler_policy.py.
    assert t_first_down > t_stop, figures

    _scale_to_zero_and_wake(cluster, namespace, stack)

    # --- hold: Prometheus gone, load back on: the autoscaler says why and writes nothing
    seen = len(autoscaler.logs())
    stack["prom"].stop()
    t_kill = time.monotonic()
    n_events = len(_scaled_events(cluster, namespace))
    load = Load(stack["router"].url + "/v1", CONCURRENCY)

    def held() -> list[str]:
        return [line for line in autoscaler.logs()[seen:].splitlines()
                if f"holding {namespace}/{NAME}" in line]

    try:
        wait_until(lambda: bool(held()), 60, "the autoscaler holds on stale metrics")
        t_hold = time.monotonic()
        held_line = held()[0]
        assert "old" in held_line or "no metrics" in held_line, held_line
        holds = autoscaler.decisions("hold")
        wait_until(lambda: autoscaler.decisions("hold") >= holds + 5, 60,
                   "five more rounds deciding to hold under load")
        holding = {k: v for k, v in autoscaler.metrics().items()
                   if k.startswith("tierserve_autoscaler_holding{") and NAME in k}
        assert sum(holding.values()) == 1 and any(
            v == 1 and ('reason="stale_metrics"' in k or 'reason="no_metrics"' in k)
            for k, v in holding.items()), holding
    finally:
        load.stop()
    assert all(s == 1 for t, s, _, _ in tl.points if t >= t_kill), "wrote while holding"
    assert len(_scaled_events(cluster, namespace)) == n_events
    print("hold:", json.dumps({"prometheus_stop_to_hold_s": round(t_hold - t_kill, 1),
                               "line": held_line.split(": ", 1)[-1]}))


def _patch_spec(cluster: ClusterHandle, ns: str, spec: dict[str, Any]) -> None:
    cluster.kubectl("patch", "llmd", NAME, "-n", ns, "--type=merge", "-p",
                    json.dumps({"spec": spec}))


def _scale_to_zero_and_wake(cluster: ClusterHandle, ns: str, stack: dict[str, Any]) -> None:
    """Idle at one replica with scale to zero allowed: the autoscaler goes to zero (an
    Event says why); the next request is held by the router, which wakes the deployment
    through the scale subresource; the autoscaler does not undo the wake."""
    from openai import OpenAI

    tl: Timeline = stack["timeline"]
    autoscaler: AutoscalerProcess = stack["autoscaler"]
    t_patch = time.monotonic()
    _patch_spec(cluster, ns, {"minReplicas": 0,
                              "autoscaling": {"scaleToZeroAfterSeconds": IDLE_S}})
    wait_until(lambda: tl.spec == 0, IDLE_S + 90, f"scale to zero\n{autoscaler.logs()[-3000:]}")
    t_zero = tl.first(lambda s, r: s == 0, t_patch)
    zero_event = _scaled_events(cluster, ns)[-1]["message"]
    assert zero_event.startswith("scaled to 0:") and "scale to zero" in zero_event, zero_event
    wait_until(lambda: tl.ready == 0, 60, "the local runtime stopped at zero")
    client = OpenAI(base_url=stack["router"].url + "/v1", api_key="unused", max_retries=0,
                    timeout=150)
    t_ask = time.monotonic()
    answer = client.completions.create(model=MODEL, prompt="wake up", max_tokens=8)
    t_answer = time.monotonic()
    assert answer.choices[0].text
    t_wake = tl.first(lambda s, r: s >= 1, t_ask)
    assert tl.spec == 1 and all(s >= 1 for t, s, _, _ in tl.points if t >= t_wake), \
        "the wake was undone"
    # back to a floor of one for the rest of the test (its idle clock restarted at the wake)
    _patch_spec(cluster, ns, {"minReplicas": 1, "autoscaling": {"scaleToZeroAfterSeconds": None}})
    print("scale to zero:", json.dumps({
        "patch_to_zero_s": round(t_zero - t_patch, 1), "ask_to_wake_write_s":
        round(t_wake - t_ask, 1), "ask_to_answer_s": round(t_answer - t_ask, 1),
        "zero_event": zero_event}))
