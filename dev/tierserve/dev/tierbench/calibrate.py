"""Choose the tier pair and its thresholds on the calibration half (pure functions).

From each configuration's answers on the calibration half (correct or not, latency as the
cost of one request on one engine thread, the mean log-probability), simulate a tier pair
with a classifier threshold ``t_cls`` (prompt score at or above: slow tier) and a
confidence floor ``t_lp`` (a fast answer with a lower mean log-probability escalates,
costing both answers). The rule, RouteLLM's: the cheapest setting whose accuracy is
within ``tolerance`` (2 points) of the best that any setting of the pair reaches, singles
included. The thresholds chosen here are then applied by the real router on the other
half, which is what the benchmark reports.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

NEVER_SLOW = 1.0  # a classifier threshold no short prompt reaches (scores are below 1)
NEVER_ESCALATE = -1e9  # a confidence floor no answer is below


@dataclass(frozen=True)
class Item:
    """One configuration's answer to one calibration question."""

    correct: bool
    cost: float
    mean_logprob: float | None


@dataclass(frozen=True)
class Point:
    """A simulated setting of a pair on the calibration half."""

    t_cls: float
    t_lp: float
    correct: int
    cost: float
    slow: int  # sent to the slow tier by the classifier
    escalated: int

    def accuracy(self, n: int) -> float:
        return self.correct / max(1, n)


def simulate(fast: Sequence[Item], slow: Sequence[Item], scores: Sequence[float],
             t_cls: float, t_lp: float) -> Point:
    correct = n_slow = n_esc = 0
    cost = 0.0
    for f, s, score in zip(fast, slow, scores, strict=True):
        if score >= t_cls:
            n_slow, correct, cost = n_slow + 1, correct + s.correct, cost + s.cost
        elif f.mean_logprob is not None and f.mean_logprob < t_lp:
            n_esc, correct, cost = n_esc + 1, correct + s.correct, cost + f.cost + s.cost
        else:
            correct, cost = correct + f.correct, cost + f.cost
    return Point(t_cls, t_lp, correct, cost, n_slow, n_esc)


def cls_candidates(scores: Sequence[float]) -> list[float]:
    """Every threshold that changes the decision, and one that sends nothing slow."""
    return sorted({*scores, NEVER_SLOW})


def lp_candidates(fast: Sequence[Item]) -> list[float]:
    """Midpoints between the fast tier's distinct mean log-probabilities, and 'never'."""
    values = sorted({f.mean_logprob for f in fast if f.mean_logprob is not None})
    mids = [(a + b) / 2 for a, b in itertools.pairwise(values)]
    return [NEVER_ESCALATE, *mids, *([values[-1] + 1e-6] if values else [])]


def choose(points: Sequence[Point], n: int, tolerance: float = 0.02) -> Point:
    """The cheapest point within ``tolerance`` of the best accuracy among ``points``."""
    best = max(p.correct for p in points)
    ok = [p for p in points if p.correct >= best - tolerance * n - 1e-9]
    return min(ok, key=lambda p: (p.cost, -p.correct))


@dataclass(frozen=True)
class Calibrated:
    """The three tiered policies of one pair, each with its calibrated thresholds."""

    fast: str
    slow: str
    classifier: Point  # (a): classifier only
    confidence: Point  # (b): escalation on low mean log-probability only
    both: Point  # (c)


def calibrate_pair(fast: str, slow: str, items: Mapping[str, Sequence[Item]],
                   scores: Sequence[float], tolerance: float = 0.02) -> Calibrated:
    f, s = items[fast], items[slow]
    n = len(scores)
    cls = [simulate(f, s, scores, t, NEVER_ESCALATE) for t in cls_candidates(scores)]
    lp = [simulate(f, s, scores, NEVER_SLOW, t) for t in lp_candidates(f)]
    both = [simulate(f, s, scores, tc, tl) for tc in cls_candidates(scores)
            for tl in lp_candidates(f)]
    return Calibrated(fast, slow, choose(cls, n, tolerance), choose(lp, n, tolerance),
                      choose(both, n, tolerance))


def single(items: Sequence[Item]) -> tuple[int, float]:
    return sum(i.correct for i in items), sum(i.cost for i in items)


def weak_strong(fast: Sequence[Item], slow: Sequence[Item]) -> bool:
    """The slow configuration is both more accurate and dearer than the fast one."""
    (fc, fcost), (sc, scost) = single(fast), single(slow)
    return sc > fc and scost > fcost


def pick_pair(pairs: Sequence[Calibrated], items: Mapping[str, Sequence[Item]], n: int,
              tolerance: float = 0.02) -> Calibrated:
    """RouteLLM's question: among the weak/strong pairs (all pairs if there is none), the
    one whose escalation setting comes within ``tolerance`` of the best configuration
    alone at the lowest cost; failing that, the most accurate. Escalation on confidence
    is the policy judged because it needs no prompt signal."""
    strong = [p for p in pairs if weak_strong(items[p.fast], items[p.slow])] or list(pairs)
    best = max(single(i)[0] for i in items.values())
    near = [p for p in strong if p.confidence.correct >= best - tolerance * n - 1e-9]
    if near:
        return min(near, key=lambda p: (p.confidence.cost, -p.confidence.correct))
    return max(strong, key=lambda p: (p.confidence.correct, -p.confidence.cost))


def confidence_auc(items: Sequence[Item]) -> float | None:
    """How well the mean log-probability ranks right answers above wrong ones: the
    probability that a random right answer has the higher value (0.5: no signal)."""
    right = [i.mean_logprob for i in items if i.correct and i.mean_logprob is not None]
    wrong = [i.mean_logprob for i in items if not i.correct and i.mean_logprob is not None]
    if not right or not wrong:
        return None
    wins = sum((r > w) + 0.5 * (r == w) for r in right for w in wrong)
    return wins / (len(right) * len(wrong))


def finite(x: float) -> float | None:
    """``x`` for JSON, None for the 'never' sentinels."""
    return None if x in (NEVER_SLOW, NEVER_ESCALATE) or not math.isfinite(x) else x
