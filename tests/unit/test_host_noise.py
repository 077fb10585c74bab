"""Host noise: a mean-one slowdown shared by a host's engines, correlated in time, fitted
from calibration requests, and what it does to the simulator's tails."""

from __future__ import annotations

import dataclasses
import math
import random
import statistics

import pytest

from tierserve.autoscaler.policy import FixedPolicy
from tierserve.autoscaler.sim.engine import SimSettings, Simulation
from tierserve.autoscaler.sim.results import percentile
from tierserve.autoscaler.sim.trace import poisson_bursts
from tierserve.autoscaler.types import Limits, Slo
from tierserve.core.capacity import capacity_from_profile
from tierserve.core.latency import HostNoise
from tierserve.core.profiles import get_profile
from tierserve.dev.replay.calibrate import Observation, fit_noise

QUIET = dataclasses.replace(get_profile("smollm2-135m-cpu1"), neighbour_busy_slowdown=0.0)
SLO = Slo(ttft_p95_ms=2500, tpot_p95_ms=40)


def _path(noise: HostNoise, dt: float, n: int) -> list[float]:
    return [math.log(noise.factor(i * dt)) for i in range(n)]


def _corr(xs: list[float], lag: int) -> float:
    return statistics.correlation(xs[:-lag], xs[lag:])


def test_no_noise_is_exactly_one() -> None:
    noise = HostNoise(0.0, 5.0, random.Random(1))
    assert {noise.factor(t / 10) for t in range(100)} == {1.0}


def test_the_factor_has_mean_one_and_the_fitted_spread() -> None:
    factors = [HostNoise(0.4, 0.0, random.Random(3)).factor(0.0)]
    noise = HostNoise(0.4, 0.0, random.Random(4))
    factors += [noise.factor(t * 0.01) for t in range(40_000)]
    assert statistics.fmean(factors) == pytest.approx(1.0, abs=0.02)
    assert statistics.pstdev(math.log(f) for f in factors) == pytest.approx(0.4, rel=0.03)


def test_slowdowns_last_about_tau() -> None:
    xs = _path(HostNoise(0.3, 10.0, random.Random(5)), dt=0.5, n=40_000)
    assert _corr(xs, 2) == pytest.approx(math.exp(-1.0 / 10.0), abs=0.03)  # 1 s apart
    assert _corr(xs, 40) == pytest.approx(math.exp(-2.0), abs=0.05)  # 20 s apart
    independent = _path(HostNoise(0.3, 0.0, random.Random(5)), dt=0.5, n=20_000)
    assert abs(_corr(independent, 1)) < 0.03


def test_bad_parameters_are_refused_with_the_values() -> None:
    with pytest.raises(ValueError, match=r"-0\.1"):
        HostNoise(-0.1, 1.0, random.Random(0))


def _tpots(sigma: float, seed: int) -> list[float]:
    profile = dataclasses.replace(QUIET, noise_sigma=sigma, noise_tau_s=5.0)
    trace = poisson_bursts(rate=0.5, duration_s=600, bursts=[], seed=2, prompt_mean=64,
                           output_mean=24)
    cap = capacity_from_profile(profile, SLO.tpot_p95_ms, prompt_tokens=64, output_tokens=24)
    lim = Limits(min_replicas=2, max_replicas=2, cold_start_s=10)
    settings = SimSettings(slo=SLO, limits=lim, capacity=cap, initial_replicas=2,
                           noise_seed=seed)
    return Simulation(trace, profile, settings, FixedPolicy(replicas=2)).run().tpot_s()


def test_a_noisy_host_gives_the_simulator_a_tpot_tail_reproducibly() -> None:
    quiet = _tpots(0.0, 0)
    assert percentile(quiet, 95) == pytest.approx(percentile(quiet, 50))
    noisy = _tpots(0.35, 0)
    assert percentile(noisy, 95) > 1.4 * percentile(noisy, 50)
    assert _tpots(0.35, 0) == noisy
    assert _tpots(0.35, 1) != noisy


def test_fit_noise_recovers_the_host_noise_of_requests() -> None:
    truth = HostNoise(0.3, 15.0, random.Random(8))
    model_itl = QUIET.step_ms(1, 0)
    observed = [Observation(t * 2.0, 64, model_itl * truth.factor(t * 2.0))
                for t in range(600)]
    fitted = fit_noise(observed, QUIET)
    assert fitted.noise_sigma == pytest.approx(0.3, rel=0.2)
    assert fitted.noise_tau_s == pytest.approx(15.0, rel=0.4)
    assert (fitted.prefill_ms_per_token, fitted.step_ms_per_seq) == (
        QUIET.prefill_ms_per_token, QUIET.step_ms_per_seq)
