"""Rendering the Helm chart with the real, pinned helm binary (no cluster): manifests,
schema errors and NOTES.txt. Shared by the chart tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tierserve.dev.cluster import build

CHART = Path(__file__).resolve().parents[2] / "charts" / "tierserve"
RELEASE, NAMESPACE = "tierserve", "mp-system"


def helm_binary() -> str:
    """The cached helm; skipped (failed on CI) when it is not built."""
    path = build.binary("helm").path
    if not path.is_file():
        message = f"helm is not built ({path}); `tierserve-dev cluster build` builds it"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return str(path)


def run(helm: str, *values: str, chart: Path = CHART) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, "template", RELEASE, str(chart), "-n", NAMESPACE, *values],
                          capture_output=True, text=True, timeout=60)


def render(helm: str, *values: str, chart: Path = CHART) -> list[dict[str, Any]]:
    res = run(helm, *values, chart=chart)
    assert res.returncode == 0, res.stderr
    return [d for d in yaml.safe_load_all(res.stdout) if d]


def rejected(helm: str, *values: str) -> str:
    """The schema's error for ``values`` (asserts that helm refused them)."""
    res = run(helm, *values)
    assert res.returncode != 0, f"accepted: {values}"
    assert "values don't meet the specifications of the schema" in res.stderr, res.stderr
    return res.stderr


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def pod_spec(docs: list[dict[str, Any]], component: str) -> dict[str, Any]:
    spec: dict[str, Any] = find(docs, "Deployment", f"{RELEASE}-{component}")["spec"][
        "template"]["spec"]
    return spec


def notes(helm: str, tmp: Path, *values: str) -> str:
    """NOTES.txt as ``helm install`` prints it. ``helm template`` skips NOTES.txt and a
    client-only install still asks a cluster, so a copy of the chart renders the same
    text as a named template inside a ConfigMap."""
    chart = tmp / "chart"
    shutil.copytree(CHART, chart)
    body = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "NOTES.txt").unlink()
    (chart / "templates" / "_notes.tpl").write_text(
        '{{- define "test.notes" -}}\n' + body + "{{- end }}\n")
    (chart / "templates" / "notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n"
        'data: {text: {{ include "test.notes" . | toJson }}}\n')
    res = run(helm, *values, "--show-only", "templates/notes.yaml", chart=chart)
    assert res.returncode == 0, res.stderr
    text: str = yaml.safe_load(res.stdout)["data"]["text"]
    return text
