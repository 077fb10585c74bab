"""Endpoint filters, scorers and pickers, and the scheduler that composes them."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from tierserve.routing.plugins.base import (
    E,
    EndpointFilter,
    EndpointView,
    Picker,
    RequestInfo,
    Scorer,
)
from tierserve.routing.plugins.hashing import highest_random


class AvailableFilter:
    """Ready, not ejected, not already tried for this request.

    When every ready endpoint is ejected we ignore ejection (Envoy's "panic" mode): a
    possibly-bad endpoint beats a certain 503.
    """

    async def filter(self, info: RequestInfo, endpoints: Sequence[E]) -> Sequence[E]:
        now, exclude = info.now, info.exclude
        ready = [e for e in endpoints if e.ready and e.url not in exclude]
        healthy = [e for e in ready if e.ejected_until <= now]
        return healthy or ready


class AffinityFilter:
    """Session affinity: a key narrows the candidates to its rendezvous endpoint."""

    async def filter(self, info: RequestInfo, endpoints: Sequence[E]) -> Sequence[E]:
        if info.affinity_key is None or len(endpoints) <= 1:
            return endpoints
        return [endpoints[highest_random(info.affinity_key, [e.url for e in endpoints])]]


class OutstandingScorer:
    """Fewer requests in flight from this router is better."""

    async def score(self, info: RequestInfo, endpoints: Sequence[EndpointView]) -> list[float]:
        return [1.0 / (1.0 + e.outstanding) for e in endpoints]


class QueueScorer:
    """Engine-reported load (vLLM ``num_requests_waiting``/``running``) is better low.

    Waiting requests weigh four times running ones: a queue means the batch is full.
    """

    async def score(self, info: RequestInfo, endpoints: Sequence[EndpointView]) -> list[float]:
        return [1.0 / (1.0 + e.waiting + 0.25 * e.running) for e in endpoints]


class MaxScorePicker:
    """Highest combined score, ties broken at random (least outstanding with the
    default scorers); random tie-breaking avoids piling onto the first endpoint."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    async def pick(self, info: RequestInfo, endpoints: Sequence[E], scores: Sequence[float]) -> E:
        top = max(scores)
        best = [i for i, s in enumerate(scores) if s >= top - 1e-12]
        return endpoints[best[0] if len(best) == 1 else self._rng.choice(best)]


class PowerOfTwoPicker:
    """Power of two choices: sample two, keep the better; robust to stale load data."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    async def pick(self, info: RequestInfo, endpoints: Sequence[E], scores: Sequence[float]) -> E:
        if len(endpoints) == 1:
            return endpoints[0]
        i, j = self._rng.sample(range(len(endpoints)), 2)
        return endpoints[i if scores[i] >= scores[j] else j]


class Scheduler:
    """Filters, then weighted scorers, then a picker."""

    def __init__(self, filters: Sequence[EndpointFilter],
                 scorers: Sequence[tuple[Scorer, float]], picker: Picker) -> None:
        self._filters = tuple(filters)
        self._scorers = tuple(scorers)
        self._picker = picker

    async def pick(self, info: RequestInfo, endpoints: Sequence[E]) -> E | None:
        candidates: Sequence[E] = endpoints
        for f in self._filters:
            candidates = await f.filter(info, candidates)
            if not candidates:
                return None
        if len(candidates) == 1:
            return candidates[0]
        total = [0.0] * len(candidates)
        for scorer, weight in self._scorers:
            for i, s in enumerate(await scorer.score(info, candidates)):
                total[i] += weight * s
        return await self._picker.pick(info, candidates, total)


SCORERS: Mapping[str, type[OutstandingScorer] | type[QueueScorer]] = {
    "outstanding": OutstandingScorer,
    "queue": QueueScorer,
}


def build_scheduler(picker: str, scorer_weights: Mapping[Any, float],
                    rng: random.Random) -> Scheduler:
    """Compose a scheduler by name, as the configuration names them."""
    pickers: dict[str, Picker] = {"least-outstanding": MaxScorePicker(rng),
                                  "p2c": PowerOfTwoPicker(rng)}
    scorers: list[tuple[Scorer, float]] = [
        (SCORERS[name](), weight) for name, weight in scorer_weights.items() if weight > 0]
    return Scheduler([AvailableFilter(), AffinityFilter()], scorers, pickers[picker])
