"""TPOT misses from prefill interference, and the replica count that keeps them in budget.

A batching engine with chunked prefill (vLLM, the simulator's engine) runs other
requests' prompt chunks in the same steps as a running answer's decode, so every prompt
token prefilled while an answer decodes adds ``prefill_ms_per_token`` to that answer's
time. An answer of ``m`` tokens misses a TPOT target ``T`` when the prompt tokens
prefilled on its replica during its ``m - 1`` decode steps exceed its slack
``theta(m) = (T - step) * (m - 1) / prefill_ms_per_token``.

That is a collision, not a mean: one long prompt arriving on a replica while a short
answer decodes there is a miss whatever the average load. With load-aware routing (the
router's least-loaded pick, the simulator's least-outstanding dispatch) a new request
only joins a replica already serving when every replica is, so collisions are set by
the chance that all ``n`` replicas are occupied, which falls steeply with ``n``.

Model (:func:`tpot_miss_share`), for ``rate`` requests a second over ``n`` replicas:

* requests in service are those of an infinite-server queue (M/G/inf): Poisson with
  mean ``rate * service`` (a mean prompt's prefill plus a mean answer's decode); an
  answer's replica takes a new request only when the other requests fill the other
  ``n - 1`` replicas, and then with chance ``1/n``;
* an answer of ``m`` tokens is exposed for its decode stretched by the replica's prefill
  share ``u`` (``(m - 1) * step / (1 - u)``), plus ``IN_PROGRESS_PREFILL`` mean prompts'
  prefill already under way when it starts (0: fitted, see the constant);
* answer lengths are the observed distribution when the caller has one (equal-mass
  quantiles of vLLM's ``request_generation_tokens`` histogram, ``answer_quantiles``),
  else exponential with the mean (what a mean alone implies; it puts 4% of answers
  under 10 tokens where chat traffic has almost none, and those short answers are the
  ones a prefill breaks, so the shape matters);
* prompt lengths are exponential with the window's mean, so the exposed prompt tokens
  are a compound Poisson sum of exponentials, whose tail is exact (a Poisson mixture
  of Erlang tails).

The module is pure: no clock, no I/O. ``tests/unit/test_tpot_tail.py`` checks it
against a Monte Carlo of the same model and its monotonicity.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

OUTPUT_QUANTILES = 24  # answer lengths integrated over this many equal-mass quantiles
NORMAL_ABOVE = 60.0  # exposed arrivals above which the sum's tail is taken as normal
MAX_PREFILL_SHARE = 0.95  # a replica prefilling more than this is saturated anyway
# Mean prompts' prefill counted as already under way beside an answer when it starts.
# Little's law with memoryless prompts says 1; measured per minute against the oracle
# (``python -m tierserve.dev.tail_check``), 1 puts the floor at 1.20x / 1.67x / 1.91x
# the oracle's replica-minutes on prefill-heavy / flash-crowd / diurnal traffic and 0 at
# 1.04x / 1.04x / 1.17x. A likely reason: a prompt that arrives while the answer's own
# prompt prefills shares those chunked steps and is done before the answer's first
# token, so little of it overlaps the decode. Fitted, not derived (docs/autoscaler.md).
IN_PROGRESS_PREFILL = 0.0


@dataclass(frozen=True)
class PrefillMix:
    """What the tail depends on: the request mix and one replica's step costs."""

    prompt_tokens: float  # mean prompt tokens per request
    output_tokens: float  # mean output tokens per request
    step_ms: float  # a decode step beside no prefill
    prefill_ms_per_token: float
    tpot_ms: float  # the TPOT target
    # answer lengths at OUTPUT_QUANTILES equal-mass quantile midpoints (observed); None:
    # exponential with ``output_tokens`` as mean
    answer_quantiles: tuple[float, ...] | None = None

    def answers(self) -> tuple[float, ...]:
        """Answer lengths at equal-mass quantile midpoints, observed or exponential."""
        if self.answer_quantiles:
            return self.answer_quantiles
        excess = max(0.0, self.output_tokens - 1)
        return tuple(1 + excess * -math.log1p(-(i + 0.5) / OUTPUT_QUANTILES)
                     for i in range(OUTPUT_QUANTILES))

    def slack_tokens(self, m: float) -> float:
        """Prompt tokens an answer of ``m`` tokens can decode beside and still meet TPOT."""
        return (self.tpot_ms - self.step_ms) * (m - 1) / self.prefill_ms_per_token


