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
