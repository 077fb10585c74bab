"""The runtime registry: ``spec.runtime`` -> its :class:`~.base.Runtime` plugin.

Adding a runtime is one module implementing :class:`~.base.Runtime` and one line here
(plus its name in the API's ``Runtime`` enum, which the CRD validates, and, for
``--target local``, one runner in ``tierserve.engine.local``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from tierserve.core.builders.common import BuildContext, Manifest
from tierserve.core.runtimes.base import Runtime
from tierserve.core.runtimes.rayserve import RayServe
from tierserve.core.runtimes.triton import Triton

_PLUGINS: tuple[Runtime, ...] = (  # typed: each one is checked against Runtime
    RayServe(),
    Triton(),
)
RUNTIMES: Mapping[str, Runtime] = MappingProxyType({r.name: r for r in _PLUGINS})


def runtime_for(name: str) -> Runtime:
    """The plugin for ``spec.runtime``; a clear error for a name none serves."""
    try:
        return RUNTIMES[name]
    except KeyError:
        raise ValueError(f"unknown runtime {name!r} (known: {', '.join(sorted(RUNTIMES))})"
                         ) from None


def build_children(ctx: BuildContext) -> list[Manifest]:
    """Every child the operator owns for this deployment, in apply order."""
    return runtime_for(ctx.spec.runtime).children(ctx)


__all__ = ["RUNTIMES", "Runtime", "build_children", "runtime_for"]
