"""Pure desired-state builders: an LLMDeployment in, its child manifests out.

The shared parts (names, labels, owner references, settings) are in :mod:`.common`; what
differs per runtime is in that runtime's plugin (:mod:`tierserve.core.runtimes`).
"""

from __future__ import annotations

from tierserve.core.builders.common import BuildContext, BuildSettings, Manifest


def build_children(ctx: BuildContext) -> list[Manifest]:
    """Every child the operator owns for this deployment, in apply order."""
    # Imported here, not at the top: the runtime plugins build on this package's
    # helpers (.common), so importing them first would be circular.
    from tierserve.core.runtimes import build_children as build

    return build(ctx)


__all__ = ["BuildContext", "BuildSettings", "Manifest", "build_children"]
