"""Size a replica from the model, the accelerator (GPUs or CPU cores) and the SLOs.

Contract: :func:`plan` is pure and either returns a :class:`SizingPlan` or raises
:class:`SizingError` whose ``reason`` becomes the ``Ready=False`` condition reason.

The model (documented in docs/sizing.md):

* Weights: parameters x bytes per parameter (quantization wins over dtype).
* KV cache per token: ``2 x layers x kv_heads x head_dim x kv_bytes``; without explicit
  architecture facts we assume grouped-query attention with 8 KV heads of dimension 128
  and ``layers ~ 16 x P^(1/3)`` (P in billions), which matches the Llama 3 family
  (8B: 32, 70B: 65 vs 80, 405B: 118 vs 126) within about 20%.
* Memory: each GPU gives ``memory x 0.90`` (vLLM's default gpu_memory_utilization) minus
  2 GB of runtime and activation overhead; what the weights leave is KV cache, which must
  hold at least one sequence of the full context length.
* Decode is memory-bandwidth bound: a step reads the weights once plus the KV cache of
  every running sequence, at 80% of peak bandwidth (or, for large batches, needs
  2 FLOPs per parameter per sequence at 50% of dense throughput, whichever is slower),
  plus a fixed 0.5 ms and a per-layer all-reduce cost under tensor parallelism.
  The largest batch whose step time stays within the TPOT SLO is the replica's batch
  (:func:`tierserve.core.capacity.batch_meeting_tpot`, the search the simulator's
  capacity uses too).
* Prefill is compute bound: ``2 x params x prompt tokens`` FLOPs at 50% of dense BF16
  throughput, plus one decode step, gives the TTFT estimate.
* CPU replicas (accelerator ``cpu``, engine ``llamacpp``) use the same model with cores
  in place of GPUs: threads split the work like tensor parallelism (no all-reduce: one
  shared memory), the catalog's per-core figures and efficiencies fitted to llama.cpp,
  and one running sequence per replica (llama-cpp-python decodes one sequence at a time;
  the engine queues the rest). The efficiencies and overheads are the accelerator's
  (:class:`~tierserve.core.catalog.Accelerator`); the GPU defaults are the figures above.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tierserve.core.api.deployment import LLMDeploymentSpec, SizingPlan
from tierserve.core.capacity import batch_meeting_tpot
from tierserve.core.catalog import Accelerator, get

GIB = 1024**3
UNIT_CHOICES = (1, 2, 4, 8)  # GPUs (tensor parallelism) or threads tried by 'auto'
MEMORY_UTILIZATION = 0.90
STEP_OVERHEAD_MS = 0.5
MAX_NUM_SEQS = 256
# Engines that run fewer sequences at once than vLLM's default max_num_seqs.
ENGINE_MAX_SEQS = {"llamacpp": 1}  # llama-cpp-python: one sequence at a time

_BYTES_BY_DTYPE = {"bfloat16": 2.0, "float16": 2.0, "float32": 4.0, "fp8": 1.0, "int8": 1.0,
                   "int4": 0.5}
# GGUF: ggml's block sizes (Q4_0: 32 weights in 18 bytes = 4.5 bits; Q4_1 5.0; Q6_K
# 6.5625; Q8_0 8.5); the _K_M mixes keep some tensors at higher precision (~4.85, ~5.7).
_BYTES_BY_QUANT = {"awq": 0.5, "gptq": 0.5, "bitsandbytes": 0.5, "fp8": 1.0,
                   "q4_0": 4.5 / 8, "q4_1": 5.0 / 8, "q4_k_m": 4.85 / 8, "q5_k_m": 5.7 / 8,
                   "q6_k": 6.5625 / 8, "q8_0": 8.5 / 8}


class SizingError(ValueError):
    """The combination cannot work; ``reason`` is a CamelCase condition reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class _Model:
    params: float
    bytes_per_param: float
    kv_bytes_per_token: int
    layers: int


