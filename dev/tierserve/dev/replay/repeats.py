"""Several real runs of one setting against one simulated run: the real median.

One real run on the shared 2-core machine is a noisy sample (two runs of the same slice
differed by 14 points of attainment), so each real setting is run several times, one
``compare --json`` file per run (a process per real run: Ray does not restart cleanly in
one process), and the simulator is compared with the median of the real runs, figure by
figure. The per-run rows are kept under the median, so the table shows the
measurement's own spread next to the simulator's error.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tierserve.dev.replay.compare import KEYS

Rows = dict[str, dict[str, Any]]


def merge(runs: Sequence[Mapping[str, Mapping[str, Any]]]) -> Rows:
    """One table from several ``compare`` outputs: each real row once per run (``run k``)
    then the median of those runs under the plain name, and each simulated row once
    (they are deterministic given their seeds; differing ones are refused) -- unless
    every simulated row of that name is a run's own twin, simulated at the host speed
    that run's probe measured (``host_speed``): those are kept per run and their median
    goes under the plain name, beside the real median."""
    real: dict[str, list[Mapping[str, Any]]] = {}
    twins: dict[str, list[Mapping[str, Any]]] = {}
    sim: Rows = {}
    for run in runs:
        for name, row in run.items():
            if name.startswith("real"):
                real.setdefault(name, []).append(row)
            elif "host_speed" in row:
                twins.setdefault(name, []).append(row)
            elif name in sim and _figures(sim[name]) != _figures(row):
                raise ValueError(f"{name!r} differs between runs: {_figures(sim[name])} "
                                 f"vs {_figures(row)} (another profile or slice?)")
            else:
                sim[name] = dict(row)
    if mixed := set(twins) & set(sim):
        raise ValueError(f"{sorted(mixed)}: some runs probed the host and some did not")
    out: Rows = {}
    for name, rows in real.items():
        out.update(_with_median(name, rows))
        sim_name = name.replace("real", "sim", 1)
        if sim_name in twins:
            out.update(_with_median(sim_name, twins.pop(sim_name)))
        elif sim_name in sim:
            out[sim_name] = sim.pop(sim_name)
    for name, rows in twins.items():
        out.update(_with_median(name, rows))
    return {**out, **sim}


def _with_median(name: str, rows: Sequence[Mapping[str, Any]]) -> Rows:
    out = {f"{name}, run {k}": dict(row) for k, row in enumerate(rows, 1)}
    out[name] = median_row(rows)
    return out


def median_row(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The median of each figure (and of the average replica count) over ``rows``."""
    if not rows:
        raise ValueError("no runs to take the median of")
    keys = (*KEYS, "avg_replicas")
    return {"requests": rows[0]["requests"], "runs": len(rows),
            **{k: round(statistics.median(float(r[k]) for r in rows), 4) for k in keys}}


def spread(rows: Mapping[str, Mapping[str, Any]], name: str) -> dict[str, float]:
    """Max - min over the runs of ``name`` (the real-vs-real noise of each figure)."""
    runs = [r for n, r in rows.items() if n.startswith(f"{name}, run ")]
    return {k: round(max(float(r[k]) for r in runs) - min(float(r[k]) for r in runs), 4)
            for k in KEYS} if runs else {}


def _figures(row: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(row[k] for k in KEYS)


def load(paths: Sequence[Path]) -> list[dict[str, dict[str, Any]]]:
    out = []
    for path in paths:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected compare's --json rows, got {type(data).__name__}")
        out.append(data)
    return out
