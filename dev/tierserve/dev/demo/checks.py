"""What the demo promises, checked at its end: every LLMDeployment and LLMRoute Ready,
no failed request, the scaled deployment going 1 -> 2 while the burst ran (from one
replica at the burst's start: a count already raised before it is not the burst's
doing) and back to 1 after it. A failed check makes the demo exit non-zero."""

from __future__ import annotations

from dataclasses import dataclass

from tierserve.dev.demo.traffic import DemoRecord
from tierserve.dev.demo.watch import Watcher

Results = dict[str, tuple[bool, str]]  # what -> (holds, why not)


@dataclass
class Traffic:
    """One run of the plan: its records, replica points and time range."""

    records: list[DemoRecord]
    watcher: Watcher
    started_unix: float
    started: float  # monotonic, as the records and points
    burst: tuple[float, float]  # monotonic range of the burst phase


def checks(t: Traffic, not_ready: list[str], scaled: str) -> Results:
    """The checks of a run; ``not_ready`` says why objects are not Ready (empty: all are)."""
    points = t.watcher.points.get(scaled, [])
    before = [pt.spec for pt in points if pt.t < t.burst[0]]
    up = t.watcher.first(scaled, lambda pt: pt.spec > 1, t.burst[0])
    if before and before[-1] != 1:
        up = None
    down = up and t.watcher.first(scaled, lambda pt: pt.spec == 1, up.t)
    failed = [r for r in t.records if not r.ok]
    return {
        "every LLMDeployment and LLMRoute Ready": (not not_ready, "; ".join(not_ready)),
        f"no failed request ({len(t.records)} sent)": (
            not failed, "; ".join(sorted({str(r.error) for r in failed})[:3])),
        f"{scaled} scaled up during the burst": (
            up is not None and up.t <= t.burst[1],
            f"replicas at the burst's start: {before[-1:]}, seen: "
            f"{sorted({pt.spec for pt in points})}"),
        f"{scaled} scaled back down after it": (bool(down), ""),
    }


def print_checks(results: Results) -> None:
    print("\nchecks:")
    for what, (ok, why) in results.items():
        print(f"  {'ok    ' if ok else 'FAILED'} {what}{'' if ok or not why else ': ' + why}")