def _model_facts(spec: LLMDeploymentSpec) -> _Model:
    m = spec.model
    bpp = _BYTES_BY_QUANT[m.quantization] if m.quantization else _BYTES_BY_DTYPE[m.dtype]
    kv_bytes = 1 if m.dtype == "fp8" else 2
    if m.architecture is not None:
        a = m.architecture
        layers, heads, dim = a.num_layers, a.num_kv_heads, a.head_dim
    else:
        layers, heads, dim = max(1, round(16 * m.parameters_billions ** (1 / 3))), 8, 128
    return _Model(m.parameters_billions * 1e9, bpp, 2 * layers * heads * dim * kv_bytes, layers)


def _usable_bytes(gpu: Accelerator, tp: int) -> float:
    return tp * (gpu.memory_bytes * MEMORY_UTILIZATION - gpu.runtime_overhead_gb * 1e9)


def _step_ms(model: _Model, gpu: Accelerator, tp: int, batch: int, ctx: int) -> float:
    read = model.params * model.bytes_per_param + batch * ctx * model.kv_bytes_per_token
    memory_s = read / tp / (gpu.bandwidth_gbps * 1e9 * gpu.bandwidth_efficiency)
    # Large batches (and CPUs at any batch) are compute bound: 2 FLOPs/parameter/sequence.
    compute_s = 2 * model.params * batch / (tp * gpu.bf16_tflops * 1e12
                                            * gpu.decode_compute_efficiency)
    seconds = max(memory_s, compute_s)
    comm = gpu.allreduce_ms_per_layer * model.layers if tp > 1 else 0.0
    return seconds * 1000 + STEP_OVERHEAD_MS + comm


def _units(gpu: Accelerator, tp: int) -> str:
    """``2 x H100-SXM`` or ``1 cpu thread`` for messages."""
    if gpu.is_cpu:
        return f"{tp} cpu thread{'s' if tp != 1 else ''}"
    return f"{tp} x {gpu.name}"


def _more(gpu: Accelerator) -> str:
    return "more threads per replica" if gpu.is_cpu else "more GPUs per replica (or 'auto')"


def _check_fit(spec: LLMDeploymentSpec, gpu: Accelerator, model: _Model, tp: int) -> float:
    """KV-cache bytes left after the weights; raises when one full sequence won't fit."""
    weights = model.params * model.bytes_per_param
    usable = _usable_bytes(gpu, tp)
    kv_budget = usable - weights
    need = spec.model.max_context_length * model.kv_bytes_per_token
    if kv_budget < need:
        raise SizingError(
            "InsufficientGPUMemory",
            f"{spec.model.parameters_billions:g}B parameters at "
            f"{spec.model.quantization or spec.model.dtype} need {weights / GIB:.1f} GiB of "
            f"weights plus {need / GIB:.1f} GiB of KV cache for one "
            f"{spec.model.max_context_length}-token sequence, but {_units(gpu, tp)} offer "
            f"{usable / GIB:.1f} GiB usable; use {_more(gpu)}, a "
            f"larger accelerator, quantization or a shorter maxContextLength",
        )
    return kv_budget


