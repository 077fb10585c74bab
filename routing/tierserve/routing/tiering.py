"""Fast/slow tiering helpers: prompt text, escalation checks, SSE synthesis, cost.

Escalation happens *after* the fast tier answers (error, timeout, ``finish_reason ==
"length"``, or a mean token log-probability below the configured floor) and the client
gets exactly one answer: non-streamed fast answers are buffered and inspected before
anything is sent. Streams follow the route's ``stream_escalation`` policy (see
``docs/router.md``): ``before-first-byte`` escalates only failures before the first
byte (lowest TTFT); ``buffer`` asks the fast tier for a complete answer, inspects it
and replays it as SSE, so every escalation reason applies at the cost of fast-tier TTFT.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson

from tierserve.core.catalog import CATALOG
from tierserve.core.routerconfig import DeploymentConfig, RequestOptions, TierConfig


def prompt_text(body: dict[str, Any]) -> tuple[str, int]:
    """Concatenated prompt text and the number of user turns (for classifiers only)."""
    messages = body.get("messages")
    if isinstance(messages, list):
        parts, turns = [], 0
        for m in messages:
            content = m.get("content")
            if m.get("role") == "user":
                turns += 1
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts.extend(p.get("text", "") for p in content
                             if isinstance(p, dict) and isinstance(p.get("text"), str))
        return "\n".join(parts), turns
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return prompt, 1
    if isinstance(prompt, list):
        return "\n".join(p for p in prompt if isinstance(p, str)), 1
    return "", 1


def with_options(body: dict[str, Any], opts: RequestOptions, chat: bool) -> dict[str, Any]:
    """A copy of ``body`` with the tier's request options applied over the client's.

    The system prompt goes before the client's own: merged into its first system message
    (chat templates accept one, first), or prefixed to a completion prompt.
    """
    out = dict(body)
    if opts.max_tokens is not None:
        out["max_tokens"] = opts.max_tokens
    if opts.temperature is not None:
        out["temperature"] = opts.temperature
    if opts.stop is not None:
        out["stop"] = opts.stop
    if opts.system_prompt is not None:
        if chat:
            out["messages"] = _with_system(body.get("messages") or [], opts.system_prompt)
        else:
            out["prompt"] = _prefixed(body.get("prompt"), opts.system_prompt)
    return out


def _with_system(messages: list[Any], system: str) -> list[Any]:
    first = messages[0] if messages else None
    if isinstance(first, dict) and first.get("role") == "system" \
            and isinstance(first.get("content"), str):
        return [{**first, "content": f"{system}\n\n{first['content']}"}, *messages[1:]]
    return [{"role": "system", "content": system}, *messages]


def _prefixed(prompt: Any, prefix: str) -> Any:
    if isinstance(prompt, list):
        return [f"{prefix}\n\n{p}" if isinstance(p, str) else p for p in prompt]
    return f"{prefix}\n\n{prompt}" if isinstance(prompt, str) else prompt


def sample_bodies(body: dict[str, Any], samples: int) -> list[dict[str, Any]]:
    """``samples`` copies of ``body`` with distinct seeds (the client's seed, or 0, plus i),
    so sampled answers differ and the tier stays reproducible."""
    seed = body.get("seed")
    base = seed if isinstance(seed, int) and not isinstance(seed, bool) else 0
    return [{**body, "seed": base + i} for i in range(samples)]


_MARKER = re.compile(r"\banswer\s*(?::|is\b)", re.IGNORECASE)
_PUNCT = re.compile(r"[\s.,;:!?'\"`*()]+")


def vote_key(answer: dict[str, Any], chat: bool) -> str:
    """What samples vote on: the text after the last "Answer:" (or "answer is"), else the
    last non-empty line, case-folded without punctuation or spaces."""
    text = choice_text(answer, chat)
    parts = _MARKER.split(text)
    tail = parts[-1] if len(parts) > 1 else \
        next((line for line in reversed(text.splitlines()) if line.strip()), "")
    return _PUNCT.sub(" ", tail.casefold()).strip()


def choice_text(answer: dict[str, Any], chat: bool) -> str:
    choices = answer.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return ""
    first = choices[0]
    text = (first.get("message") or {}).get("content") if chat else first.get("text")
    return text if isinstance(text, str) else ""


def majority(answers: list[dict[str, Any]], chat: bool) -> int:
    """Index of the winning answer: the most common :func:`vote_key`, the first on ties."""
    keys = [vote_key(a, chat) for a in answers]
    counts = Counter(keys)
    top = max(counts.values())
    return next(i for i, k in enumerate(keys) if counts[k] == top)


def summed_usage(answers: list[dict[str, Any]]) -> dict[str, int]:
    """The usage of all samples together: what the voted answer cost."""
    total = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    for a in answers:
        usage = a.get("usage")
        if isinstance(usage, dict):
            for k in total:
                v = usage.get(k)
                total[k] += v if isinstance(v, int) else 0
    return total


def with_logprobs(body: dict[str, Any], chat: bool) -> dict[str, Any]:
    """A copy of ``body`` asking for log-probabilities (for the confidence check)."""
    out = dict(body)
    out["logprobs"] = True if chat else max(1, int(body.get("logprobs") or 0))
    return out


def mean_logprob(choice: dict[str, Any]) -> float | None:
    lp = choice.get("logprobs")
    if not isinstance(lp, dict):
        return None
    values: list[float] = []
    if isinstance(lp.get("content"), list):  # chat format
        values = [t["logprob"] for t in lp["content"]
                  if isinstance(t, dict) and isinstance(t.get("logprob"), int | float)]
    elif isinstance(lp.get("token_logprobs"), list):  # completions format
        values = [v for v in lp["token_logprobs"] if isinstance(v, int | float)]
    return sum(values) / len(values) if values else None


def escalation_reason(answer: dict[str, Any], cfg: TierConfig) -> str | None:
    """Why a successful fast answer should still go to the slow tier, if at all."""
    choices = answer.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return "error" if "error" in cfg.escalate_on else None
    first = choices[0]
    if "length" in cfg.escalate_on and first.get("finish_reason") == "length":
        return "length"
    if "low_confidence" in cfg.escalate_on:
        mean = mean_logprob(first)
        if mean is not None and mean < cfg.min_mean_logprob:
            return "low_confidence"
    return None


def strip_logprobs(answer: dict[str, Any]) -> None:
    for choice in answer.get("choices") or []:
        if isinstance(choice, dict):
            choice["logprobs"] = None


def sse_from_answer(answer: dict[str, Any], chat: bool) -> bytes:
    """Replay a complete answer as an OpenAI SSE stream (``buffer`` policy)."""
    events = []
    base = {"id": answer.get("id", ""), "created": answer.get("created", int(time.time())),
            "model": answer.get("model", ""),
            "object": "chat.completion.chunk" if chat else "text_completion"}
    for i, choice in enumerate(answer.get("choices") or []):
        if chat:
            text = (choice.get("message") or {}).get("content") or ""
            delta: dict[str, Any] = {"index": i, "delta": {"role": "assistant", "content": text},
                                     "finish_reason": None}
            end: dict[str, Any] = {"index": i, "delta": {},
                                   "finish_reason": choice.get("finish_reason")}
        else:
            delta = {"index": i, "text": choice.get("text", ""), "finish_reason": None}
            end = {"index": i, "text": "", "finish_reason": choice.get("finish_reason")}
        events += [{**base, "choices": [delta]}, {**base, "choices": [end]}]
    body = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events)
    return body + b"data: [DONE]\n\n"


def cost_per_token(dep: DeploymentConfig) -> float:
    """Estimated USD per token: GPU price per second over replica token throughput."""
    acc = CATALOG.get(dep.gpu_type) if dep.gpu_type else None
    if acc is None:
        return 0.0
    return acc.cost_per_hour_usd * dep.gpus_per_replica / 3600 / dep.tokens_per_s_per_replica


@dataclass(slots=True)
class SlowTierSpend:
    """Tokens the slow tier spent per answer on one route variant, as observed.

    What a fast answer saved is what the slow tier would have spent on that request.
    Priced per token alone that is nothing when both tiers are one deployment (the slow
    tier being the same model with more test-time compute: a larger budget, several
    sampled answers), so the slow tier's own spend per answer is measured here.
    """

    tokens: float = 0.0
    answers: int = 0

    def observe(self, tokens: int) -> None:
        self.tokens += tokens
        self.answers += 1

    def expected(self, prior: float) -> float:
        """Mean tokens per slow answer; ``prior`` until one was seen."""
        return self.tokens / self.answers if self.answers else prior


def fast_answer_saving(fast: DeploymentConfig, slow: DeploymentConfig, tokens: int,
                       spend: SlowTierSpend, slow_samples: int) -> float:
    """USD a successful fast answer of ``tokens`` tokens saved against the slow tier:
    the slow tier's mean spend per answer (before any was seen: the same tokens once
    per sample it would draw) at its price, less this answer at the fast tier's."""
    slow_tokens = spend.expected(prior=float(tokens * slow_samples))
    return slow_tokens * cost_per_token(slow) - tokens * cost_per_token(fast)
