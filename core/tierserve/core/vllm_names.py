"""The vLLM metric names that engines export and the router and autoscaler read.

One place for a contract three components share: the engines (simulated and real)
export these families, the router's scraper reads the queue gauges, the autoscaler's
sources read all of them. Counter names are the family names; the exposition format
adds ``_total`` to the samples (``COUNTER_SAMPLE``). Where vLLM versions renamed a
family, both names are listed, newest first.
"""

from __future__ import annotations

RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
KV_CACHE = "vllm:kv_cache_usage_perc"  # vLLM V1
GPU_CACHE = "vllm:gpu_cache_usage_perc"  # vLLM V0
KV_USAGE = (KV_CACHE, GPU_CACHE)
TTFT = "vllm:time_to_first_token_seconds"
TPOT = "vllm:time_per_output_token_seconds"
REQUEST_TPOT = "vllm:request_time_per_output_token_seconds"  # newer vLLM
TPOT_NAMES = (REQUEST_TPOT, TPOT)
ITL = "vllm:inter_token_latency_seconds"  # per token (vLLM >= 0.10)
E2E = "vllm:e2e_request_latency_seconds"
PROMPT_TOKENS = "vllm:prompt_tokens"
GENERATION_TOKENS = "vllm:generation_tokens"
REQUEST_SUCCESS = "vllm:request_success"
GENERATION_TOKENS_HIST = "vllm:request_generation_tokens"  # per finished request
# its buckets: vLLM's 1-2-5 series up to the model length (20,000 covers the models
# here; longer answers land in +Inf). The SLO autoscaler reads the answer-length shape
GENERATION_TOKENS_BUCKETS: tuple[float, ...] = (
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000,
)  # fmt: skip


def counter_sample(family: str) -> str:
    """The sample name of a counter family in the text exposition format."""
    return f"{family}_total"
