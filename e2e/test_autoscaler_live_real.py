"""The autoscaler's live path on real llama.cpp replicas.

The stack of ``e2e/test_autoscaler_live.py`` (``tierserve operator --target local``,
``tierserve router --kubernetes``, Debian's Prometheus every 2 s, ``tierserve autoscaler
--prometheus-url`` discovering the deployment), but the LLMDeployment is SmolLM2-135M on
Ray Serve with engine ``llamacpp``, accelerator ``cpu``, one thread per replica (two
replicas fit on the two cores). llama.cpp serves one sequence per replica, so a closed
loop of 3 streaming clients makes requests queue and TTFT rise on one replica. The test
asserts the behaviour, not the timing:

* the autoscaler scales 1 -> 2 while the load is on (Event ``Scaled``), and the second
  replica becomes ready;
* ``status.slo`` carries the observed TTFT/TPOT p95 and attainment from the engines' real
  metrics, against the targets;
* after the load stops the count goes back to 1, and not before the load stopped.

The figures (client-side p50/p95 and attainment per phase, delays, ``status.slo``) are
printed (``-s``); with ``TIERSERVE_LIVE_PLOT=docs/img/autoscaler-live-real.png`` the run's
timeline is drawn there (docs/autoscaler.md quotes one run).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.test_autoscaler_live import (
    DOWN_WINDOW_S,
    MODEL,
    NAME,
    AutoscalerProcess,
    Timeline,
    _get,
    _scaled_events,
    live_stack,
)
from tierserve.dev.cluster.harness import ClusterHandle
from tierserve.dev.live_timeline import ReplicaPoint, RequestRecord, phase_figures, plot_timeline
from tierserve.dev.real_models import SMOLLM2
from tierserve.dev.waiting import wait_until

# Ray start, model loading, a replica starting under load and the scale-down window
# take longer than the suite's default 300 s per test on a loaded 2-core machine.
pytestmark = [pytest.mark.cluster, pytest.mark.ray, pytest.mark.llamacpp,
              pytest.mark.timeout(900)]

CLIENTS = 3
OUTPUT_TOKENS = 32
TTFT_SLO_MS, TPOT_SLO_MS = 1000, 40
SCALED_REQUESTS = 30  # served after the second replica is ready, before the load stops
QUESTIONS = ("What is the capital of France?", "Name three primary colours.",
             "What is 12 times 7?", "Why is the sky blue?", "Spell the word 'apple'.")


def _deployment(ns: str) -> dict[str, Any]:
    """examples/ray-smollm2-cpu.yaml with the autoscaler's windows shortened."""
    return {"apiVersion": "tierserve.io/v1alpha1", "kind": "LLMDeployment",
            "metadata": {"name": NAME, "namespace": ns},
            "spec": {"model": {"name": MODEL + "-model", "uri": SMOLLM2,
                               "parametersBillions": 0.135, "quantization": "q4_1",
                               "maxContextLength": 2048,
                               "architecture": {"numLayers": 30, "numKvHeads": 3,
                                                "headDim": 64}},
                     "runtime": "rayServe", "engine": "llamacpp",
                     "accelerator": {"type": "cpu", "threadsPerReplica": 1},
                     "replicas": 1, "minReplicas": 1, "maxReplicas": 2,
                     "workload": {"inputTokens": 64, "outputTokens": OUTPUT_TOKENS},
                     "slo": {"ttftP95Ms": TTFT_SLO_MS, "tpotP95Ms": TPOT_SLO_MS,
                             "targetAttainment": 0.9},
                     "autoscaling": {"scaleUpStabilizationSeconds": 0,
                                     "scaleDownStabilizationSeconds": DOWN_WINDOW_S,
                                     "coldStartSeconds": 10}}}


class StreamingLoad:
    """``clients`` closed-loop streaming chat requests through the router, each recorded
    (start, first token, end, tokens) as the client saw it."""

    def __init__(self, base_url: str, clients: int) -> None:
        self.base_url, self.clients = base_url, clients
        self.records: list[RequestRecord] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.started = time.monotonic()
        self._thread.start()

    async def _main(self) -> None:
        from openai import AsyncOpenAI

        client = AsyncOpenAI(base_url=self.base_url, api_key="unused", max_retries=0,
                             timeout=120)
        await asyncio.gather(*(self._worker(client, i) for i in range(self.clients)))
        await client.close()

    async def _worker(self, client: Any, worker: int) -> None:
        n = worker
        while not self._stop.is_set():
            n += self.clients
            start = time.monotonic()
            try:
                self.records.append(await self._one(client, QUESTIONS[n % len(QUESTIONS)],
                                                    start))
            except Exception as exc:  # counted; the test asserts there are none
                self.errors.append(repr(exc))

    async def _one(self, client: Any, question: str, start: float) -> RequestRecord:
        stream = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": question}],
            max_tokens=OUTPUT_TOKENS, temperature=0, stream=True,
            stream_options={"include_usage": True}, extra_body={"ignore_eos": True})
        first, tokens = 0.0, 0
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content and not first:
                first = time.monotonic()
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
        assert first and tokens, (first, tokens)
        return RequestRecord(start, first, time.monotonic(), tokens)

    def completed_since(self, t: float) -> int:
        return sum(1 for r in self.records if r.start >= t)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join(timeout=120)
        return time.monotonic()