def _max_batch(spec: LLMDeploymentSpec, gpu: Accelerator, model: _Model, tp: int,
               kv_budget: float) -> int:
    w = spec.workload
    ctx = w.input_tokens + w.output_tokens // 2
    by_kv = int(kv_budget // ((w.input_tokens + w.output_tokens) * model.kv_bytes_per_token))
    max_seqs = ENGINE_MAX_SEQS.get(spec.engine, MAX_NUM_SEQS)
    return batch_meeting_tpot(lambda batch: _step_ms(model, gpu, tp, batch, ctx),
                              spec.slo.tpot_p95_ms, max_seqs=max_seqs, kv_seqs=by_kv)


def _plan_for(spec: LLMDeploymentSpec, gpu: Accelerator, model: _Model, tp: int) -> SizingPlan:
    kv_budget = _check_fit(spec, gpu, model, tp)
    batch = _max_batch(spec, gpu, model, tp, kv_budget)
    w = spec.workload
    one = _step_ms(model, gpu, tp, 1, w.input_tokens + w.output_tokens // 2)
    if batch < 1:
        raise SizingError(
            "SLOUnattainable",
            f"one decode step takes about {one:.1f} ms on {_units(gpu, tp)}, above the "
            f"TPOT target of {spec.slo.tpot_p95_ms} ms; relax slo.tpotP95Ms or use a "
            f"faster accelerator or {_more(gpu)}",
        )
    step = _step_ms(model, gpu, tp, batch, w.input_tokens + w.output_tokens // 2)
    prefill_s = 2 * model.params * w.input_tokens / (tp * gpu.bf16_tflops * 1e12
                                                     * gpu.prefill_efficiency)
    ttft = prefill_s * 1000 + step
    tokens_per_s = batch / (step / 1000)
    rps = batch / ((w.output_tokens * step + ttft) / 1000)
    return SizingPlan(
        gpus_per_replica=0 if gpu.is_cpu else tp,
        threads_per_replica=tp if gpu.is_cpu else None,
        weights_gib=round(model.params * model.bytes_per_param / GIB, 2),
        kv_cache_gib=round(kv_budget / GIB, 2),
        kv_bytes_per_token=model.kv_bytes_per_token,
        max_batch_per_replica=batch,
        est_tpot_ms=round(step, 2),
        est_decode_step_ms=round(one, 2),
        est_ttft_ms=round(ttft, 1),
        tokens_per_second_per_replica=round(tokens_per_s, 1),
        requests_per_second_per_replica=round(rps, 3),
        cost_per_million_tokens_usd=round(gpu.cost_per_hour_usd * tp / (tokens_per_s * 3600)
                                          * 1e6, 4),
    )


def _check_ttft(spec: LLMDeploymentSpec, plan: SizingPlan) -> None:
    units = plan.threads_per_replica or plan.gpus_per_replica
    if plan.est_ttft_ms > spec.slo.ttft_p95_ms:
        raise SizingError(
            "SLOUnattainable",
            f"prefill of {spec.workload.input_tokens} prompt tokens takes about "
            f"{plan.est_ttft_ms:.0f} ms on "
            f"{_units(get(spec.accelerator.type), units)}, above the TTFT target of "
            f"{spec.slo.ttft_p95_ms} ms",
        )


def _choices(spec: LLMDeploymentSpec, gpu: Accelerator) -> tuple[int, ...]:
    """GPUs or threads per replica to try, smallest first."""
    if gpu.is_cpu:
        threads = spec.accelerator.threads_per_replica
        return (threads,) if threads else tuple(n for n in UNIT_CHOICES if n <= gpu.max_units)
    requested = spec.accelerator.gpus_per_replica
    return UNIT_CHOICES if requested == "auto" else (int(requested),)


def plan(spec: LLMDeploymentSpec, price_per_hour_usd: float | None = None) -> SizingPlan:
    """Pick GPUs or threads per replica (smallest that fits and meets the SLOs) and size
    the batch. ``price_per_hour_usd`` replaces the catalog's price of one unit (the
    platform's own, from the chart's ``engines.gpuPrices``) in the cost estimate."""
    gpu = get(spec.accelerator.type)
    if price_per_hour_usd is not None:
        gpu = replace(gpu, cost_per_hour_usd=price_per_hour_usd)
    if spec.model.dtype == "bfloat16" and not gpu.supports_bf16 and not spec.model.quantization:
        raise SizingError("UnsupportedDtype",
                          f"{gpu.name} does not support bfloat16; set model.dtype: float16")
    model = _model_facts(spec)
    error: SizingError | None = None
    for tp in _choices(spec, gpu):
        try:
            result = _plan_for(spec, gpu, model, tp)
            _check_ttft(spec, result)
            return result
        except SizingError as exc:
            error = exc
    assert error is not None
    raise error
