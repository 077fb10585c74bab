"""Tier classifiers and threshold calibration.

The heuristic classifier rates a prompt's difficulty from cheap signals (length, code,
math, multi-step instructions, conversation depth) in a few microseconds. Its raw score
has no absolute meaning, so the tier threshold is *calibrated*: set to the score
quantile that sends the target share of traffic to the slow tier (as RouteLLM does),
first over the labelled set shipped in ``routing/data`` and then over a sliding window of
live traffic so the share holds when the prompt mix drifts.
"""

from __future__ import annotations

import bisect
import math
import re
from collections import deque
from collections.abc import Iterable

_CODE = re.compile(r"```|\bdef \w+\(|\bclass \w+|#include|\bfunction\b|=>|\bSELECT\b|;\s*$"
                   r"|\breturn\b|\bimport \w+|\{\s*$", re.MULTILINE)
_MATH = re.compile(r"\\(frac|sum|int|sqrt)|\b(integral|derivative|prove|theorem|equation|"
                   r"matrix|probability|solve)\b|\d+\s*[\^*/+-]\s*\d+|[=<>]\s*\d", re.IGNORECASE)
_STEPS = re.compile(r"\b(step by step|first\b.*\bthen|and then|finally|after that|compare|"
                    r"analy[sz]e|explain why|trade-?offs?|design|plan)\b|^\s*\d+[.)]\s",
                    re.IGNORECASE | re.MULTILINE)

# Weights sum to 1 so the score stays in [0, 1]; length dominates because it is the most
# reliable single predictor of work in the labelled set.
_WEIGHTS = {"length": 0.35, "code": 0.2, "math": 0.2, "steps": 0.15, "depth": 0.1}


def features(text: str, turns: int) -> dict[str, float]:
    """Each feature in [0, 1]."""
    sample = text[:8000]  # bound the regex work on huge prompts
    return {
        "length": min(1.0, math.log1p(len(text)) / math.log1p(4000)),
        "code": min(1.0, len(_CODE.findall(sample)) / 3),
        "math": min(1.0, len(_MATH.findall(sample)) / 3),
        "steps": min(1.0, len(_STEPS.findall(sample)) / 3),
        "depth": min(1.0, max(0, turns - 1) / 8),
    }


class HeuristicClassifier:
    """Weighted sum of :func:`features`."""

    async def score(self, text: str, turns: int) -> float:
        return self.score_sync(text, turns)

    def score_sync(self, text: str, turns: int) -> float:
        f = features(text, turns)
        return sum(_WEIGHTS[k] * v for k, v in f.items())


def quantile_threshold(scores: Iterable[float], slow_share: float) -> float:
    """The threshold sending ``slow_share`` of ``scores`` to the slow tier (score >= t)."""
    ordered = sorted(scores)
    if not ordered:
        return 0.5
    if slow_share <= 0:
        return math.nextafter(ordered[-1], math.inf)
    index = min(len(ordered) - 1, max(0, math.ceil(len(ordered) * (1 - slow_share))))
    return ordered[index]


class ThresholdCalibrator:
    """Holds the threshold; with a target share it follows a window of live scores."""

    def __init__(self, *, fixed: float | None, target_share: float | None,
                 seed_scores: Iterable[float] = (), window: int = 2000,
                 every: int = 200) -> None:
        self._fixed = fixed
        self._target = target_share
        self._window: deque[float] = deque(seed_scores, maxlen=window)
        self._every = every
        self._since = 0
        self.threshold = fixed if fixed is not None else self._recompute()

    def _recompute(self) -> float:
        assert self._target is not None
        return quantile_threshold(self._window, self._target)

    def observe(self, score: float) -> None:
        if self._fixed is not None:
            return
        self._window.append(score)
        self._since += 1
        if self._since >= self._every:
            self._since = 0
            self.threshold = self._recompute()

    def share_above(self, scores: Iterable[float]) -> float:
        ordered = sorted(scores)
        if not ordered:
            return 0.0
        return 1 - bisect.bisect_left(ordered, self.threshold) / len(ordered)