@pytest.fixture
def stack(cluster: ClusterHandle, namespace: str, operator_factory: Callable[..., Any],
          tmp_path: Path) -> Iterator[dict[str, Any]]:
    with live_stack(cluster, namespace, operator_factory, tmp_path,
                    _deployment(namespace)) as parts:
        yield parts


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def test_real_replicas_scale_up_under_a_load_step_and_down_after_the_window(
        cluster: ClusterHandle, namespace: str, stack: dict[str, Any]) -> None:
    tl: Timeline = stack["timeline"]
    autoscaler: AutoscalerProcess = stack["autoscaler"]
    wait_until(lambda: tl.spec == 1 and tl.ready == 1, 60, "one ready replica before the step")
    assert _get(cluster, namespace)["status"]["sizing"]["threadsPerReplica"] == 1
    uptime_before = _uptime()
    load = StreamingLoad(stack["router"].url + "/v1", CLIENTS)
    t0 = load.started
    try:
        wait_until(lambda: tl.spec == 2, 180, f"scale-up under load\n{autoscaler.logs()[-3000:]}")
        t_up = tl.first(lambda s, r: s == 2, load.started)
        slo_at_up = dict(tl.slo)
        wait_until(lambda: tl.ready == 2, 180, "the second replica ready")
        t_ready = tl.first(lambda s, r: r == 2, t_up)
        wait_until(lambda: load.completed_since(t_ready) >= SCALED_REQUESTS, 300,
                   f"{SCALED_REQUESTS} requests served on two replicas")
        # status.slo from the engines' real histograms, through Prometheus
        wait_until(lambda: tl.slo.get("observedTtftP95Ms") is not None
                   and tl.slo.get("observedTpotP95Ms") is not None
                   and tl.slo.get("attainment") is not None, 60, "status.slo observed values")
        slo_scaled = dict(tl.slo)
    finally:
        t_stop = load.stop()
    assert not load.errors, load.errors[:5]
    assert slo_scaled["ttftTargetMs"] == TTFT_SLO_MS and slo_scaled["tpotTargetMs"] == TPOT_SLO_MS
    assert slo_scaled["observedTtftP95Ms"] > 0 and slo_scaled["observedTpotP95Ms"] > 0
    assert 0 <= slo_scaled["attainment"] <= 1
    up_event = _scaled_events(cluster, namespace)[0]["message"]
    assert up_event.startswith("scaled to 2:"), up_event

    wait_until(lambda: tl.spec == 1, 300, f"scale-down\n{autoscaler.logs()[-3000:]}")
    t_down = tl.first(lambda s, r: s == 1, t_stop)
    wait_until(lambda: tl.ready == 1, 120, "one replica after the scale-down")
    # no scale-down while the load was on
    assert all(s == 2 for t, s, _, _ in tl.points if t_up <= t <= t_stop), "scaled down under load"
    records = list(load.records)
    figures = {
        "uptime_before": uptime_before, "uptime_after": _uptime(),
        "requests_ok": len(records), "clients": CLIENTS, "output_tokens": OUTPUT_TOKENS,
        "step_to_scale_up_write_s": round(t_up - load.started, 1),
        "scale_up_write_to_ready_s": round(t_ready - t_up, 1),
        "load_stop_to_scale_down_s": round(t_down - t_stop, 1),
        "scale_down_window_s": DOWN_WINDOW_S,
        "client_one_replica_before_write": phase_figures(records, load.started, t_up,
                                                         TTFT_SLO_MS, TPOT_SLO_MS),
        "client_until_ready": phase_figures(records, t_up, t_ready, TTFT_SLO_MS, TPOT_SLO_MS),
        "client_two_replicas": phase_figures(records, t_ready, t_stop, TTFT_SLO_MS,
                                             TPOT_SLO_MS),
        "status_slo_at_scale_up": slo_at_up, "status_slo_scaled": slo_scaled,
        "scaled_events": [e["message"] for e in _scaled_events(cluster, namespace)],
    }
    print("\nreal-replica autoscaler figures:", json.dumps(figures, indent=1))
    plot = os.environ.get("TIERSERVE_LIVE_PLOT")
    if plot:
        points = [ReplicaPoint(t, s, r, slo) for t, s, r, slo in tl.points if t >= t0 - 5]
        plot_timeline(Path(plot), records, points, t0=t0, load=(load.started, t_stop),
                      ttft_slo_ms=TTFT_SLO_MS, tpot_slo_ms=TPOT_SLO_MS,
                      title=f"SmolLM2-135M on Ray Serve (llama.cpp, 1 thread per replica), "
                      f"{CLIENTS} streaming clients x {OUTPUT_TOKENS} tokens, "
                      f"SLO TTFT {TTFT_SLO_MS} ms / TPOT {TPOT_SLO_MS} ms\n"
                      f"uptime at the step: {uptime_before}")
