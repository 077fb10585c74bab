"""docs/observability.md's "Metrics reference" lists exactly what the components export:
every family of the operator (its own and the deployment-state collector), the autoscaler,
the router and the engines, by name (counters with ``_total``) and type."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from tierserve.autoscaler.metrics import ControllerMetrics
from tierserve.core.kube.client import WriteCounter
from tierserve.engine.metrics import EngineMetrics
from tierserve.operator.metrics import OperatorMetrics
from tierserve.operator.state_metrics import StateCollector
from tierserve.operator.store import Store
from tierserve.routing.metrics import RouterMetrics

DOC = Path(__file__).resolve().parents[2] / "docs" / "observability.md"


def documented() -> dict[str, str]:
    text = DOC.read_text()
    section = text.split("\n## Metrics reference\n", 1)[1].split("\n## ", 1)[0]
    section = section.split("\n### ", 1)[0]  # the table, not the version mapping
    rows = re.findall(r"^\| `([^`]+)` \| ([a-z ]+) \|", section, re.MULTILINE)
    return {name: kind for name, kind in rows if not name.startswith("process_")}


def exported() -> dict[str, str]:
    reg = CollectorRegistry()
    operator = OperatorMetrics(reg)
    operator.count_writes(WriteCounter())
    reg.register(StateCollector(Store()))
    ControllerMetrics(reg)
    RouterMetrics(reg).add_gauges(dict)
    EngineMetrics("m", reg)
    return {m.name + ("_total" if m.type == "counter" else ""): m.type for m in reg.collect()}


def test_the_reference_lists_every_family_with_its_type() -> None:
    doc, code = documented(), exported()
    assert set(doc) == set(code), {"undocumented": sorted(set(code) - set(doc)),
                                   "not exported": sorted(set(doc) - set(code))}
    assert {n: k for n, k in doc.items() if code[n] != k} == {}
