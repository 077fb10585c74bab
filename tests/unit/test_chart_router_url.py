"""The chart tells the operator its router Service's URL (LLMRoute status.endpoint): the
name, namespace and port of the Service that router.yaml renders, and nothing without a
router."""

from __future__ import annotations

from typing import Any

from tests.unit.chart_support import NAMESPACE, RELEASE, helm_binary, render


def _operator_args(docs: list[dict[str, Any]]) -> list[str]:
    (dep,) = [d for d in docs if d["kind"] == "Deployment"
              and d["metadata"]["name"] == f"{RELEASE}-operator"]
    args: list[str] = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


def test_router_url_is_the_router_service() -> None:
    docs = render(helm_binary())
    (service,) = [d for d in docs if d["kind"] == "Service"
                  and d["metadata"]["name"] == f"{RELEASE}-router"]
    (port,) = service["spec"]["ports"]
    url = f"http://{RELEASE}-router.{NAMESPACE}.svc:{port['port']}/v1"
    assert f"--router-url={url}" in _operator_args(docs)


def test_no_router_url_without_a_router() -> None:
    args = _operator_args(render(helm_binary(), "--set", "router.enabled=false"))
    assert not [a for a in args if a.startswith("--router-url")]
