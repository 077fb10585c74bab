"""Runtime plugins: the registry covers the API, and each plugin's readiness, router
endpoint and metrics agree with the children it builds."""

from __future__ import annotations

import sys
import types
from typing import Any, get_args

import pytest

from tierserve.core.api.deployment import ENGINES_FOR_RUNTIME
from tierserve.core.api.deployment import Runtime as RuntimeName
from tierserve.core.builders import BuildContext, BuildSettings, build_children
from tierserve.core.builders.context import from_object
from tierserve.core.local import RuntimeName as LocalRuntimeName
from tierserve.core.runtimes import RUNTIMES, runtime_for
from tierserve.core.runtimes.base import ObservedChildren, replica_readiness
from tierserve.engine.local import LOCAL_RUNNERS

COMBOS = [(r, e) for r, engines in ENGINES_FOR_RUNTIME.items() for e in engines]


def ctx(runtime: str, engine: str = "simulated", replicas: int = 2) -> BuildContext:
    cpu = engine == "llamacpp"  # llama.cpp runs on CPU cores (a GGUF file), the rest on GPUs
    model = ({"name": "org/chat-1b", "uri": "pypi://chat-models/chat_models/chat-1b.gguf",
              "parametersBillions": 1, "quantization": "q4_k_m"} if cpu else
             {"name": "org/chat-8b", "uri": "hf://org/chat-8b", "parametersBillions": 8})
    doc = {"apiVersion": "tierserve.io/v1alpha1", "kind": "LLMDeployment",
           "metadata": {"name": "chat", "namespace": "team", "uid": "u-1"},
           "spec": {"model": model,
                    "runtime": runtime, "engine": engine, "replicas": replicas,
                    "minReplicas": 0,
                    "accelerator": {"type": "cpu" if cpu else "H100-SXM"},
                    "slo": {"ttftP95Ms": 2000, "tpotP95Ms": 80},
                    "workload": {"inputTokens": 64, "outputTokens": 32}}}
    return from_object(doc, BuildSettings())


def test_registry_covers_every_runtime_the_api_accepts() -> None:
    assert set(RUNTIMES) == set(get_args(RuntimeName)) == set(get_args(LocalRuntimeName))
    for name, runtime in RUNTIMES.items():
        assert runtime.name == name
        assert runtime.local_runner in LOCAL_RUNNERS  # the engine can run it locally


def test_unknown_runtime_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"unknown runtime 'kserve' \(known: rayServe, triton\)"):
        runtime_for("kserve")


@pytest.mark.parametrize(("runtime", "engine"), COMBOS)
def test_build_children_is_the_plugins_desired_state(runtime: str, engine: str) -> None:
    c = ctx(runtime, engine)
    assert build_children(c) == runtime_for(runtime).children(c)


BUILT_IN = ("v1", "apps/v1")  # API groups every cluster serves


@pytest.mark.parametrize(("runtime", "engine"), COMBOS)
def test_requires_names_every_crd_the_children_need(runtime: str, engine: str) -> None:
    """A child kind outside the built-in groups is a CRD the runtime declares (so a
    cluster without it reports RuntimeNotInstalled), and the operator watches it."""
    from tierserve.operator.handlers import CHILD_RESOURCES

    plugin = runtime_for(runtime)
    needed = {(c["apiVersion"], c["kind"]) for c in plugin.children(ctx(runtime, engine))
              if c["apiVersion"] not in BUILT_IN}
    assert needed == {(r.api_version, r.kind) for r in plugin.requires}
    for crd in plugin.requires:
        plural, group = crd.name.split(".", 1)
        assert crd.api_version.split("/")[0] == group and plural == f"{crd.kind.lower()}s"
        assert (crd.api_version, crd.kind) in CHILD_RESOURCES
        assert "helm install" in crd.install


# --- the router endpoint names what the children serve


def _ports(template: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for c in template["spec"]["containers"]
            for p in c.get("ports", [])}


def test_triton_router_endpoint_is_the_built_service_port() -> None:
    c = ctx("triton")
    target = runtime_for("triton").router_endpoint(c.name, c.spec)
    (svc,) = [m for m in build_children(c) if m["kind"] == "Service"]
    assert svc["metadata"]["name"] == target.service
    assert {"name": target.port_name, "port": target.port, "targetPort": target.port_name,
            "protocol": "TCP"} in svc["spec"]["ports"]
    (cm,) = [m for m in build_children(c) if m["kind"] == "ConfigMap"]
    assert f'name: "{target.upstream_model}"' in cm["data"]["config.pbtxt"]
    assert (target.protocol, target.upstream_model) == ("triton", "org--chat-8b")
    assert target.cluster_url("team") == "http://chat.team.svc:8000"


