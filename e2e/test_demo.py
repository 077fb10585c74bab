"""``make demo``, shortened: ``tierserve-dev demo --short`` runs the same steps as the
full demo (its own local cluster, the chart with default values, the real CPU models of
``examples/`` on Ray Serve and Triton, router, autoscaler, Prometheus, traffic, report),
with shorter phases.

It runs with ``--keep``, so the test reads the cluster it leaves, independently of the
demo's own checks: every LLMDeployment and LLMRoute Ready, the autoscaler's ``Scaled``
Events (1 -> 2 while the burst ran, back to 1 after it), the summary (zero failed
requests) and the pictures written. ``tierserve-dev demo stop`` then stops it all, also
when an assertion fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tierserve.dev.cluster import build, cluster, prometheus
from tierserve.dev.cluster.harness import ClusterHandle
from tierserve.dev.cluster.health import Kubectl
from tierserve.dev.demo import watch

pytest.importorskip("llama_cpp")
# the cluster, Ray and two models starting on two cores, three phases, the report
pytestmark = [pytest.mark.cluster, pytest.mark.ray, pytest.mark.llamacpp, pytest.mark.triton,
              pytest.mark.timeout(1500)]

PNG = b"\x89PNG\r\n\x1a\n"
SCALED = "smollm2-ray"


def _demo(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tierserve.dev.cli", "demo", *args],
                          capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[Path, subprocess.CompletedProcess[str]]]:
    """The short demo run with ``--keep``; stopped (processes, cluster) afterwards."""
    try:
        build.go_executable()
    except build.BuildUnavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"cluster binaries cannot be built on this machine: {exc}")
    prometheus.binary_or_skip()
    out = tmp_path / "out"
    try:
        yield out, _demo("--short", "--keep", "--out", str(out), "--name", "e2e-demo",
                         "--state-dir", str(tmp_path / "cluster"), timeout=1300)
    finally:
        stopped = _demo("stop", "--out", str(out), timeout=120)
        assert stopped.returncode == 0, stopped.stderr[-2000:]


def _when(event: dict[str, Any]) -> float:
    stamp = event.get("eventTime") or event.get("lastTimestamp") \
        or event["metadata"]["creationTimestamp"]
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()


def test_the_short_demo_serves_scales_and_reports(
        demo: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path) -> None:
    out, done = demo
    print(done.stdout[-6000:])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "export KUBECONFIG=" in done.stdout and "OpenAI base URL" in done.stdout

    lay = cluster.load(tmp_path / "cluster")
    assert lay is not None
    kept = ClusterHandle(lay, Kubectl(lay.kubeconfig()))
    objects = [o for kind in watch.KINDS for o in watch.items(kept, kind)]
    assert len(objects) == 4 and all(watch.ready(o) for o in objects), \
        [watch.why_not_ready(o) for o in objects]
    smollm2 = kept.get_json("llmd", SCALED, "-n", "default")
    assert smollm2["status"]["slo"].get("observedTtftP95Ms") is not None, smollm2["status"]

    run = json.loads((out / "run.json").read_text())
    burst = next(p for p in run["phases"] if p["name"] == "burst")
    events = [e for e in watch.scaled_events(kept)
              if e["involvedObject"]["name"] == SCALED]
    messages = [e["message"] for e in events]
    assert messages[0].startswith("scaled to 2:"), messages
    assert burst["start"] - 1 <= _when(events[0]) <= burst["end"] + 1, (burst, events[0])
    down = [e for e in events[1:] if e["message"].startswith("scaled to 1:")]
    assert down and _when(down[0]) >= burst["end"] - 1, (burst, messages)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"] > 0 and summary["failed"] == 0, summary["errors"]
    assert {p["phase"] for p in summary["phases"]} >= {"steady", "burst"}
    assert (out / "summary.md").read_text().startswith("#")
    pictures = [out / "timeline.png", *sorted((out / "dashboards").glob("*.png"))]
    assert len(pictures) == 6, pictures
    assert all(p.read_bytes().startswith(PNG) for p in pictures)
