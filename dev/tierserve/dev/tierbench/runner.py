"""Send the question set through the router, one request at a time, and record each answer.

One request at a time so that each answer's latency is its own (the engines serve one
sequence at a time anyway) and so the engines' CPU time over a run is that run's cost. Per
request: correctness by the item's checker, latency, mean token log-probability (when
asked for), and which tier answered and why, read from the router's own metrics (the
escalation counter by reason and the classifier's decisions) before and after it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from tierserve.core import vllm_names
from tierserve.dev.tierbench.questions import Question
from tierserve.dev.tierbench.setup import cpu_seconds
from tierserve.routing.app import Router
from tierserve.routing.tiering import mean_logprob

REASONS = ("error", "timeout", "length", "low_confidence")


@dataclass(frozen=True)
class Answer:
    id: str
    correct: bool
    latency_s: float
    mean_logprob: float | None
    slow_by_classifier: bool
    escalated: str | None  # the reason, when the fast answer was replaced
    text: str


@dataclass
class Run:
    """One pass over some questions through one route."""

    label: str
    answers: list[Answer] = field(default_factory=list)
    cpu_s: float = 0.0  # the engines' CPU time over the run
    tokens: dict[str, int] = field(default_factory=dict)  # per deployment, prompt + output
    wall_s: float = 0.0

    def accuracy(self) -> float:
        return sum(a.correct for a in self.answers) / max(1, len(self.answers))


@dataclass(frozen=True)
class Engine:
    name: str
    url: str
    pid: int


class Client:
    """Talks to the router (in this process) and reads the engines' counters."""

    def __init__(self, session: aiohttp.ClientSession, router: Router, url: str,
                 engines: Sequence[Engine]) -> None:
        self._s, self._router, self._url, self._engines = session, router, url, engines

    async def run(self, label: str, route: str, questions: Sequence[Question], *,
                  force: str | None = None, logprobs: bool = False,
                  engines: Sequence[str] | None = None) -> Run:
        """``engines``: the ones this route uses (their CPU and tokens are the run's cost;
        runs on other engines may go on at the same time)."""
        run = Run(label)
        mine = [e for e in self._engines if engines is None or e.name in engines]
        cpu0, tok0, t0 = self._cpu(mine), await self._tokens(mine), time.perf_counter()
        for q in questions:
            run.answers.append(await self._ask(route, q, force=force, logprobs=logprobs))
        run.wall_s = time.perf_counter() - t0
        run.cpu_s = self._cpu(mine) - cpu0
        tok1 = await self._tokens(mine)
        run.tokens = {k: tok1[k] - tok0.get(k, 0) for k in tok1}
        return run

    async def _ask(self, route: str, q: Question, *, force: str | None,
                   logprobs: bool) -> Answer:
        body: dict[str, Any] = {"model": route,
                                "messages": [{"role": "user", "content": q.question}]}
        if logprobs:
            body["logprobs"] = True
        headers = {"x-tierserve-tier": force} if force else {}
        before = self._counters(route)
        t0 = time.perf_counter()
        async with self._s.post(self._url + "/v1/chat/completions", data=orjson.dumps(body),
                                headers={"content-type": "application/json",
                                         **headers}) as r:
            raw = await r.read()
        latency = time.perf_counter() - t0
        if r.status != 200:
            raise RuntimeError(f"{route}: {q.id} answered {r.status}: {raw[:300]!r}")
        answer = orjson.loads(raw)
        choice = answer["choices"][0]
        text = (choice.get("message") or {}).get("content") or ""
        after = self._counters(route)
        escalated = next((k for k in REASONS if after[k] > before[k]), None)
        return Answer(q.id, q.correct(text), latency, mean_logprob(choice),
                      after["slow"] > before["slow"], escalated, text)

    def _counters(self, route: str) -> dict[str, float]:
        reg = self._router.metrics.registry
        out = {k: reg.get_sample_value("tierserve_router_escalations_total",
                                       {"route": route, "variant": "tiers", "reason": k}) or 0.0
               for k in REASONS}
        out["slow"] = reg.get_sample_value(
            "tierserve_router_tier_decisions_total",
            {"route": route, "variant": "tiers", "tier": "slow", "source": "classifier"}) or 0.0
        return out

    @staticmethod
    def _cpu(engines: Sequence[Engine]) -> float:
        return sum(cpu_seconds(e.pid) for e in engines)

    async def _tokens(self, engines: Sequence[Engine]) -> dict[str, int]:
        out = {}
        for e in engines:
            async with self._s.get(e.url + "/metrics") as r:
                out[e.name] = _token_total(await r.text())
        return out


def _token_total(text: str) -> int:
    """Prompt plus generated tokens from an engine's vLLM counters."""
    names = (vllm_names.counter_sample(vllm_names.PROMPT_TOKENS),
             vllm_names.counter_sample(vllm_names.GENERATION_TOKENS))
    total = 0.0
    for line in text.splitlines():
        if line.startswith(names):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def by_id(run: Run) -> Mapping[str, Answer]:
    return {a.id: a for a in run.answers}