def _compound_tail(arrivals: float, theta: float) -> float:
    """P(sum of Poisson(``arrivals``) unit exponentials > ``theta``): the Poisson mixture
    of Erlang tails, ``P(Erlang(k) > theta) = P(Poisson(theta) < k)``, both built up
    term by term."""
    if arrivals <= 0:
        return 0.0
    if arrivals > NORMAL_ABOVE:  # mean a, variance 2a for unit exponential marks
        return 0.5 * math.erfc((theta - arrivals) / math.sqrt(4 * arrivals))
    k_max = int(arrivals + 10 * math.sqrt(arrivals) + 12)
    pois, erlang_term, erlang_tail, total = math.exp(-arrivals), math.exp(-theta), 0.0, 0.0
    for k in range(1, k_max + 1):
        pois *= arrivals / k
        erlang_tail += erlang_term  # now P(Poisson(theta) <= k - 1)
        erlang_term *= theta / k
        total += pois * min(1.0, erlang_tail)
    return min(1.0, total)


def _poisson_at_least(mean: float, k: int) -> float:
    """P(Poisson(``mean``) >= ``k``)."""
    if k <= 0:
        return 1.0
    if mean > NORMAL_ABOVE:  # continuity-corrected normal
        return 0.5 * math.erfc((k - 0.5 - mean) / math.sqrt(2 * mean))
    term, below = math.exp(-mean), 0.0
    for j in range(k):
        if j:
            term *= mean / j
        below += term
    return max(0.0, 1.0 - below)


def tpot_miss_share(rate: float, replicas: int, mix: PrefillMix) -> float:
    """Expected share of requests missing TPOT when ``replicas`` share ``rate`` requests
    a second (module docstring); 1 when even a lone decode step misses."""
    if mix.step_ms >= mix.tpot_ms:
        return 1.0
    if rate <= 0 or mix.prompt_tokens <= 0 or replicas <= 0:
        return 0.0
    prefill_ms = mix.prompt_tokens * mix.prefill_ms_per_token
    service_s = (prefill_ms + max(0.0, mix.output_tokens - 1) * mix.step_ms) / 1000
    # new requests an answer's replica receives while it decodes: only when the others
    # in service fill the other replicas, and then one in ``replicas``
    joins = rate * _poisson_at_least(rate * service_s, replicas - 1) / replicas
    u = min(MAX_PREFILL_SHARE, rate / replicas * prefill_ms / 1000)
    answers = mix.answers()
    total = 0.0
    for m in answers:
        if m < 2:
            continue  # one token has no TPOT
        exposed_s = ((m - 1) * mix.step_ms / (1 - u)
                     + IN_PROGRESS_PREFILL * prefill_ms) / 1000
        total += _compound_tail(joins * exposed_s, mix.slack_tokens(m) / mix.prompt_tokens)
    return total / len(answers)


def quantile_midpoints(quantile: Callable[[float], float]) -> tuple[float, ...]:
    """A distribution's ``OUTPUT_QUANTILES`` equal-mass quantile midpoints (the points
    :attr:`PrefillMix.answer_quantiles` takes), from its quantile function."""
    return tuple(quantile((i + 0.5) / OUTPUT_QUANTILES) for i in range(OUTPUT_QUANTILES))


def replicas_for_tpot_tail(rate: float, mix: PrefillMix, budget: float, cap: int) -> int:
    """Fewest replicas (at most ``cap``) sharing ``rate`` requests/s whose expected TPOT
    miss share is at most ``budget``; ``cap`` when none up to it is (the caller then
    knows the tail alone needs more than it may run); 0 without traffic."""
    if rate <= 0:
        return 0
    if tpot_miss_share(rate, 1, mix) <= budget:
        return 1
    if tpot_miss_share(rate, cap, mix) > budget:
        return cap
    lo, hi = 1, cap  # miss(lo) > budget >= miss(hi); the share falls as replicas are added
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if tpot_miss_share(rate, mid, mix) <= budget:
            hi = mid
        else:
            lo = mid
    return hi
