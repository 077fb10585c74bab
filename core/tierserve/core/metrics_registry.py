"""The Prometheus registry every Tierserve component exposes, with the standard collectors.

Each component owns its registry (no process-global ``REGISTRY``: tests build many
components in one process), so the collectors the default registry would carry are
registered here, once per component registry: ``process_*`` (CPU seconds, resident
memory, open file descriptors, start time: what a restart or a leak shows on), and
``python_info`` and ``python_gc_*`` (the interpreter, and where garbage collection
pauses come from).
"""

from __future__ import annotations

from prometheus_client import (
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.registry import CollectorRegistry


def component_registry(auto_describe: bool = False) -> CollectorRegistry:
    """A new registry with the process, platform and GC collectors registered."""
    registry = CollectorRegistry(auto_describe=auto_describe)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
