"""The simulator's metric samples count what the engines' counters count: a prompt's
tokens once it is prefilled (vLLM's ``vllm:prompt_tokens_total``, and the llama.cpp
engine's), not when the request arrives."""

from __future__ import annotations

import dataclasses

from tierserve.autoscaler.policy import FixedPolicy
from tierserve.autoscaler.sim.engine import SimSettings, Simulation
from tierserve.autoscaler.sim.trace import TraceRequest
from tierserve.autoscaler.types import Limits, Slo
from tierserve.core.capacity import capacity_from_profile
from tierserve.core.profiles import get_profile

# one sequence at a time, 10 ms a prompt token, no host noise: a 150-token prompt takes
# 1.5 s to prefill, so the second request's prompt is prefilled only after 2 s
CPU = dataclasses.replace(get_profile("smollm2-135m-cpu1"), noise_sigma=0.0,
                          neighbour_busy_slowdown=0.0, prefill_ms_per_token=10.0)
SLO = Slo(ttft_p95_ms=2500, tpot_p95_ms=40)


def test_a_prompt_counts_in_the_sample_where_it_is_prefilled() -> None:
    trace = (TraceRequest(0.0, 150, 2), TraceRequest(0.1, 150, 2), TraceRequest(5.0, 10, 2))
    cap = capacity_from_profile(CPU, SLO.tpot_p95_ms, prompt_tokens=150, output_tokens=2)
    settings = SimSettings(slo=SLO, limits=Limits(min_replicas=1, max_replicas=1),
                           capacity=cap, initial_replicas=1)
    sim = Simulation(trace, CPU, settings, FixedPolicy(replicas=1))
    result = sim.run()
    assert 2.0 < result.first_token_s[1] < 4.0
    first, second = list(sim.window)[:2]
    assert first.arrival_rate * settings.sample_s == 2  # both arrived in the first 2 s
    assert first.prompt_token_rate * settings.sample_s == 150  # one prompt prefilled
    assert second.prompt_token_rate * settings.sample_s == 150
