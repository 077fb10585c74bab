"""Value types shared by the policies, the simulator and the live controller.

Everything a policy sees is here, as plain immutable values, so a policy is a pure
function ``PolicyContext -> Decision`` and the simulator and the controller build the
same context from different sources. Configuration (SLOs, limits, and the replica
capacity from :mod:`tierserve.core.capacity`) is pydantic so a bad value is reported
with the value; the per-sample metrics are slotted dataclasses because the simulator
builds thousands of them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tierserve.core.capacity import ReplicaCapacity
from tierserve.core.vllm_names import GENERATION_TOKENS_BUCKETS

# vLLM's histogram buckets (seconds), so simulated and scraped histograms line up.
TTFT_BUCKETS_S: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
    2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
TPOT_BUCKETS_S: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip
GEN_TOKEN_BUCKETS = GENERATION_TOKENS_BUCKETS  # answers, as the engines bucket them


class _Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Slo(_Config):
    """Latency objectives of one deployment (mirrors ``LLMDeployment.spec.slo``)."""

    ttft_p95_ms: float = Field(gt=0, le=600_000)
    tpot_p95_ms: float = Field(gt=0, le=10_000)
    target_attainment: float = Field(default=0.99, ge=0.5, le=1.0)


class Limits(_Config):
    """Bounds and timing rules the controller must honour whatever the policy says."""

    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=16, ge=1)
    cold_start_s: float = Field(default=60.0, ge=0)
    scale_up_stabilization_s: float = Field(default=0.0, ge=0)
    scale_down_stabilization_s: float = Field(default=300.0, ge=0)
    scale_to_zero_after_s: float | None = Field(default=None, ge=0)
    stale_after_s: float = Field(default=60.0, gt=0, description="newest sample older: hold")

    @model_validator(mode="after")
    def _check(self) -> Limits:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) exceeds max_replicas ({self.max_replicas})"
            )
        if self.scale_to_zero_after_s is not None and self.min_replicas != 0:
            raise ValueError(
                f"scale_to_zero_after_s={self.scale_to_zero_after_s} needs min_replicas=0, "
                f"got {self.min_replicas}"
            )
        return self


@dataclass(frozen=True, slots=True)
class Histogram:
    """Non-cumulative bucket counts; ``counts[i]`` counts values in (bounds[i-1], bounds[i]],
    the last count is the +Inf bucket, so ``len(counts) == len(bounds) + 1``."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.counts)

    def fraction_bounds(self, x: float) -> tuple[float, float]:
        """(surely <= x, possibly <= x): the bucket that straddles ``x`` is unknown.

        With vLLM's coarse buckets a target inside a bucket (40 ms in (25, 50] ms) makes
        the interpolated share a guess; these bounds are what the histogram proves."""
        total = self.total
        if total == 0:
            return 1.0, 1.0
        below, lo = 0, -math.inf
        for hi, count in zip(self.bounds, self.counts, strict=False):
            if x < hi:  # the bucket (lo, hi] holds x, unless x sits on its lower bound
                return below / total, (below + (count if x > lo else 0)) / total
            below += count
            lo = hi
        # past the last bound: the +Inf bucket is unknown, unless x sits on that bound
        return below / total, 1.0 if x > lo else below / total

    def fraction_le(self, x: float) -> float:
        """Share of observations <= x, interpolating linearly inside the bucket."""
        total = self.total
        if total == 0:
            return 1.0
        below, lo = 0.0, 0.0
        for hi, count in zip(self.bounds, self.counts, strict=False):
            if x < hi:
                return (below + count * max(0.0, x - lo) / (hi - lo)) / total
            below += count
            lo = hi
        return below / total

    def quantile(self, q: float) -> float:
        """Prometheus-style ``histogram_quantile`` (linear inside the bucket)."""
        total = self.total
        if total == 0:
            return math.nan
        rank, seen, lo = q * total, 0, 0.0
        for hi, count in zip(self.bounds, self.counts, strict=False):
            if count and seen + count >= rank:
                return lo + (hi - lo) * (rank - seen) / count
            seen += count
            lo = hi
        return self.bounds[-1]


def merge_histograms(hists: Sequence[Histogram]) -> Histogram | None:
    if not hists:
        return None
    counts = [0] * len(hists[0].counts)
    for h in hists:
        for i, c in enumerate(h.counts):
            counts[i] += c
    return Histogram(hists[0].bounds, tuple(counts))


@dataclass(frozen=True, slots=True)
class ReplicaSample:
    running: int
    waiting: int
    kv_usage: float


@dataclass(frozen=True, slots=True)
class MetricSample:
    """One scrape of a deployment. Rates are over the interval since the previous sample;
    histograms are deltas over that interval (``None`` when the source has none)."""

    t: float
    replicas: tuple[ReplicaSample, ...]
    arrival_rate: float
    prompt_token_rate: float
    gen_token_rate: float
    ttft: Histogram | None = None
    tpot: Histogram | None = None
    held: int = 0  # requests the router holds (no replica ready) or queues (its gate)
    # completions and their output tokens (vLLM: request_generation_tokens count/sum)
    finish_rate: float = 0.0
    finished_tokens_rate: float = 0.0
    # output tokens of the requests that finished (vLLM: request_generation_tokens
    # buckets; None when the source has none)
    gen_tokens: Histogram | None = None

    @property
    def running(self) -> int:
        return sum(r.running for r in self.replicas)

    @property
    def waiting(self) -> int:
        return sum(r.waiting for r in self.replicas) + self.held


@dataclass(frozen=True, slots=True)
class MetricsWindow:
    """Samples in time order (oldest first)."""

    samples: tuple[MetricSample, ...]

    def since(self, t: float) -> tuple[MetricSample, ...]:
        return tuple(s for s in self.samples if s.t > t)


@dataclass(frozen=True, slots=True)
class ScalerState:
    """What the controller remembers between decisions; policies return a new one."""

    current_replicas: int
    ready_replicas: int
    last_scale_up_at: float | None = None
    last_scale_down_at: float | None = None
    idle_since: float | None = None
    # (time, raw recommendation) history, for HPA/KPA-style stabilization windows
    history: tuple[tuple[float, int], ...] = ()
    # policy-private scalars (feedback gain, panic-mode deadline, ...)
    memo: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PolicyContext:
    window: MetricsWindow
    slo: Slo
    capacity: ReplicaCapacity
    limits: Limits
    state: ScalerState
    now: float


@dataclass(frozen=True, slots=True)
class Decision:
    desired_replicas: int
    reason: str
    state: ScalerState
    predicted_attainment: float | None = None
    # what the policy computed its count from, in base units (names: tierserve.autoscaler.
    # metrics.INPUTS, one gauge each); a value it did not know is left out, never a sentinel
    inputs: Mapping[str, float] = field(default_factory=dict)
    held: bool = False  # True when the policy refused to act (stale or missing metrics)
    # why, as one of a small fixed set (a metrics label; ``reason`` is the sentence):
    # common.HOLD_CAUSES when held, else e.g. demand, stabilization, max_replicas
    cause: str = "policy"
    # the policy's count before the bounds: above limits.max_replicas, the SLO is not
    # attainable within them (None: the policy did not get that far, e.g. a hold)
    needed_replicas: int | None = None
