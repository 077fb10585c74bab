"""Busy-neighbour interference: a step is slower while another replica on the host is
busy; the simulator applies it, and the open-loop calibration fits it."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest

from tierserve.autoscaler.policy import FixedPolicy
from tierserve.autoscaler.sim.engine import SimSettings, Simulation
from tierserve.autoscaler.sim.results import SimResult
from tierserve.autoscaler.sim.trace import TraceRequest
from tierserve.autoscaler.types import Limits, Slo
from tierserve.core.capacity import capacity_from_profile
from tierserve.core.latency import EngineCore, SeqRequest
from tierserve.core.profiles import PROFILES, get_profile
from tierserve.dev.replay.client import Outcome
from tierserve.dev.replay.interference import (
    OpenLoop,
    Timed,
    fit_interference,
    overlap_shares,
    timed,
)

CPU = dataclasses.replace(get_profile("smollm2-135m-cpu1"), noise_sigma=0.0,
                          neighbour_busy_slowdown=0.0)
SLO = Slo(ttft_p95_ms=2500, tpot_p95_ms=40)


def _run(slowdown: float, trace: tuple[TraceRequest, ...]) -> SimResult:
    profile = dataclasses.replace(CPU, neighbour_busy_slowdown=slowdown)
    cap = capacity_from_profile(profile, SLO.tpot_p95_ms, prompt_tokens=64, output_tokens=24)
    lim = Limits(min_replicas=2, max_replicas=2, cold_start_s=10)
    settings = SimSettings(slo=SLO, limits=lim, capacity=cap, initial_replicas=2)
    return Simulation(trace, profile, settings, FixedPolicy(replicas=2)).run()


def test_factor_is_the_share_of_busy_neighbours() -> None:
    p = dataclasses.replace(CPU, neighbour_busy_slowdown=0.6)
    assert p.neighbour_factor(1, 1) == pytest.approx(1.6)
    assert p.neighbour_factor(3, 1) == pytest.approx(1.2)
    assert p.neighbour_factor(3, 0) == 1.0
    assert p.neighbour_factor(0, 0) == 1.0  # alone on the host
    with pytest.raises(ValueError, match="3 busy and 0 starting neighbours out of 2"):
        p.neighbour_factor(2, 3)
    with pytest.raises(ValueError, match="1 busy and 2 starting neighbours out of 2"):
        p.neighbour_factor(2, 1, 2)


def test_a_starting_neighbour_slows_by_its_own_term_when_measured() -> None:
    busy_only = dataclasses.replace(CPU, neighbour_busy_slowdown=0.2)
    assert busy_only.neighbour_factor(1, 0, 1) == pytest.approx(1.2)  # unmeasured: as busy
    measured = dataclasses.replace(busy_only, neighbour_starting_slowdown=0.5)
    assert measured.neighbour_factor(1, 0, 1) == pytest.approx(1.5)
    assert measured.neighbour_factor(2, 1, 1) == pytest.approx(1.35)
    assert measured.neighbour_factor(2, 1, 0) == pytest.approx(1.1)
    # no interference on the host (an accelerator): a starting replica costs nothing
    assert dataclasses.replace(CPU, neighbour_starting_slowdown=0.5).neighbour_factor(
        1, 0, 1) == 1.0


def test_only_measured_cpu_profiles_have_interference() -> None:
    assert {n for n, p in PROFILES.items() if p.neighbour_busy_slowdown} <= {
        "smollm2-135m-cpu1"}


def test_a_step_reports_its_prefill_tokens() -> None:
    core = EngineCore(CPU)
    core.submit(SeqRequest("a", 40, 3))
    assert core.step().prefill_tokens == 40
    assert core.step().prefill_tokens == 0


# A decodes 41 tokens from t=0; B's 200-token prompt arrives at 0.1 s on the other
# replica and keeps it busy past A's end: A's steps from then on take 1.5x as long, and
# so does B's prefill, which starts beside a busy A.
DECODER = TraceRequest(0.0, 1, 42)
PREFILLER = TraceRequest(0.1, 200, 2)


def test_a_busy_neighbour_slows_every_step_by_the_slowdown() -> None:
    quiet, slowed = _run(0.0, (DECODER, PREFILLER)), _run(0.5, (DECODER, PREFILLER))
    step = CPU.step_ms(1, 0) / 1000
    assert quiet.finish_s[0] < slowed.first_token_s[1]  # B is busy for all of A's rest
    expected = 0.1 + (quiet.finish_s[0] - 0.1) * 1.5
    assert slowed.finish_s[0] == pytest.approx(expected, abs=1.5 * step)
    assert slowed.first_token_s[1] == pytest.approx(0.1 + 1.5 * CPU.step_ms(1, 200) / 1000,
                                                    abs=1.5 * step)


def test_no_busy_neighbour_no_slowdown() -> None:
    alone = (DECODER,)
    assert _run(0.5, alone).finish_s == _run(0.0, alone).finish_s
    apart = (DECODER, TraceRequest(5.0, 1, 42))  # the second starts after the first ends
    assert _run(0.5, apart).finish_s == _run(0.0, apart).finish_s


def _scaling_up(slowdown: float, starting: float | None = None) -> SimResult:
    """One replica decoding A while the policy adds a second at 0.2 s that is still
    starting when A ends (a cold start of 100 s)."""
    profile = dataclasses.replace(CPU, neighbour_busy_slowdown=slowdown,
                                  neighbour_starting_slowdown=starting)
    cap = capacity_from_profile(profile, SLO.tpot_p95_ms, prompt_tokens=64, output_tokens=24)
    lim = Limits(min_replicas=1, max_replicas=2, cold_start_s=100)
    settings = SimSettings(slo=SLO, limits=lim, capacity=cap, initial_replicas=1,
                           interval_s=0.2, sample_s=0.2)
    return Simulation((DECODER,), profile, settings, FixedPolicy(replicas=2)).run()


def test_a_starting_replica_loads_the_host_like_a_busy_neighbour() -> None:
    quiet, loaded = _scaling_up(0.0), _scaling_up(0.5)
    step = CPU.step_ms(1, 0) / 1000
    assert quiet.changes and quiet.changes[0][0] == pytest.approx(0.2)
    expected = 0.2 + (quiet.finish_s[0] - 0.2) * 1.5
    assert loaded.finish_s[0] == pytest.approx(expected, abs=1.5 * step)
    measured = _scaling_up(0.5, starting=0.25)  # the start phase's own term wins
    expected = 0.2 + (quiet.finish_s[0] - 0.2) * 1.25
    assert measured.finish_s[0] == pytest.approx(expected, abs=1.5 * step)


def _synthetic(step: float, slowdown: float, sigma: float, n: int) -> list[Timed]:
    """Requests on two replicas, each decoding while the other is busy for a random
    share of it (a neighbour sent at the decode's start whose one-token decode ends at
    that share, its own decode wholly beside the busy first one)."""
    rnd = random.Random(4)

    def noisy(ms: float) -> float:
        return ms * math.exp(rnd.gauss(0, sigma) - sigma**2 / 2) / 1000

    out, t = [], 0.0
    for _ in range(n):
        prompt, output = rnd.randint(16, 160), rnd.randint(16, 48)
        share = rnd.choice((0.0, 0.0, rnd.random()))
        first = t + 0.5
        decode = (output - 1) * noisy(step * (1 + slowdown * share))
        out.append(Timed(t, first, first + decode, prompt, output))
        if share:
            end = first + share * decode
            own = noisy(step * (1 + slowdown))
            # a 2048-token prompt: its estimated prefill reaches back past its sending
            out.append(Timed(first, end - own, end, 2048, 2))
        t += 20.0
    return out


def test_fit_recovers_alone_step_prefill_and_slowdown() -> None:
    closed = dataclasses.replace(CPU, noise_sigma=0.11)
    requests = _synthetic(step=28.0, slowdown=0.5, sigma=0.08, n=300)
    fit = fit_interference(requests, closed, replicas=2)
    assert fit.profile.step_ms_per_seq == pytest.approx(28.0, rel=0.03)
    assert fit.profile.neighbour_busy_slowdown == pytest.approx(0.5, rel=0.15)
    # the closed loop measured prefill beside a busy neighbour: alone it is that / 1.5
    assert fit.profile.prefill_ms_per_token == pytest.approx(
        CPU.prefill_ms_per_token / (1 + fit.profile.neighbour_busy_slowdown), rel=2e-3)
    assert fit.profile.noise_sigma == 0.11  # the closed loop's, not refitted
    assert 0 < fit.mean_share < 1 and fit.quiet > 100


def test_no_slowdown_in_the_data_keeps_the_closed_loop_fit() -> None:
    requests = _synthetic(step=60.0, slowdown=0.0, sigma=0.3, n=300)
    fit = fit_interference(requests, CPU, replicas=2)
    assert fit.profile.neighbour_busy_slowdown == 0.0
    assert fit.profile == CPU


def test_overlap_counts_the_other_requests_whole_busy_span() -> None:
    pre = CPU.step_ms(1, 50) / 1000
    a = Timed(0.0, 1.0, 3.0, 10, 21)  # decodes over [1, 3]
    b = Timed(0.5, 2.0 + pre, 2.5 + pre, 50, 2)  # busy over [2, 2.5 + pre], sent earlier
    shares = overlap_shares([a, b], CPU, replicas=2)
    assert shares[0] == pytest.approx((min(3.0, 2.5 + pre) - 2.0) / 2.0)


def test_fit_refuses_too_few_or_uniform_requests() -> None:
    flat = [Timed(10.0 * i, 10.0 * i + 0.5, 10.0 * i + 1.5, 32, 33) for i in range(20)]
    with pytest.raises(ValueError, match="overlap varies"):
        fit_interference(flat, CPU, replicas=2)


def test_open_loop_is_seeded_at_the_asked_utilisation() -> None:
    loop = OpenLoop(utilisation=0.6, duration_s=4000, seed=3)
    rate = loop.rate(CPU, replicas=2)
    trace = loop.trace(rate)
    assert trace == loop.trace(rate) and trace != OpenLoop(0.6, 4000, 4).trace(rate)
    busy = sum(CPU.step_ms(1, r.prompt_tokens) + (r.output_tokens - 1) * CPU.step_ms(1, 0)
               for r in trace) / 1000
    assert busy / (2 * 4000) == pytest.approx(0.6, rel=0.05)
    assert {16, 160} <= {r.prompt_tokens for r in trace}
    with pytest.raises(ValueError, match=r"1\.5"):
        OpenLoop(utilisation=1.5)
    with pytest.raises(ValueError, match=r"outputs 1\.\.4"):
        OpenLoop(outputs=(1, 4))


def test_timed_keeps_complete_requests() -> None:
    trace = [TraceRequest(0.0, 8, 4), TraceRequest(1.0, 8, 4), TraceRequest(2.0, 8, 4)]
    outcomes = [Outcome(0.0, 0.5, 0.8, 4), Outcome(1.0, math.nan, math.nan, 0, "503"),
                Outcome(2.0, 2.5, 2.6, 3)]
    assert timed(trace, outcomes) == [Timed(0.0, 0.5, 0.8, 8, 4)]
