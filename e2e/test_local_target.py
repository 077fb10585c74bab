"""``tierserve operator --target local``: LLMDeployments in the real API server become
local Triton servers / Ray Serve apps of the simulated engine; status carries the real
endpoint; a killed Triton server is reported not ready and restarted; delete stops it."""

from __future__ import annotations

import json
import os
import signal
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tierserve.dev.cluster.harness import ClusterHandle
from tierserve.dev.cluster.procs import free_port
from tierserve.dev.waiting import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.triton]


def _spec(name: str, ns: str, runtime: str) -> dict[str, Any]:
    return {"apiVersion": "tierserve.io/v1alpha1", "kind": "LLMDeployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"model": {"name": f"{name}-model", "uri": "hf://org/m",
                               "parametersBillions": 8},
                     "runtime": runtime, "engine": "simulated",
                     "engineProfile": "llama-3.1-8b-h100",
                     "accelerator": {"type": "H100-SXM", "gpusPerReplica": 1},
                     "replicas": 1, "slo": {"ttftP95Ms": 2000, "tpotP95Ms": 60}}}


def _status(cluster: ClusterHandle, name: str, ns: str) -> dict[str, Any]:
    obj = json.loads(cluster.kubectl("get", "llmd", name, "-n", ns, "-o", "json"))
    status: dict[str, Any] = obj.get("status") or {}
    return status


def _ready(cluster: ClusterHandle, name: str, ns: str) -> str:
    for c in _status(cluster, name, ns).get("conditions") or []:
        if c["type"] == "Ready":
            return str(c["status"])
    return ""


def _pids_under(path: Path, needle: str) -> list[int]:
    """Our tritonserver processes: their command line names our private workdir."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if needle in cmd and str(path) in cmd:
            pids.append(int(entry.name))
    return pids


def _generate(endpoint: str, model: str) -> dict[str, Any]:
    body = json.dumps({"text_input": "hello there", "max_tokens": 8}).encode()
    req = urllib.request.Request(f"{endpoint}/v2/models/{model}/generate", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        result: dict[str, Any] = json.loads(resp.read())
        return result


def test_local_triton_serves_restarts_and_stops(
        cluster: ClusterHandle, namespace: str, operator_factory: Callable[..., Any],
        tmp_path: Path) -> None:
    workdir = tmp_path / "local"
    operator_factory("local", "-n", namespace, "--target", "local", "--local-workdir",
                     str(workdir), "--local-ray-port", str(free_port())).start()
    cluster.apply(_spec("tri", namespace, "triton"))
    wait_until(lambda: _ready(cluster, "tri", namespace) == "True", 240, "local Triton ready")
    endpoint = _status(cluster, "tri", namespace)["endpoint"]
    assert endpoint.startswith("http://127.0.0.1:")
    out = _generate(endpoint, "tri-model")
    assert out["text_output"]
    def failure_events() -> set[str]:
        items = json.loads(cluster.kubectl("get", "events", "-n", namespace, "--field-selector",
                                           "involvedObject.name=tri", "-o", "json"))["items"]
        return {e["metadata"]["name"] for e in items
                if e["reason"] in ("RuntimeFailure", "RuntimeNotReady")}

    before = failure_events()  # start-up may already have posted RuntimeNotReady
    (pid,) = _pids_under(workdir, "tritonserver")
    os.kill(pid, signal.SIGKILL)

    def reported_failure() -> bool:
        return bool(failure_events() - before)

    wait_until(reported_failure, 60, "Ready=False event after the kill")
    wait_until(lambda: _ready(cluster, "tri", namespace) == "True", 240, "restarted and ready")
    wait_until(lambda: bool(_pids_under(workdir, "tritonserver")), 60, "a new Triton process")
    assert pid not in _pids_under(workdir, "tritonserver")
    assert _generate(_status(cluster, "tri", namespace)["endpoint"], "tri-model")["text_output"]
    cluster.kubectl("delete", "llmd", "tri", "-n", namespace)
    wait_until(lambda: not _pids_under(workdir, "tritonserver"), 60, "Triton stopped on delete")


@pytest.mark.ray
def test_local_ray_serve_follows_scale_subresource(
        cluster: ClusterHandle, namespace: str, operator_factory: Callable[..., Any],
        tmp_path: Path) -> None:
    import openai

    operator_factory("local-ray", "-n", namespace, "--target", "local", "--local-workdir",
                     str(tmp_path / "local"), "--local-ray-port", str(free_port())).start()
    cluster.apply(_spec("ray", namespace, "rayServe"))
    wait_until(lambda: _ready(cluster, "ray", namespace) == "True", 300, "local Ray Serve ready")
    endpoint = _status(cluster, "ray", namespace)["endpoint"]
    client = openai.OpenAI(base_url=endpoint, api_key="unused", max_retries=0)
    out = client.completions.create(model="ray-model", prompt="hello", max_tokens=4)
    assert out.usage is not None and out.usage.completion_tokens == 4
    cluster.kubectl("scale", "llmd/ray", "-n", namespace, "--replicas=2")
    wait_until(lambda: _status(cluster, "ray", namespace).get("readyReplicas") == 2, 240,
             "two Ray Serve replicas ready")
    chunks = client.chat.completions.create(model="ray-model", stream=True, max_tokens=6,
                                            messages=[{"role": "user", "content": "hi"}])
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == 6
