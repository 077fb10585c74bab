"""The chart's ``engines.gpuPrices`` (BuildSettings.gpu_prices) is the one price: the sizing
plan's cost and the operator's ``tierserve_deployment_cost_per_hour_usd`` both use it, and
fall back to the catalog's for the other types."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from tests.unit.test_operator_state_metrics import _deployment, _ready
from tierserve.core.builders import BuildSettings
from tierserve.core.catalog import CATALOG
from tierserve.operator.state_metrics import StateCollector
from tierserve.operator.store import Store

PRICES = BuildSettings(gpu_prices={"L4": 0.5})


def _cost(settings: BuildSettings, accelerator: str) -> float | None:
    store = Store()
    store.put_deployment(_deployment("chat", {"accelerator": {"type": accelerator}}, {
        "readyReplicas": 3, "sizing": {"gpusPerReplica": 2},
        "conditions": [_ready(True)]}), deleted=False)
    reg = CollectorRegistry()
    reg.register(StateCollector(store, settings=settings))
    return reg.get_sample_value("tierserve_deployment_cost_per_hour_usd",
                                {"namespace": "ns", "deployment": "chat"})


def test_the_cost_metric_uses_the_configured_price() -> None:
    assert _cost(PRICES, "L4") == 6 * 0.5  # 3 ready replicas x 2 GPUs x $0.5
    assert _cost(PRICES, "L40S") == 6 * CATALOG["L40S"].cost_per_hour_usd
    assert _cost(BuildSettings(), "L4") == 6 * CATALOG["L4"].cost_per_hour_usd
