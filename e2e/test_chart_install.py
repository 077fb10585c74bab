"""The chart installed with its default values (the session's ``installed`` fixture) into
the e2e cluster: a real kube-apiserver, controller-manager and scheduler, with kwok
nodes, so pods are scheduled and marked Ready but run no container.

* every component's Deployment gets all its pods Ready, the PodDisruptionBudgets count
  them (one disruption allowed each), the build-settings file is the built-in settings,
  and NOTES.txt says what is on and off;
* the CRD upgrade step of docs/install.md works over the CRDs Helm installed;
* the helm test hook's leader check passes under the hook's own ServiceAccount while an
  operator leads, and fails once it has released the Lease;
* the default autoscaler (no Prometheus URL), under its ServiceAccount, finds the Triton
  pods to scrape in their Service's EndpointSlices.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.helm_install import AUTOSCALER_SA, ROOT, SYSTEM_NS, service_account_kubeconfig
from tierserve.dev.cluster.harness import ClusterHandle
from tierserve.dev.waiting import wait_until

pytestmark = pytest.mark.cluster
CHART = ROOT / "charts" / "tierserve"
COMPONENTS = {"tierserve-operator": 2, "tierserve-router": 2, "tierserve-autoscaler": 1}


def _ready(cluster: ClusterHandle, name: str) -> int:
    status = cluster.get_json("deployment", name, "-n", SYSTEM_NS).get("status") or {}
    return int(status.get("readyReplicas") or 0)


def _disruptions_allowed(cluster: ClusterHandle, name: str) -> int:
    status = cluster.get_json("pdb", name, "-n", SYSTEM_NS).get("status") or {}
    return int(status.get("disruptionsAllowed") or 0)


def test_default_install_runs_every_component(cluster: ClusterHandle, installed: Any) -> None:
    for name, replicas in COMPONENTS.items():
        wait_until(lambda: _ready(cluster, name) == replicas,  # noqa: B023 (awaited here)
                   120, f"{name}: {replicas} Ready pod(s)")
    for name in ("tierserve-operator", "tierserve-router"):
        wait_until(lambda: _disruptions_allowed(cluster, name) == 1,  # noqa: B023
                   60, f"PodDisruptionBudget {name} counts 2 healthy pods")
    router = cluster.get_json("deployment", "tierserve-router", "-n", SYSTEM_NS)
    pod = router["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 145  # accepted by the API server
    assert pod["containers"][0]["lifecycle"] == {"preStop": {"sleep": {"seconds": 10}}}

    from tierserve.core.builders import BuildSettings

    settings = cluster.get_json("configmap", "tierserve-build-settings", "-n", SYSTEM_NS)
    assert BuildSettings.from_yaml(settings["data"]["build-settings.json"]) == BuildSettings()


def test_notes_say_what_is_on_and_off(cluster: ClusterHandle, installed: Any) -> None:
    notes = subprocess.run([str(cluster.binary("helm")), "status", "tierserve", "-n",
                            SYSTEM_NS], env=cluster.env(), capture_output=True, text=True,
                           check=True).stdout
    on, off = notes.split("\nOFF")
    assert "autoscaler: scrapes the engines directly (no Prometheus)" in on
    assert ("router: 2 replica(s), OpenAI API at "
            "http://tierserve-router.tierserve-system.svc/v1") in on
    assert "--set router.apiKeysSecret=<name>" in off and "--set autoscaler.prometheusUrl=" in off


def test_crd_upgrade_server_side_over_helms(cluster: ClusterHandle, installed: Any,
                                            tmp_path: Path) -> None:
    """docs/install.md's upgrade step: a changed CRD applied server-side over the one Helm
    created (the fields' manager is helm) needs --force-conflicts, and then takes."""
    crd = yaml.safe_load((CHART / "crds" / "tierserve.io_llmroutes.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    original = schema.get("description", "")
    schema["description"] = original + " (upgraded)"
    changed = tmp_path / "llmroutes.yaml"
    changed.write_text(yaml.safe_dump(crd))
    try:
        plain = cluster.kubectl.run("apply", "--server-side", "-f", str(changed), check=False)
        assert plain.returncode != 0 and "conflict" in plain.stderr.lower(), plain.stderr
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(changed))
        live = cluster.get_json("crd", "llmroutes.tierserve.io")
        assert live["spec"]["versions"][0]["schema"]["openAPIV3Schema"][
            "description"].endswith(" (upgraded)")
    finally:
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                    "crd/llmdeployments.tierserve.io", "crd/llmroutes.tierserve.io")


def _check_leader(kubeconfig: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tierserve.cli.main", "check", "leader",
                           "--kubeconfig", str(kubeconfig), "--namespace", SYSTEM_NS],
                          capture_output=True, text=True, timeout=120)


