"""Pure desired-state builders: an LLMDeployment in, its child manifests out."""

from __future__ import annotations

from tierserve.core.builders import rayservice, triton
from tierserve.core.builders.common import BuildContext, BuildSettings, Manifest


def build_children(ctx: BuildContext) -> list[Manifest]:
    """Every child the operator owns for this deployment, in apply order."""
    if ctx.spec.runtime == "rayServe":
        return rayservice.build(ctx)
    return triton.build(ctx)


__all__ = ["BuildContext", "BuildSettings", "Manifest", "build_children"]
