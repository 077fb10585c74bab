"""Every component's own registry carries the standard process collectors, and several
components in one process (as in tests and the local target) do not collide."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from tierserve.core.metrics_registry import component_registry
from tierserve.engine.metrics import EngineMetrics
from tierserve.routing.metrics import RouterMetrics

STANDARD = ("process_cpu_seconds_total", "process_resident_memory_bytes",
            "process_start_time_seconds", "python_info{", "python_gc_objects_collected_total")


def _exposes_standard(registry: CollectorRegistry) -> None:
    text = generate_latest(registry).decode()
    for name in STANDARD:
        assert f"\n{name}" in text, name


def test_router_and_engine_registries_have_the_process_collectors() -> None:
    _exposes_standard(RouterMetrics().registry)
    _exposes_standard(EngineMetrics("m").registry)


def test_two_of_each_in_one_process() -> None:
    for _ in range(2):
        _exposes_standard(component_registry())
        RouterMetrics()
        EngineMetrics("m")


def test_a_registry_the_caller_passes_is_left_as_it_is() -> None:
    text = generate_latest(RouterMetrics(CollectorRegistry()).registry).decode()
    assert "process_cpu_seconds_total" not in text