def _hook_access(cluster: ClusterHandle) -> list[dict[str, Any]]:
    """The leader test hook's ServiceAccount, Role and RoleBinding as the chart renders
    them (Helm creates them only for ``helm test``)."""
    res = subprocess.run([str(cluster.binary("helm")), "template", "tierserve", str(CHART),
                          "-n", SYSTEM_NS, "--show-only", "templates/tests/test-leader.yaml"],
                         capture_output=True, text=True, check=True)
    return [d for d in yaml.safe_load_all(res.stdout) if d and d["kind"] != "Pod"]


def test_helm_test_leader_check(cluster: ClusterHandle, namespace: str, tmp_path: Path,
                                operator_factory: Callable[..., Any]) -> None:
    access = _hook_access(cluster)
    cluster.apply(access)
    try:
        kubeconfig = service_account_kubeconfig(cluster, tmp_path / "kc", "tierserve-test")
        sa = f"system:serviceaccount:{SYSTEM_NS}:tierserve-test"
        for verb, what, expected in [("get", "leases/tierserve-operator", "yes"),
                                     ("get", "leases/other", "no"),
                                     ("update", "leases/tierserve-operator", "no")]:
            res = cluster.kubectl.run("auth", "can-i", verb, what, "-n", SYSTEM_NS, "--as", sa,
                                      check=False)
            assert res.stdout.strip() == expected, (verb, what)
        op = operator_factory("chart-leader", "-n", namespace)
        op.lease = "tierserve-operator"  # the chart's operator keeps the default name
        op.start()
        wait_until(lambda: "became leader" in op.logs(), 60, "the operator leads")
        res = _check_leader(kubeconfig)
        assert res.returncode == 0, res.stderr
        assert ("operator chart-leader leads (renewed Lease "
                "tierserve-system/tierserve-operator)") in res.stdout
        op.kill(signal.SIGTERM)  # releases the Lease on the way out
        res = _check_leader(kubeconfig)
        assert res.returncode == 1
        assert "Lease tierserve-system/tierserve-operator has no holder" in res.stderr
    finally:
        for d in access:
            cluster.kubectl.run("delete", d["kind"].lower(), d["metadata"]["name"], "-n",
                                SYSTEM_NS, check=False)


def _triton(ns: str) -> dict[str, Any]:
    return {"apiVersion": "tierserve.io/v1alpha1", "kind": "LLMDeployment",
            "metadata": {"name": "chat", "namespace": ns},
            "spec": {"model": {"name": "m", "uri": "hf://org/m", "parametersBillions": 3},
                     "runtime": "triton", "engine": "simulated",
                     "accelerator": {"type": "L4", "gpusPerReplica": 1},
                     "replicas": 2, "minReplicas": 1, "maxReplicas": 3,
                     "slo": {"ttftP95Ms": 2000, "tpotP95Ms": 80}}}


def _slice_addresses(cluster: ClusterHandle, ns: str) -> list[str]:
    items = cluster.get_json("endpointslices", "-n", ns, "-l",
                             "kubernetes.io/service-name=chat")["items"]
    return sorted(a for s in items for e in s.get("endpoints") or []
                  if (e.get("conditions") or {}).get("ready") is not False
                  for a in e.get("addresses") or [])


def test_default_autoscaler_scrapes_the_triton_pods_of_the_slices(
        cluster: ClusterHandle, installed: Any, namespace: str, tmp_path: Path,
        operator_factory: Callable[..., Any]) -> None:
    cluster.apply(_triton(namespace))
    operator_factory("chart-scrape", "-n", namespace).start()
    wait_until(lambda: len(_slice_addresses(cluster, namespace)) == 2, 120,
               "two ready Triton pods in the Service's EndpointSlices")
    kubeconfig = service_account_kubeconfig(cluster, tmp_path / "kc", AUTOSCALER_SA)
    log = tmp_path / "autoscaler.log"
    # the chart's command line, less --in-cluster (a kubeconfig of the same ServiceAccount)
    proc = subprocess.Popen([sys.executable, "-m", "tierserve.cli.main", "autoscaler",
                             "--kubeconfig", str(kubeconfig), "--namespace", namespace,
                             "--interval-s", "1", "--log-level", "debug"],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        urls = ", ".join(f"http://{a}:8002/metrics" for a in _slice_addresses(cluster, namespace))
        wanted = f"scrape URLs of {namespace}/chat: {urls}"
        wait_until(lambda: wanted in log.read_text(errors="replace"), 60,
                   f"{wanted!r} in the autoscaler's log")
        assert "Forbidden" not in log.read_text(errors="replace")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    assert json.loads(cluster.kubectl("get", "llmd", "chat", "-n", namespace, "-o",
                                      "json"))["spec"]["replicas"] >= 1