def test_rayserve_router_endpoint_is_the_head_serve_port() -> None:
    c = ctx("rayServe")
    target = runtime_for("rayServe").router_endpoint(c.name, c.spec)
    (svc,) = build_children(c)
    head = svc["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]
    # KubeRay names its Serve Service <name>-serve-svc and serves the port named `serve`
    assert target.service == f"{svc['metadata']['name']}-serve-svc"
    assert _ports(head)[target.port_name] == target.port
    assert (target.protocol, target.upstream_model) == ("openai", "org/chat-8b")


# --- metrics: what the plugin says is what the pod templates announce


def _templates(children: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for m in children:
        if m["kind"] == "Deployment":
            out.append(m["spec"]["template"])
        if m["kind"] == "RayService":
            cluster = m["spec"]["rayClusterConfig"]
            out += [cluster["headGroupSpec"]["template"],
                    *(w["template"] for w in cluster["workerGroupSpecs"])]
    return out


@pytest.mark.parametrize(("runtime", "engine"), COMBOS)
def test_metrics_endpoint_is_the_one_scrape_target(runtime: str, engine: str) -> None:
    c = ctx(runtime, engine)
    metrics = runtime_for(runtime).metrics(c.spec)
    scraped = [(int(a["prometheus.io/port"]), a["prometheus.io/path"])
               for t in _templates(build_children(c))
               if (a := t["metadata"].get("annotations", {})).get("prometheus.io/scrape")]
    assert scraped == ([] if metrics is None else [(metrics.port, metrics.path)])


# --- readiness from the children's status


def test_triton_readiness_counts_the_deployments_ready_replicas() -> None:
    c, triton = ctx("triton"), runtime_for("triton")
    nothing = triton.readiness(c, ObservedChildren())
    assert (nothing.replicas, nothing.ready_replicas, nothing.ready) == (0, 0, False)
    one = ObservedChildren({("Deployment", "chat"): {"status": {"replicas": 2,
                                                                "readyReplicas": 1}}})
    r = triton.readiness(c, one)
    assert (r.ready, r.reason, r.message) == (False, "ReplicasNotReady", "1/2 replicas ready")
    both = ObservedChildren({("Deployment", "chat"): {"status": {"replicas": 2,
                                                                 "readyReplicas": 2}}})
    assert triton.readiness(c, both).reason == "ReplicasReady"
    assert triton.readiness(ctx("triton", replicas=0), ObservedChildren()).reason == \
        "ScaledToZero"


def _worker(phase: str) -> dict[str, Any]:
    return {"metadata": {"labels": {"ray.io/node-type": "worker"}}, "status": {"phase": phase}}


def test_rayserve_waits_for_the_rayservice_even_with_running_workers() -> None:
    c, ray = ctx("rayServe"), runtime_for("rayServe")
    pods = [_worker("Running"), _worker("Running")]
    deploying = ray.readiness(c, ObservedChildren(
        {("RayService", "chat"): {"status": {"serviceStatus": "WaitForServeDeploymentReady"}}},
        pods))
    assert (deploying.replicas, deploying.ready_replicas) == (2, 0)
    assert (deploying.ready, deploying.reason) == (False, "RuntimeNotReady")
    assert "waiting for the RayService to report Ready" in deploying.message
    running = ray.readiness(c, ObservedChildren(
        {("RayService", "chat"): {"status": {"serviceStatus": "Running"}}},
        [_worker("Running"), _worker("Pending")]))
    assert (running.ready_replicas, running.reason) == (1, "ReplicasNotReady")
    reported = ray.readiness(c, ObservedChildren({("RayService", "chat"): {"status": {
        "conditions": [{"type": "Ready", "status": "True"}],
        "activeServiceStatus": {"rayClusterStatus": {"desiredWorkerReplicas": 2,
                                                     "readyWorkerReplicas": 2}}}}}))
    assert (reported.replicas, reported.ready_replicas, reported.reason) == \
        (2, 2, "ReplicasReady")


def test_replica_readiness_scaled_to_zero_wins_over_waiting() -> None:
    r = replica_readiness(0, 0, 0, waiting_for="the runtime")
    assert (r.ready, r.reason) == (True, "ScaledToZero")


# --- the Triton model repository in the ConfigMap


def _configmap_files(children: list[dict[str, Any]]) -> dict[str, str]:
    """The model directory a pod sees: the ConfigMap's data laid out by the volume items."""
    cm = next(m for m in children if m["kind"] == "ConfigMap")
    dep = next(m for m in children if m["kind"] == "Deployment")
    (volume,) = [v for v in dep["spec"]["template"]["spec"]["volumes"] if "configMap" in v]
    assert volume["configMap"]["name"] == cm["metadata"]["name"]
    items = volume["configMap"]["items"]
    assert {i["key"] for i in items} == set(cm["data"])  # nothing shipped but unmounted
    return {i["path"]: cm["data"][i["key"]] for i in items}


@pytest.mark.parametrize(("engine", "files"), [
    ("simulated", {"config.pbtxt", "1/model.py"}),
    ("vllm", {"config.pbtxt", "1/model.json"}),
    ("tensorrtllm", {"config.pbtxt"}),
    ("llamacpp", {"config.pbtxt", "1/model.py"}),
])
def test_model_repository_files_per_engine(engine: str, files: set[str]) -> None:
    assert set(_configmap_files(build_children(ctx("triton", engine)))) == files


def test_simulated_model_py_loads_tierserves_python_backend_model(
        monkeypatch: pytest.MonkeyPatch) -> None:
    source = _configmap_files(build_children(ctx("triton")))["1/model.py"]
    # what the backend stub provides; the real one: tests/integration/test_triton_repository
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils",
                        types.ModuleType("triton_python_backend_utils"))
    namespace: dict[str, Any] = {}
    try:
        exec(compile(source, "model.py", "exec"), namespace)
        from tierserve.engine.triton_model import TritonPythonModel
    finally:
        sys.modules.pop("tierserve.engine.triton_model", None)
    assert namespace["TritonPythonModel"] is TritonPythonModel
    assert "sys.path" not in source  # in an image Tierserve is installed
