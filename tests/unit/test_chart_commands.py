"""The chart's command lines are ones the ``tierserve`` parser accepts, and the operator's
probes reach the health port its command line opens.

Every container and helm-test pod of the rendered chart (with defaults and with the
values that add flags) is parsed by the real parser, so a renamed or removed flag fails
here instead of in a crash-looping pod.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import pytest

from tests.unit import chart_support as cs
from tierserve.cli.main import build_parser

helm = pytest.fixture(scope="module")(cs.helm_binary)
VALUE_SETS = [
    (),
    ("--set", "operator.logLevel=debug", "--set", "operator.watchNamespaces={a,b}",
     "--set", "router.apiKeysSecret=keys", "--set", "autoscaler.namespace=team",
     "--set", "autoscaler.prometheusUrl=http://prometheus.monitoring.svc:9090"),
]


def _containers(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for d in docs:
        spec = d.get("spec") or {}
        pod = spec.get("template", {}).get("spec") if d["kind"] == "Deployment" else (
            spec if d["kind"] == "Pod" else None)
        for c in (pod or {}).get("containers", []):
            out.append((f"{d['kind']}/{d['metadata']['name']}", c))
    return out


@pytest.mark.parametrize("values", VALUE_SETS, ids=["defaults", "flags"])
def test_every_command_line_in_the_chart_parses(helm: str, values: tuple[str, ...]) -> None:
    containers = _containers(cs.render(helm, *values))
    assert {"Deployment/tierserve-operator", "Deployment/tierserve-router",
            "Deployment/tierserve-autoscaler"} <= {name for name, _ in containers}
    for name, container in containers:
        args = [str(a) for a in container.get("args", [])]
        errors = io.StringIO()
        try:
            with contextlib.redirect_stderr(errors):
                build_parser(args).parse_args(args)
        except SystemExit:
            pytest.fail(f"{name}: tierserve {' '.join(args)}: {errors.getvalue()}")


def _arg(args: list[str], flag: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in args if a.startswith(f"{flag}=")]
    return value


def test_operator_probes_reach_the_event_loops_health_endpoints(helm: str) -> None:
    [container] = cs.pod_spec(cs.render(helm), "operator")["containers"]
    args = container["args"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["health"] == int(_arg(args, "--health-port"))
    assert ports["metrics"] == int(_arg(args, "--metrics-port"))
    assert _arg(args, "--metrics-host") == "0.0.0.0"  # the kubelet probes the pod IP
    live, ready = container["livenessProbe"], container["readinessProbe"]
    assert live["httpGet"] == {"path": "/healthz", "port": "health"}
    assert ready["httpGet"] == {"path": "/readyz", "port": "health"}
    assert live["timeoutSeconds"] >= 1 and live["failureThreshold"] >= 3
    assert "--in-cluster" in args  # a pod uses its ServiceAccount, never a stray kubeconfig


@pytest.mark.parametrize("level", ["debug", "info", "warning", "error"])
def test_operator_log_level_value_is_the_flag(helm: str, level: str) -> None:
    docs = cs.render(helm, "--set", f"operator.logLevel={level}")
    [container] = cs.pod_spec(docs, "operator")["containers"]
    assert _arg(container["args"], "--log-level") == level


def test_operator_log_level_outside_the_parsers_choices_is_rejected(helm: str) -> None:
    assert "logLevel" in cs.rejected(helm, "--set", "operator.logLevel=verbose")
