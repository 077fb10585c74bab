"""The Prometheus Operator's CRDs (ServiceMonitor, PodMonitor, PrometheusRule) from its
published Go module, to check the chart's monitoring objects against the schemas a
cluster would apply (tests/unit/test_chart_monitoring.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tierserve.dev.cluster import build, gomodules

MODULE = "github.com/prometheus-operator/prometheus-operator"
VERSION = "v0.81.0"
# `go mod download -json` "Sum" of the module zip at VERSION
SUM = "h1:+3DLFPMKBehPrVDO/WMFnDlb2qJLAVQcjeUmVt1YBuA="
PLURALS = {"ServiceMonitor": "servicemonitors", "PodMonitor": "podmonitors",
           "PrometheusRule": "prometheusrules"}


def crd_file(kind: str) -> Path:
    if kind not in PLURALS:
        raise ValueError(f"no CRD for kind {kind!r}; have {', '.join(PLURALS)}")
    path = (gomodules.module_dir(MODULE, VERSION, SUM) / "example" / "prometheus-operator-crd"
            / f"monitoring.coreos.com_{PLURALS[kind]}.yaml")
    if not path.is_file():
        raise build.BuildFailed(f"{MODULE}@{VERSION} lacks {path}")
    return path


def schema(kind: str) -> dict[str, Any]:
    """The openAPIV3Schema of ``kind``'s served version v1."""
    crd = yaml.safe_load(crd_file(kind).read_text())
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    found: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return found
