"""API types, CRD generation and the shared bad-manifest table (render side)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.data.badcases import load_bad_cases
from tierserve.cli.render import render_object
from tierserve.core.api.crd import all_crds, to_yaml
from tierserve.core.api.errors import InvalidObject
from tierserve.core.builders import BuildSettings

ROOT = Path(__file__).resolve().parents[2]


def test_import_operator_is_stdlib_from_repo_root() -> None:
    out = subprocess.run([sys.executable, "-c", "import operator; print(operator.__file__)"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "site-packages" not in out and str(ROOT) not in out
    assert out.strip().endswith("operator.py")


@pytest.mark.parametrize("out", ["crds", "charts/tierserve/crds"])
def test_committed_crds_are_fresh(out: str) -> None:
    for name, obj in all_crds().items():
        committed = (ROOT / out / name).read_text()
        assert committed == to_yaml(obj), f"{out}/{name} is stale: run `make crds`"


def _walk(node: Any, path: str = "") -> list[str]:
    bad: list[str] = []
    if isinstance(node, dict):
        for forbidden in ("$ref", "anyOf", "oneOf", "const", "title", "$defs"):
            if forbidden in node:
                bad.append(f"{path}: {forbidden}")
        for k, v in node.items():
            bad.extend(_walk(v, f"{path}.{k}"))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            bad.extend(_walk(v, f"{path}[{i}]"))
    return bad


@pytest.mark.parametrize("name", list(all_crds()))
def test_crd_schema_is_structural(name: str) -> None:
    crd = all_crds()[name]
    version = crd["spec"]["versions"][0]
    assert not _walk(version["schema"]["openAPIV3Schema"])
    assert "llm" in crd["spec"]["names"]["categories"]


def test_deployment_crd_has_scale_status_and_columns() -> None:
    version = all_crds()["tierserve.io_llmdeployments.yaml"]["spec"]["versions"][0]
    assert version["subresources"]["scale"]["specReplicasPath"] == ".spec.replicas"
    assert version["subresources"]["status"] == {}
    cols = [c["name"] for c in version["additionalPrinterColumns"]]
    assert cols == ["Model", "Runtime", "Engine", "Accelerator", "Replicas", "SLO", "Ready",
                    "Endpoint", "Age"]


def _cel_rules(node: Any) -> list[dict[str, str]]:
    if isinstance(node, list):
        return [r for n in node for r in _cel_rules(n)]
    if not isinstance(node, dict):
        return []
    own = node.get("x-kubernetes-validations") or []
    return [*own, *(r for k, v in node.items() if k != "x-kubernetes-validations"
                    for r in _cel_rules(v))]


def test_every_cel_rule_has_a_bad_manifest_case() -> None:
    # transition rules (oldSelf) need an update to fail: their cases are bad_changes.yaml
    messages = {r["message"] for r in _cel_rules(list(all_crds().values()))
                if "oldSelf" not in r["rule"]}
    expected = " ".join(expect for _, _, expect in load_bad_cases())
    missing = [m for m in messages if m[:40] not in expected]
    assert not missing, f"CEL rules without a bad-manifest case: {missing}"


@pytest.mark.parametrize(("name", "doc", "expect"), load_bad_cases(),
                         ids=[c[0] for c in load_bad_cases()])
def test_render_rejects_bad_manifest_with_api_server_message(
        name: str, doc: dict[str, Any], expect: str) -> None:
    with pytest.raises(InvalidObject) as err:
        render_object(doc, BuildSettings())
    assert expect in str(err.value), f"{name}: {err.value}"
    assert str(err.value).startswith(f'The {doc["kind"]} "bad" is invalid: ')


def test_examples_render(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "tierserve.cli.main", "render", "-f",
                          str(ROOT / "examples")], capture_output=True, text=True, check=True)
    kinds = [d["kind"] for d in yaml.safe_load_all(out.stdout)]
    assert kinds.count("RayService") == 3 and kinds.count("Deployment") == 3


def test_render_semantic_error_exits_nonzero(tmp_path: Path) -> None:
    f = tmp_path / "big.yaml"
    f.write_text(yaml.safe_dump({
        "apiVersion": "tierserve.io/v1alpha1", "kind": "LLMDeployment",
        "metadata": {"name": "big"},
        "spec": {"model": {"name": "m", "uri": "hf://x/y", "parametersBillions": 70,
                           "dtype": "float16"},
                 "runtime": "triton", "engine": "vllm",
                 "accelerator": {"type": "L4", "gpusPerReplica": 1},
                 "slo": {"ttftP95Ms": 1000, "tpotP95Ms": 100}}}))
    res = subprocess.run([sys.executable, "-m", "tierserve.cli.main", "render", "-f", str(f)],
                         capture_output=True, text=True)
    assert res.returncode == 1
    assert "InsufficientGPUMemory" in res.stderr and "1 x L4" in res.stderr
    assert res.stdout == ""
