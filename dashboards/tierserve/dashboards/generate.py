"""The dashboard table and the JSON Grafana imports: ``dashboards/json/<uid>.json`` for
people who import by hand or provision files, ``charts/tierserve/dashboards/<uid>.json``
for the chart's ConfigMaps (Helm reads files only inside the chart, hence two copies,
as with the CRDs). A unit test fails while either copy is stale.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

from tierserve.dashboards import autoscaler, deployment, fleet, operator, router

# In the order people should open them.
BUILDERS: tuple[Callable[[], dm.Dashboard], ...] = (
    fleet.build, deployment.build, router.build, autoscaler.build, operator.build)
OUT_DIRS = (Path("dashboards/json"), Path("charts/tierserve/dashboards"))


def all_dashboards() -> dict[str, dm.Dashboard]:
    """uid -> dashboard model."""
    built = [build() for build in BUILDERS]
    return {d.uid or "": d for d in built}


def to_json(d: dm.Dashboard) -> str:
    return json.dumps(d, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def as_dicts() -> list[dict[str, Any]]:
    """The dashboards as Grafana's JSON model (what the snapshot and the query lister
    read: the same definitions Grafana gets)."""
    return [json.loads(to_json(d)) for d in all_dashboards().values()]


def rendered() -> dict[str, str]:
    """File name -> JSON text."""
    return {f"{uid}.json": to_json(d) for uid, d in all_dashboards().items()}


def stale_files(out: Path) -> list[Path]:
    files = rendered()
    return [out / name for name, text in files.items()
            if not (out / name).exists() or (out / name).read_text() != text]


def write(outs: Sequence[Path]) -> list[Path]:
    written = []
    for out in outs:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in rendered().items():
            (out / name).write_text(text)
            written.append(out / name)
    return written
