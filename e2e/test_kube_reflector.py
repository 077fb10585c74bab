"""The one client and the one reflector against the real kube-apiserver.

* changes arrive typed (ADDED, MODIFIED, DELETED) and in order;
* a kind the server does not serve (a RayService API version KubeRay does not have) and
  a kind RBAC refuses are states (``kind-not-served``, ``forbidden``), counted as synced,
  never a backoff loop;
* a service-account token rotated in its file is used without a restart: the old token
  is revoked (its bound Secret deleted) and the client keeps working;
* the operator (under the chart's ServiceAccount) serves its readiness probe with every
  reflector's state.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tierserve.core.kube.client import KubeApi
from tierserve.core.kube.credentials import Credentials
from tierserve.core.kube.errors import Unauthorized
from tierserve.core.kube.reflector import Change, Reflector, Resource, State
from tierserve.dev.cluster.harness import ClusterHandle
from tierserve.dev.cluster.procs import free_port
from tierserve.dev.waiting import wait_until, wait_until_async

pytestmark = pytest.mark.cluster
LABEL = "e2e=reflector"


def _cm(name: str, namespace: str, value: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "data": {"v": value},
            "metadata": {"name": name, "namespace": namespace, "labels": {"e2e": "reflector"}}}


def _write_token(path: Path, token: str) -> None:
    staged = path.with_name(".token.new")  # swapped in like the kubelet does
    staged.write_text(token)
    os.replace(staged, path)


def _token(cluster: ClusterHandle, namespace: str, bound_secret: str) -> str:
    cluster.kubectl("create", "secret", "generic", bound_secret, "-n", namespace)
    return cluster.kubectl("create", "token", "default", "-n", namespace, "--duration=1h",
                           "--bound-object-kind=Secret",
                           f"--bound-object-name={bound_secret}").strip()


async def test_changes_are_typed_and_refusals_are_states(cluster: ClusterHandle,
                                                         namespace: str,
                                                         tmp_path: Path) -> None:
    admin = await Credentials.from_kubeconfig(str(cluster.kubeconfig))
    api = await KubeApi.connect(credentials=admin)
    seen: list[tuple[str, str]] = []

    def record(change: Change) -> None:
        if not change.relist:
            seen.append((change.type.value, change.obj["data"]["v"]))

    configmaps = Reflector(api, Resource("v1", "ConfigMap", namespace, label_selector=LABEL),
                           record)
    rayservices = Reflector(api, Resource("ray.io/v9", "RayService", namespace))
    token_file = tmp_path / "token"
    _write_token(token_file, cluster.kubectl("create", "token", "default", "-n", namespace))
    nobody = await KubeApi.connect(credentials=Credentials(
        server=admin.server, ca_path=admin.ca_path, token_file=token_file))
    secrets = Reflector(nobody, Resource("v1", "Secret", namespace))
    tasks = [asyncio.create_task(r.run()) for r in (configmaps, rayservices, secrets)]
    try:
        await wait_until_async(configmaps.synced.is_set, 30, "ConfigMap list")
        created = await api.create(_cm("a", namespace, "1"))
        await api.replace({**created, "data": {"v": "2"}})  # with its resourceVersion
        await api.delete("v1", "ConfigMap", namespace, "a")
        await wait_until_async(lambda: len(seen) == 3, 30, "three watch events")
        assert seen == [("ADDED", "1"), ("MODIFIED", "2"), ("DELETED", "2")]
        await wait_until_async(lambda: rayservices.synced.is_set()
                               and secrets.synced.is_set(), 30, "refused kinds synced")
        assert rayservices.state is State.ABSENT and not rayservices.objects
        assert secrets.state is State.FORBIDDEN and "forbidden" in str(secrets.problem)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await api.close()
        await nobody.close()


async def test_rotated_service_account_token_is_used_without_restart(
        cluster: ClusterHandle, namespace: str, tmp_path: Path) -> None:
    cluster.kubectl("create", "role", "read-cm", "-n", namespace, "--verb=list,watch,get",
                    "--resource=configmaps")
    cluster.kubectl("create", "rolebinding", "read-cm", "-n", namespace, "--role=read-cm",
                    f"--serviceaccount={namespace}:default")
    admin = await Credentials.from_kubeconfig(str(cluster.kubeconfig))
    old, new = _token(cluster, namespace, "token-a"), _token(cluster, namespace, "token-b")
    token_file = tmp_path / "token"
    _write_token(token_file, old)
    api = await KubeApi.connect(credentials=Credentials(
        server=admin.server, ca_path=admin.ca_path, token_file=token_file))
    stale = await KubeApi.connect(credentials=Credentials(
        server=admin.server, ca_path=admin.ca_path, static_token=old))

    async def old_token_rejected() -> bool:
        try:
            await stale.list_versioned("v1", "ConfigMap", namespace)
        except Unauthorized:
            return True
        return False

    try:
        await wait_until_async(lambda: _listed(api, namespace), 30, "list with the old token")
        _write_token(token_file, new)  # rotation ...
        cluster.kubectl("delete", "secret", "token-a", "-n", namespace)  # ... and revocation
        await wait_until_async(old_token_rejected, 60, "the old token revoked",
                               interval=0.5)
        items, version = await api.list_versioned("v1", "ConfigMap", namespace)
        assert version and isinstance(items, list)
    finally:
        await api.close()
        await stale.close()


async def _listed(api: KubeApi, namespace: str) -> bool:
    _, version = await api.list_versioned("v1", "ConfigMap", namespace)
    return bool(version)


def test_operator_probes_report_every_watch(operator_factory: Callable[..., Any]) -> None:
    port = free_port()
    operator_factory("op-live", "--health-port", str(port)).start()
    ready: dict[str, Any] = {}

    def watching() -> bool:
        nonlocal ready
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
                ready = json.loads(resp.read())
        except (urllib.error.URLError, ConnectionError):  # not listening yet, or 503
            return False
        return bool(ready.get("watches")) and all(
            state == "watching" for state in ready["watches"].values())

    wait_until(watching, 60, "every reflector watching, reported at /readyz")
    assert {"LLMDeployment", "LLMRoute", "Deployment", "Service", "ConfigMap", "RayService",
            "Pod"} <= set(ready["watches"])
    assert ready["ready"] is True and ready["queue_depth"] >= 0
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
        assert json.loads(resp.read())["alive"] is True
