"""Per-route runtime: variant choice (weighted, sticky), tier classifier and calibration."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from tierserve.core.routerconfig import RouteConfig, TierConfig, VariantConfig
from tierserve.routing.abtest import AbRecorder
from tierserve.routing.plugins.base import TierClassifier
from tierserve.routing.plugins.classifier import ThresholdCalibrator
from tierserve.routing.plugins.hashing import weighted_choice
from tierserve.routing.tiering import SlowTierSpend


@dataclass(slots=True)
class TierRuntime:
    cfg: TierConfig
    classifier: TierClassifier
    calibrator: ThresholdCalibrator
    slow_spend: SlowTierSpend = field(default_factory=SlowTierSpend)


@dataclass(slots=True)
class VariantRuntime:
    cfg: VariantConfig
    tiers: TierRuntime | None

    @property
    def name(self) -> str:
        return self.cfg.name


class RouteRuntime:
    """A route's variants; the A/B recorder is handed over across reloads."""

    def __init__(self, cfg: RouteConfig, variants: list[VariantRuntime], ab: AbRecorder,
                 rng: random.Random) -> None:
        self.cfg = cfg
        self.model = cfg.model
        self.variants = variants
        self.ab = ab
        self._names = [v.name for v in variants]
        self._weights = [v.cfg.weight for v in variants]
        self._cumulative = _cumulative(self._weights)
        self._rng = rng

    def choose(self, sticky_key: str | None) -> VariantRuntime:
        if len(self.variants) == 1:
            return self.variants[0]
        if sticky_key is not None:
            return self.variants[weighted_choice(sticky_key, self._names, self._weights)]
        x = self._rng.random() * self._cumulative[-1]
        for variant, edge in zip(self.variants, self._cumulative, strict=True):
            if x < edge:
                return variant
        return self.variants[-1]


def _cumulative(weights: list[float]) -> list[float]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return out
