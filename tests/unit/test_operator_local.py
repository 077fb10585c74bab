"""The operator's local target: which engines it runs and what it hands the engine's
local runtime (a recording fake of the :class:`~tierserve.core.local.LocalRuntime`
contract; the real runtimes are exercised in tests/integration and e2e/)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tierserve.core.builders import BuildSettings
from tierserve.core.builders.context import from_object
from tierserve.core.local import LocalSpec, LocalStatus
from tierserve.operator.local import LocalRealizer, _observed
from tierserve.operator.workqueue import WorkQueue

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class RecordingRuntime:
    """Keeps what it was asked to run and reports it ready at once."""

    def __init__(self) -> None:
        self.applied: list[LocalSpec] = []
        self.deleted: list[str] = []

    async def apply(self, spec: LocalSpec) -> LocalStatus:
        self.applied.append(spec)
        return self._status(spec)

    async def status(self, key: str) -> LocalStatus | None:
        last = [s for s in self.applied if s.key == key]
        return self._status(last[-1]) if last else None

    def _status(self, spec: LocalSpec) -> LocalStatus:
        return LocalStatus(key=spec.key, runtime=spec.runtime, endpoint="http://127.0.0.1:1",
                           ready=True, replicas=spec.replicas, model_name=spec.served_name,
                           metrics_url="http://127.0.0.1:1/metrics")

    async def delete(self, key: str) -> None:
        self.deleted.append(key)

    async def close(self) -> None:
        return None


def example(file: str, **spec: Any) -> dict[str, Any]:
    # the file's first document (tiered-route.yaml starts with its simulated fast tier)
    first = next(yaml.safe_load_all((EXAMPLES / file).read_text()))
    doc: dict[str, Any] = copy.deepcopy(first)
    doc["spec"].update(spec)
    return doc


async def realize(doc: dict[str, Any]) -> tuple[RecordingRuntime, Any]:
    runtime = RecordingRuntime()
    realizer = LocalRealizer(runtime, WorkQueue())
    observed = await realizer.realize(("default", doc["metadata"]["name"]),
                                      from_object(doc, BuildSettings()))
    return runtime, observed


@pytest.mark.parametrize("runtime", ["rayServe", "triton"])
async def test_llamacpp_deployment_runs_with_model_template_and_threads(runtime: str) -> None:
    doc = example("triton-gemma3-cpu.yaml", runtime=runtime, replicas=2)
    recorded, observed = await realize(doc)
    [spec] = recorded.applied
    model = doc["spec"]["model"]
    assert (spec.key, spec.runtime, spec.engine, spec.served_name, spec.replicas) == (
        "default/gemma3-triton", runtime, "llamacpp", "gemma-3-270m", 2)
    assert spec.model_uri == model["uri"]
    assert spec.chat_template == model["chatTemplate"]
    assert spec.threads == 1  # the sizing plan's threads per replica
    assert (observed.failure, observed.ready_replicas) == (None, 2)


async def test_threads_come_from_the_plan_when_the_spec_leaves_them_out() -> None:
    doc = example("ray-smollm2-cpu.yaml")
    doc["spec"]["accelerator"] = {"type": "cpu"}
    doc["spec"]["slo"] = {"ttftP95Ms": 1000, "tpotP95Ms": 10}  # one thread is too slow
    recorded, _ = await realize(doc)
    assert recorded.applied[0].threads == 2
    assert recorded.applied[0].chat_template is None


async def test_simulated_deployment_keeps_its_profile() -> None:
    doc = example("tiered-route.yaml")
    recorded, _ = await realize(doc)
    [spec] = recorded.applied
    assert (spec.engine, spec.profile, spec.threads) == (
        "simulated", "llama-3.1-8b-h100", None)


async def test_gpu_engines_are_refused_with_the_reason() -> None:
    recorded, observed = await realize(example("ray-llama-8b-h100.yaml"))
    assert recorded.applied == []
    assert observed.failure == ("the local target runs only engine: simulated or llamacpp "
                                "(this machine has no GPU); got vllm")


async def test_running_replicas_count_as_ready_while_the_runtime_updates() -> None:
    """Ray Serve reports an application DEPLOYING while it adds a replica; the replica
    already running still serves, so a scale-up 1 -> 2 must read 1/2, not 0/2."""
    updating = LocalStatus(key="default/d", runtime="rayServe", endpoint="http://127.0.0.1:1",
                           ready=False, replicas=1, model_name="m",
                           metrics_url="http://127.0.0.1:1/metrics", message="DEPLOYING")
    observed = _observed(updating, desired=2)
    assert observed.ready_replicas == 1
    assert observed.readiness is not None
    assert "1/2 replicas ready" in observed.readiness.message
    starting = LocalStatus(key="default/d", runtime="rayServe", endpoint="http://127.0.0.1:1",
                           ready=False, replicas=0, model_name="m",
                           metrics_url="http://127.0.0.1:1/metrics")
    assert _observed(starting, desired=1).ready_replicas == 0
