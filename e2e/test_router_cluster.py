"""``tierserve router --kubernetes``: routes from LLMRoute/LLMDeployment objects.

The operator (``--target local``) runs two LLMDeployments as local Triton servers of the
simulated engine and writes their real URLs into ``status.endpoint``; the router watches
the API server, serves the LLMRoute's model through the official ``openai`` client
(plain and streamed), splits by weight, keeps a sticky key on one variant, picks up a
weight change made with ``kubectl patch`` with no failed request during the change, holds
requests while the deployment's Service has an empty EndpointSlice and releases them when
it goes, and writes the per-variant A/B readout into the LLMRoute's ``status.ab``.
Running under the chart's ``tierserve-router`` ServiceAccount, it wakes a deployment
scaled to zero (the router is the activator) and the held request gets its answer, and it
takes API keys from one Secret (RBAC limited to it by name), following a rotation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import AuthenticationError, OpenAI
from prometheus_client.parser import text_string_to_metric_families

from tierserve.dev.cluster.harness import ClusterHandle
from tierserve.dev.cluster.procs import free_port, terminate
from tierserve.dev.waiting import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.triton]

MODEL = "chat"
STICKY = "x-user-id"


def _deployment(name: str, ns: str) -> dict[str, Any]:
    return {"apiVersion": "tierserve.io/v1alpha1", "kind": "LLMDeployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"model": {"name": f"{name}-model", "uri": "hf://org/m",
                               "parametersBillions": 8},
                     "runtime": "triton", "engine": "simulated",
                     "engineProfile": "llama-3.1-8b-h100",
                     "accelerator": {"type": "H100-SXM", "gpusPerReplica": 1},
                     "replicas": 1, "slo": {"ttftP95Ms": 2000, "tpotP95Ms": 60}}}


def _route(ns: str) -> dict[str, Any]:
    return {"apiVersion": "tierserve.io/v1alpha1", "kind": "LLMRoute",
            "metadata": {"name": "chat-ab", "namespace": ns},
            "spec": {"model": MODEL,
                     "variants": [{"name": "blue", "deployment": "blue", "weight": 50},
                                  {"name": "green", "deployment": "green", "weight": 50}],
                     "stickySession": {"header": STICKY}}}


def _get(cluster: ClusterHandle, kind: str, name: str, ns: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(cluster.kubectl("get", kind, name, "-n", ns, "-o", "json"))
    return obj


def _ready(cluster: ClusterHandle, name: str, ns: str) -> bool:
    conditions = (_get(cluster, "llmd", name, ns).get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


class RouterProcess:
    """``tierserve router --kubernetes`` as a subprocess, stopped by pid."""

    def __init__(self, kubeconfig: Path, namespace: str, log: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        cmd = [sys.executable, "-m", "tierserve.cli.main", "router", "--kubernetes",
               "--kubeconfig", str(kubeconfig), "--namespace", namespace,
               "--port", str(self.port), "--log-level", "INFO", *extra]
        self.proc = subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def stop(self) -> None:
        terminate(self.proc, grace_s=30)

    def get(self, path: str) -> str:
        assert self.proc.poll() is None, self.log.read_text()[-3000:]
        with urllib.request.urlopen(self.url + path, timeout=10) as resp:
            body: bytes = resp.read()
            return body.decode()

    def models(self) -> list[str]:
        return [m["id"] for m in json.loads(self.get("/v1/models"))["data"]]

    def requests_by_variant(self) -> Counter[str]:
        """``tierserve_router_requests_total`` of the route, summed per variant."""
        counts: Counter[str] = Counter()
        for family in text_string_to_metric_families(self.get("/metrics")):
            for s in family.samples:
                if (s.name == "tierserve_router_requests_total"
                        and s.labels.get("route") == MODEL):
                    counts[s.labels["variant"]] += int(s.value)
        return counts

    def held(self, deployment: str) -> int:
        """Requests the router holds for ``deployment`` (no ready replica)."""
        return sum(int(s.value) for family in text_string_to_metric_families(self.get("/metrics"))
                   for s in family.samples if s.name == "tierserve_router_held_requests"
                   and s.labels.get("deployment") == deployment)


def _empty_slice(ns: str, service: str, port: int) -> dict[str, Any]:
    """An EndpointSlice of ``service`` with no endpoint (a Service scaled to zero)."""
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service}-e2e", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service,
                                    "endpointslice.kubernetes.io/managed-by": "e2e"}},
            "addressType": "IPv4", "endpoints": [],
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}]}


@pytest.fixture
def router_factory(tmp_path: Path) -> Iterator[Callable[..., RouterProcess]]:
    made: list[RouterProcess] = []

    def make(kubeconfig: Path, namespace: str, *extra: str) -> RouterProcess:
        made.append(RouterProcess(kubeconfig, namespace, tmp_path / "router.log", *extra))
        return made[-1]

    yield make
    for proc in made:
        proc.stop()


def _ask(client: OpenAI, user: str | None = None, stream: bool = False) -> str:
    headers = {STICKY: user} if user is not None else None
    messages: Any = [{"role": "user", "content": "say hello"}]
    if not stream:
        out = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8,
                                             extra_headers=headers)
        return out.choices[0].message.content or ""
    chunks = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=8,
                                            stream=True, extra_headers=headers)
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def _landed(router: RouterProcess, send: Callable[[], object], n: int) -> Counter[str]:
    """Per-variant requests that ``n`` sequential calls of ``send`` added."""
    before = router.requests_by_variant()
    for _ in range(n):
        send()
    after = router.requests_by_variant()
    after.subtract(before)
    return +after


def _sender(client: OpenAI, user: str, stream: bool) -> Callable[[], str]:
    return lambda: _ask(client, user, stream=stream)


class Background:
    """Requests in a loop on a thread; counts successes and failures."""

    def __init__(self, client: OpenAI) -> None:
        self.ok, self.failed, self.errors = 0, 0, list[str]()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(client,), daemon=True)
        self._thread.start()

    def _run(self, client: OpenAI) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            try:
                assert _ask(client, stream=i % 2 == 0)
                self.ok += 1
            except Exception as exc:  # counted; the test asserts there are none
                self.failed += 1
                self.errors.append(repr(exc))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def test_router_follows_llmroute_and_writes_ab_readout(
        cluster: ClusterHandle, namespace: str, operator_factory: Callable[..., Any],
        router_factory: Callable[..., RouterProcess], tmp_path: Path) -> None:
    operator_factory("local", "-n", namespace, "--target", "local", "--local-workdir",
                     str(tmp_path / "local"), "--local-ray-port", str(free_port())).start()
    cluster.apply([_deployment("blue", namespace), _deployment("green", namespace),
                   _route(namespace)])
    wait_until(lambda: _ready(cluster, "blue", namespace) and _ready(cluster, "green", namespace),
             240, "blue and green Ready (local Triton servers)")

    router = router_factory(cluster.kubeconfig, namespace)
    wait_until(lambda: MODEL in router.models(), 60, "router serves the LLMRoute's model")
    client = OpenAI(base_url=router.url + "/v1", api_key="unused", max_retries=0, timeout=30)

    assert _ask(client)
    assert _ask(client, stream=True)

    split = _landed(router, lambda: _ask(client), 40)
    assert sum(split.values()) == 40 and split["blue"] > 0 and split["green"] > 0, split

    for user in ("ana", "bo", "cy", "dee"):
        sticky = _landed(router, _sender(client, user, stream=user == "bo"), 6)
        assert len(sticky) == 1 and sum(sticky.values()) == 6, (user, sticky)

    background = Background(client)
    try:
        cluster.kubectl("patch", "llmroute", "chat-ab", "-n", namespace, "--type=json", "-p",
                        json.dumps([{"op": "replace", "path": "/spec/variants/0/weight",
                                     "value": 100},
                                    {"op": "replace", "path": "/spec/variants/1/weight",
                                     "value": 0}]))
        wait_until(lambda: set(_landed(router, lambda: _ask(client), 10)) == {"blue"}, 60,
                 "weights 100/0 applied: all requests on blue")
        sticky = _landed(router, lambda: _ask(client, "bo"), 5)
        assert set(sticky) == {"blue"}, sticky  # weight 0 overrides stickiness
        wait_until(lambda: background.ok >= 5, 60, "background requests during the change")
    finally:
        background.stop()
    assert background.failed == 0, background.errors[:5]

    # EndpointSlices of the runtime's Service win over status.endpoint: an empty one means
    # scaled to zero (requests are held, not failed); without it status.endpoint serves
    # again and the held requests complete. (The API server refuses loopback addresses in
    # slices, so a slice cannot point at the local Triton server itself.)
    port = int(_get(cluster, "llmd", "blue", namespace)["status"]["endpoint"].rsplit(":", 1)[1])
    cluster.apply(_empty_slice(namespace, "blue", port))
    background = Background(client)
    try:
        wait_until(lambda: router.held(f"{namespace}/blue") >= 1, 60,
                 "requests held: the Service's EndpointSlice has no endpoint")
        held_at = background.ok
        cluster.kubectl("delete", "endpointslice", "blue-e2e", "-n", namespace)
        wait_until(lambda: background.ok > held_at + 3 and router.held(f"{namespace}/blue") == 0,
                 60, "held requests released: no slice left, status.endpoint serves again")
    finally:
        background.stop()
    assert background.failed == 0, background.errors[:5]

    totals = router.requests_by_variant()

    def readout_matches() -> bool:
        ab = (_get(cluster, "llmroute", "chat-ab", namespace).get("status") or {}).get("ab")
        got = {v["name"]: v["requests"] for v in (ab or {}).get("variants", [])}
        return got == dict(totals)

    wait_until(readout_matches, 60, f"status.ab shows the router's counts {dict(totals)}")
    ab = _get(cluster, "llmroute", "chat-ab", namespace)["status"]["ab"]
    assert "Mann-Whitney" in ab["test"] and ab["updated"]
    for v in ab["variants"]:
        assert v["errorRate"] == 0 and v["requests"] > 0, v
    router.stop()
    assert router.proc.returncode == 0, router.log.read_text()[-3000:]


@pytest.mark.ray
def test_router_serves_a_ray_serve_deployment(
        cluster: ClusterHandle, namespace: str, operator_factory: Callable[..., Any],
        router_factory: Callable[..., RouterProcess], tmp_path: Path) -> None:
    """The OpenAI protocol path: ``status.endpoint`` of Ray Serve ends in ``/v1``."""
    operator_factory("local", "-n", namespace, "--target", "local", "--local-workdir",
                     str(tmp_path / "local"), "--local-ray-port", str(free_port())).start()
    ray = _deployment("ray", namespace)
    ray["spec"]["runtime"] = "rayServe"
    cluster.apply([ray, {"apiVersion": "tierserve.io/v1alpha1", "kind": "LLMRoute",
                         "metadata": {"name": "chat", "namespace": namespace},
                         "spec": {"model": MODEL, "variants": [
                             {"name": "ray", "deployment": "ray"}]}}])
    wait_until(lambda: _ready(cluster, "ray", namespace), 240, "Ray Serve app Ready (local)")
    router = router_factory(cluster.kubeconfig, namespace)
    wait_until(lambda: MODEL in router.models(), 60, "router serves the LLMRoute's model")
    client = OpenAI(base_url=router.url + "/v1", api_key="unused", max_retries=0, timeout=30)
    assert _ask(client)
    assert _ask(client, stream=True)
    wait_until(lambda: router.requests_by_variant() == Counter({"ray": 2}), 10,
             "both requests counted (a stream is counted when its relay ends)")


def test_router_wakes_a_deployment_scaled_to_zero(
        cluster: ClusterHandle, namespace: str, operator_factory: Callable[..., Any],
        router_factory: Callable[..., RouterProcess], tmp_path: Path) -> None:
    """Held request -> scale subresource 0 -> 1 -> local Triton starts -> answer."""
    from e2e.helm_install import service_account_kubeconfig

    operator_factory("local", "-n", namespace, "--target", "local", "--local-workdir",
                     str(tmp_path / "local"), "--local-ray-port", str(free_port())).start()
    cold = _deployment("cold", namespace)
    cold["spec"].update(replicas=0, minReplicas=0)
    cluster.apply([cold, {"apiVersion": "tierserve.io/v1alpha1", "kind": "LLMRoute",
                          "metadata": {"name": "chat", "namespace": namespace},
                          "spec": {"model": MODEL, "timeouts": {"requestMs": 120_000},
                                   "variants": [{"name": "cold", "deployment": "cold"}]}}])
    wait_until(lambda: (_get(cluster, "llmd", "cold", namespace).get("status") or {})
             .get("observedGeneration") == 1, 60, "cold reconciled at zero replicas")
    kubeconfig = service_account_kubeconfig(cluster, tmp_path / "router-kubeconfig",
                                            "tierserve-router")
    router = router_factory(kubeconfig, namespace)
    wait_until(lambda: MODEL in router.models(), 60, "router serves the LLMRoute's model")
    assert _get(cluster, "llmd", "cold", namespace)["spec"]["replicas"] == 0
    client = OpenAI(base_url=router.url + "/v1", api_key="unused", max_retries=0, timeout=150)
    answers: list[str] = []
    asker = threading.Thread(target=lambda: answers.append(_ask(client)), daemon=True)
    asker.start()
    wait_until(lambda: router.held(f"{namespace}/cold") == 1 or bool(answers), 30,
             "the request is held while cold has no replica")
    wait_until(lambda: _get(cluster, "llmd", "cold", namespace)["spec"]["replicas"] == 1, 30,
             "the router scaled cold from 0 to 1 through the scale subresource")
    asker.join(timeout=150)
    assert answers and answers[0], router.log.read_text()[-3000:]
    assert router.held(f"{namespace}/cold") == 0
    assert "scaled LLMDeployment" in router.log.read_text()
    assert router.requests_by_variant() == Counter({"cold": 1})


SENTINEL = "sk-e2e-sentinel-5f0c2a91"


def _keys_access(ns: str) -> list[dict[str, Any]]:
    """What the chart grants with ``router.apiKeysSecret``: one Secret, by name."""
    meta = {"name": "router-api-keys", "namespace": ns}
    return [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
             "rules": [{"apiGroups": [""], "resources": ["secrets"],
                        "resourceNames": ["router-keys"], "verbs": ["get", "list", "watch"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": meta, "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                           "kind": "Role", "name": "router-api-keys"},
             "subjects": [{"kind": "ServiceAccount", "name": "tierserve-router",
                           "namespace": "tierserve-system"}]}]


def _keys_secret(ns: str, key: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "router-keys", "namespace": ns,
                         "annotations": {"tierserve.io/api-key-limits":
                                         '{"team-a": {"requestsPerMinute": 600}}'}},
            "stringData": {"team-a": key}}


def _authorized(client_for: Callable[[str], OpenAI], key: str) -> bool:
    try:
        return bool(_ask(client_for(key)))
    except AuthenticationError:
        return False


def test_router_takes_api_keys_from_a_secret(
        cluster: ClusterHandle, namespace: str, operator_factory: Callable[..., Any],
        router_factory: Callable[..., RouterProcess], tmp_path: Path) -> None:
    from e2e.helm_install import service_account_kubeconfig

    operator_factory("local", "-n", namespace, "--target", "local", "--local-workdir",
                     str(tmp_path / "local"), "--local-ray-port", str(free_port())).start()
    cluster.apply([_deployment("blue", namespace), _keys_secret(namespace, SENTINEL),
                   *_keys_access(namespace),
                   {"apiVersion": "tierserve.io/v1alpha1", "kind": "LLMRoute",
                    "metadata": {"name": "chat", "namespace": namespace},
                    "spec": {"model": MODEL, "variants": [
                        {"name": "blue", "deployment": "blue"}]}}])
    wait_until(lambda: _ready(cluster, "blue", namespace), 240, "blue Ready (local Triton)")
    kubeconfig = service_account_kubeconfig(cluster, tmp_path / "router-kubeconfig",
                                            "tierserve-router")
    router = router_factory(kubeconfig, namespace, "--api-keys-secret",
                            f"{namespace}/router-keys", "--log-level", "DEBUG")
    wait_until(lambda: MODEL in router.models(), 60, "router serves the LLMRoute's model")

    def client_for(key: str) -> OpenAI:
        return OpenAI(base_url=router.url + "/v1", api_key=key, max_retries=0, timeout=30)

    assert _authorized(client_for, SENTINEL)
    assert _ask(client_for(SENTINEL), stream=True)
    assert not _authorized(client_for, "sk-wrong")
    cluster.apply(_keys_secret(namespace, "sk-rotated-e2e"))
    wait_until(lambda: _authorized(client_for, "sk-rotated-e2e"), 60, "rotated key accepted")
    assert not _authorized(client_for, SENTINEL)
    assert SENTINEL not in router.get("/metrics")
    router.stop()
    logs = router.log.read_text()
    assert SENTINEL not in logs and "sk-rotated-e2e" not in logs
    assert router.proc.returncode == 0, logs[-3000:]
