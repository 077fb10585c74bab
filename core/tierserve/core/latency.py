"""Step-level latency model of a continuous-batching LLM engine.

This is the single implementation of engine timing in Tierserve. It has two users:

* the live simulated engine (``tierserve engine``), which runs :class:`EngineCore` in
  an asyncio loop and sleeps for each step's duration, streaming real tokens over HTTP;
* the discrete-event autoscaler simulator (``tierserve sim``), which runs one
  :class:`EngineCore` per replica on a virtual clock.

Because both call :meth:`EngineCore.step`, the latency a client sees from the live
engine and the latency the simulator predicts come from the same code.

The model follows vLLM's scheduler in spirit:

* requests wait in a FIFO queue until a sequence slot and KV-cache space for the whole
  request (prompt + output tokens) are free; the cache bounds the running batch;
* each step decodes one token for every running sequence and prefills up to
  ``max_prefill_tokens_per_step`` prompt tokens (chunked prefill);
* a step costs ``step_base_ms + step_ms_per_seq*n + step_ms_per_seq2*n**2`` for ``n``
  running sequences (decode is memory-bandwidth bound and grows with the batch), plus
  ``prefill_ms_per_token`` for each prompt token prefilled in that step.

On shared CPU cores (the llama.cpp profiles fitted here) every step is also scaled by
the host's contention, :class:`HostNoise`, which callers sample on their own clock, and
every step is slower while other replicas on the same host are busy
(:meth:`LatencyProfile.neighbour_factor`): a busy replica takes a whole core and memory
bandwidth, which its neighbours then share.

The module is pure: no I/O, no clock, no asyncio. Callers own time and randomness.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LatencyProfile:
    """Timing parameters of one (model, GPU) pair, with the source they were fitted to."""

    name: str
    model: str
    gpu: str
    source: str
    prefill_ms_per_token: float
    step_base_ms: float
    step_ms_per_seq: float
    step_ms_per_seq2: float
    kv_cache_tokens: int
    max_num_seqs: int = 256
    max_prefill_tokens_per_step: int = 8192
    max_model_len: int = 8192
    cold_start_s: float = 0.0
    # Host contention (see HostNoise): 0 for a dedicated accelerator, whose step times
    # the deterministic model already fits; fitted for engines on shared CPU cores.
    noise_sigma: float = 0.0
    noise_tau_s: float = 0.0
    # Interference on a shared host: every step takes (1 + this x the share of the
    # host's other serving replicas that are busy, i.e. in a step) times as long. 0 for
    # accelerators, whose replicas do not share compute; fitted for engines on shared
    # CPU cores, where the step costs above are then those of a replica alone.
    neighbour_busy_slowdown: float = 0.0
    # A replica still starting on the same host (a worker's imports, the model load)
    # slows the serving ones too, by this x the share of the other replicas starting.
    # None: it counts as a busy neighbour. Measured by the calibration's start phase
    # (tierserve.dev.replay.startup), which scales a replica up beside a serving one.
    neighbour_starting_slowdown: float | None = None

    def step_ms(self, running: int, prefill_tokens: int) -> float:
        """Duration of one engine step with ``running`` sequences and a prefill chunk."""
        n = max(running, 1)
        decode = self.step_base_ms + self.step_ms_per_seq * n + self.step_ms_per_seq2 * n * n
        return decode + self.prefill_ms_per_token * prefill_tokens

    def neighbour_factor(self, others: int, others_busy: int, others_starting: int = 0) -> float:
        """Slowdown of a step while ``others_busy`` of the host's ``others`` other
        replicas (idle and starting ones included) are in a step of their own and
        ``others_starting`` are still starting. Prefill and decode steps alike: on this
        project's 2-vCPU machine a busy neighbour slowed decode by about a third (the
        open-loop fit, docs/engine.md) and the closed-loop prefill cost is measured beside
        a busy neighbour, so both scale the same way."""
        if min(others_busy, others_starting) < 0 or others_busy + others_starting > others:
            raise ValueError(f"{others_busy} busy and {others_starting} starting neighbours "
                             f"out of {others}")
        if not others or not self.neighbour_busy_slowdown:
            return 1.0  # no interference on this host (accelerators)
        starting = (self.neighbour_busy_slowdown if self.neighbour_starting_slowdown is None
                    else self.neighbour_starting_slowdown)
        return 1.0 + (self.neighbour_busy_slowdown * others_busy
                      + starting * others_starting) / others


class HostNoise:
    """Host contention as a slowdown factor common to every engine on one host.

    On shared CPU cores a step takes longer whenever something else runs, and that
    something lasts a while: whole requests run slow together (the measured TPOT p95 of
    llama.cpp on this project's 2-core machine is 1.7-2x its median), which independent
    per-step noise would average away within one request. So the log of the factor is
    an Ornstein-Uhlenbeck process on the caller's clock, stationary standard deviation
    ``sigma``, correlation time ``tau_s`` (0: independent per step), and the factor is
    ``exp(x - sigma**2 / 2)``, whose mean is 1: the fitted mean step times stay the
    means. Pure and reproducible: the caller passes the clock value and a seeded RNG.
    """

    def __init__(self, sigma: float, tau_s: float, rng: random.Random) -> None:
        if sigma < 0 or tau_s < 0:
            raise ValueError(f"noise needs sigma >= 0 and tau_s >= 0; got {sigma}, {tau_s}")
        self.sigma, self.tau_s, self._rng = sigma, tau_s, rng
        self._x = rng.gauss(0.0, sigma) if sigma else 0.0
        self._t: float | None = None

    def factor(self, t: float) -> float:
        """The slowdown at time ``t`` (non-decreasing over calls)."""
        if not self.sigma:
            return 1.0
        if self.tau_s == 0:
            self._x = self._rng.gauss(0.0, self.sigma)
        elif self._t is not None and t > self._t:
            keep = math.exp(-(t - self._t) / self.tau_s)  # exact OU transition
            self._x = self._x * keep + self._rng.gauss(0.0, self.sigma * math.sqrt(1 - keep**2))
        self._t = t if self._t is None else max(self._t, t)
        return math.exp(self._x - self.sigma**2 / 2)


def host_noise(profile: LatencyProfile, seed: int = 0) -> HostNoise:
    """The profile's host noise, seeded (factor 1 for profiles without noise)."""
    return HostNoise(profile.noise_sigma, profile.noise_tau_s, random.Random(seed))


@dataclass
class SeqRequest:
    """One generation request as the engine core sees it (token counts only)."""

    id: str
    prompt_tokens: int
    output_tokens: int
    prefilled: int = 0
    generated: int = 0

    @property
    def kv_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens


@dataclass(frozen=True)
class StepOutcome:
    """What one step does. Tokens and completions become visible when the step ends."""

    duration_s: float
    first_token_ids: tuple[str, ...]
    token_ids: tuple[str, ...]
    finished_ids: tuple[str, ...]
    prefill_tokens: int = 0  # prompt tokens prefilled in this step (0: a pure decode step)


class RequestTooLarge(ValueError):
    """The request can never fit this engine's context or KV cache."""


@dataclass
class EngineCore:
    """Scheduler and cost model for one engine replica. Not thread-safe; single owner."""

    profile: LatencyProfile
    waiting: deque[SeqRequest] = field(default_factory=deque)
    running: dict[str, SeqRequest] = field(default_factory=dict)
    _reserved_kv: int = 0

    def check(self, prompt_tokens: int, output_tokens: int) -> None:
        """Raise :class:`RequestTooLarge` when a request can never be scheduled.

        A request needs at least one prompt token and one output token (the step
        accounting reports the first token when prefill completes).
        """
        if prompt_tokens < 1 or output_tokens < 1:
            raise ValueError(
                f"a request needs at least 1 prompt and 1 output token "
                f"(got {prompt_tokens} and {output_tokens})"
            )
        total = prompt_tokens + output_tokens
        if total > self.profile.max_model_len:
            raise RequestTooLarge(
                f"prompt ({prompt_tokens}) + max_tokens ({output_tokens}) = {total} tokens "
                f"exceeds the model's context length of {self.profile.max_model_len}"
            )
        if total > self.profile.kv_cache_tokens:
            raise RequestTooLarge(
                f"request needs {total} KV-cache tokens; capacity is {self.profile.kv_cache_tokens}"
            )

    def submit(self, req: SeqRequest) -> None:
        self.check(req.prompt_tokens, req.output_tokens)
        self.waiting.append(req)

    def abort(self, req_id: str) -> None:
        """Drop a request (client went away); frees its KV reservation."""
        req = self.running.pop(req_id, None)
        if req is not None:
            self._reserved_kv -= req.kv_tokens
            return
        self.waiting = deque(r for r in self.waiting if r.id != req_id)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    @property
    def num_running(self) -> int:
        return len(self.running)

    @property
    def num_waiting(self) -> int:
        return len(self.waiting)

    @property
    def kv_usage(self) -> float:
        """Fraction of KV cache reserved by running sequences (vLLM's gpu_cache_usage_perc)."""
        return self._reserved_kv / self.profile.kv_cache_tokens

    def _admit(self) -> None:
        p = self.profile
        while self.waiting and len(self.running) < p.max_num_seqs:
            head = self.waiting[0]
            if self._reserved_kv + head.kv_tokens > p.kv_cache_tokens:
                break  # FIFO: no overtaking, as vLLM's default scheduler
            self.waiting.popleft()
            self.running[head.id] = head
            self._reserved_kv += head.kv_tokens

    def step(self) -> StepOutcome:
        """Plan and account one step. Call only when :meth:`has_work` is true."""
        self._admit()
        budget = self.profile.max_prefill_tokens_per_step
        prefill_tokens = 0
        first: list[str] = []
        tokens: list[str] = []
        finished: list[str] = []
        decoding = 0
        for req in self.running.values():
            if req.prefilled < req.prompt_tokens:
                chunk = min(budget, req.prompt_tokens - req.prefilled)
                if chunk <= 0:
                    continue
                budget -= chunk
                prefill_tokens += chunk
                req.prefilled += chunk
                if req.prefilled < req.prompt_tokens:
                    continue
                first.append(req.id)  # prefill done: the first token comes with this step
            else:
                decoding += 1
            req.generated += 1
            tokens.append(req.id)
            if req.generated >= req.output_tokens:
                finished.append(req.id)
        for rid in finished:
            done = self.running.pop(rid)
            self._reserved_kv -= done.kv_tokens
        duration_ms = self.profile.step_ms(decoding + len(first), prefill_tokens)
        return StepOutcome(duration_ms / 1000.0, tuple(first), tuple(tokens), tuple(finished),
                           prefill_tokens)
