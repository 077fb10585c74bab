"""The host-speed probe: measured over modelled, and the profile scaled to it."""

from __future__ import annotations

import dataclasses

import pytest

from tierserve.core.profiles import BenchmarkPoint, get_profile
from tierserve.dev.replay.probe import HostSpeed

CPU = get_profile("smollm2-135m-cpu1")


def test_speed_is_measured_over_modelled_and_scales_prefill_and_step_apart() -> None:
    ttft, itl = CPU.step_ms(1, 64) * 1.1, CPU.step_ms(1, 0) * 0.9
    speed = HostSpeed.of(BenchmarkPoint(1, 64, 32, itl_ms=itl, ttft_ms=ttft), CPU)
    assert speed.prefill == pytest.approx(1.1)
    assert speed.step == pytest.approx(0.9)
    fast = speed.scaled(CPU)
    assert fast.prefill_ms_per_token == pytest.approx(CPU.prefill_ms_per_token * 1.1, abs=1e-4)
    assert fast.step_ms_per_seq == pytest.approx(CPU.step_ms_per_seq * 0.9, abs=1e-4)
    assert "probe" in fast.source
    # interference and noise are the fit's, not the probe's
    assert dataclasses.replace(fast, prefill_ms_per_token=CPU.prefill_ms_per_token,
                               step_ms_per_seq=CPU.step_ms_per_seq, source=CPU.source) == CPU


def test_a_point_without_a_ttft_is_refused() -> None:
    with pytest.raises(ValueError, match="needs a TTFT"):
        HostSpeed.of(BenchmarkPoint(1, 64, 32, itl_ms=20.0), CPU)


def test_against_a_reference_probe_the_fit_error_cancels() -> None:
    # the fit's alone step reads 10% high: both probes see it, their ratio does not
    at_fit = HostSpeed(prefill=1.0, step=0.9, ttft_ms=540.0, itl_ms=18.0)
    now = HostSpeed(prefill=1.05, step=0.99, ttft_ms=567.0, itl_ms=19.8)
    rel = now.relative_to(at_fit)
    assert (rel.prefill, rel.step) == (1.05, 1.1)
    assert (rel.ttft_ms, rel.itl_ms) == (567.0, 19.8)  # the raw figures stay this run's
