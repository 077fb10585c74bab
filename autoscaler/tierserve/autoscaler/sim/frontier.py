"""Cost at equal attainment: each policy's attainment/GPU-hours frontier over its knobs.

One run per policy compares points, not policies: a baseline tuned a hair above or
below ours looks cheaper or dearer than it is. The fair question is "what does each
policy need to reach attainment A?". For every policy we sweep its knobs, keep the
Pareto-optimal runs (no other run is both cheaper and better-attaining), and read the
cost at A off that frontier by linear interpolation between neighbouring points, the
cost of alternating the two settings over time. Below the frontier's cheapest point the
cheapest point's cost stands in (a claim of "cheaper than any run we saw" needs a run);
above its best-attaining point there is no figure (``None``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

Point = tuple[float, float]  # (attainment, gpu_hours)


@dataclass(frozen=True)
class Frontier:
    policy: str
    points: tuple[Point, ...]  # Pareto-optimal, attainment ascending (and cost ascending)

    def cost_at(self, attainment: float) -> float | None:
        """GPU-hours this policy needs to reach ``attainment`` (None: it never does)."""
        pts = self.points
        if not pts or attainment > pts[-1][0]:
            return None
        if attainment <= pts[0][0]:
            return pts[0][1]
        for (a0, c0), (a1, c1) in itertools.pairwise(pts):
            if a0 <= attainment <= a1:
                share = (attainment - a0) / (a1 - a0) if a1 > a0 else 1.0
                return c0 + share * (c1 - c0)
        return None  # unreachable: the bounds above cover every case


def pareto(policy: str, points: Sequence[Point]) -> Frontier:
    """Runs no other run beats on both counts, ordered by attainment."""
    keep: list[Point] = []
    for att, cost in sorted(points, key=lambda p: (p[1], -p[0])):  # cheapest first
        if not keep or att > keep[-1][0]:
            keep.append((att, cost))
    return Frontier(policy, tuple(keep))


def cost_table(
    frontiers: Mapping[str, Frontier], levels: Sequence[float], ours: str = "slo"
) -> str:
    """Markdown: GPU-hours per policy at each attainment level, and ours' saving."""
    names = [ours, *[n for n in frontiers if n != ours]]
    head = ["attainment", *[f"{n} GPU-h" for n in names],
            *[f"saving vs {n}" for n in names if n != ours]]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for level in levels:
        costs = {n: frontiers[n].cost_at(level) for n in names}
        cells = [f"{level:.2%}", *["-" if costs[n] is None else f"{costs[n]:.3f}" for n in names]]
        base = costs[ours]
        for n in names[1:]:
            other = costs[n]
            cells.append("-" if base is None or other is None else f"{1 - base / other:.1%}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bound_table(
    frontiers: Mapping[str, Frontier],
    bound_at: Callable[[float], float | None],
    levels: Sequence[float],
    ours: str = "slo",
    saving: float = 0.25,
) -> str:
    """Markdown: each policy's cost at each level as a multiple of the clairvoyant bound
    at that level, and what ``saving`` below the cheapest baseline would require."""
    names = [ours, *[n for n in frontiers if n != ours]]
    head = ["attainment", "bound GPU-h", *[f"{n} / bound" for n in names],
            f"{saving:.0%} below best baseline / bound"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for level in levels:
        bound = bound_at(level)
        costs = {n: frontiers[n].cost_at(level) for n in names}
        others = [c for n, c in costs.items() if n != ours and c is not None]
        need = (1 - saving) * min(others) if others else None
        cells = [f"{level:.2%}", "-" if bound is None else f"{bound:.3f}"]
        for cost in [*costs.values(), need]:
            cells.append("-" if bound is None or cost is None else f"{cost / bound:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
