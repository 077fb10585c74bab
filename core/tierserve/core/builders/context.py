"""From an LLMDeployment object (as stored in the API) to a :class:`BuildContext`.

Raises :class:`~tierserve.core.api.errors.InvalidObject` for what the schema would reject
and :class:`~tierserve.core.sizing.SizingError` for semantic problems (model does not fit,
SLO unattainable); the operator turns both into ``Ready=False`` conditions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tierserve.core.api.deployment import LLMDeploymentSpec
from tierserve.core.api.errors import validate
from tierserve.core.builders.common import BuildContext, BuildSettings
from tierserve.core.catalog import get
from tierserve.core.sizing import plan


def parse_spec(body: Mapping[str, Any]) -> LLMDeploymentSpec:
    spec: LLMDeploymentSpec = validate(LLMDeploymentSpec, body.get("spec") or {})
    return spec


def from_object(body: Mapping[str, Any], settings: BuildSettings) -> BuildContext:
    meta = body.get("metadata") or {}
    spec = parse_spec(body)
    return BuildContext(
        name=meta["name"],
        namespace=meta.get("namespace") or "default",
        uid=meta.get("uid") or "00000000-0000-0000-0000-000000000000",
        spec=spec,
        plan=plan(spec, settings.price_per_hour_usd(spec.accelerator.type)),
        accelerator=get(spec.accelerator.type),
        settings=settings,
        generation=int(meta.get("generation") or 0),
    )
