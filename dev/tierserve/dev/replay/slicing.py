"""A slice of a trace scaled to what a small CPU deployment serves.

The Azure conversation trace has prompts of about a thousand tokens arriving several
times a second: far more than two cores running SmolLM2 one sequence at a time can
serve. A slice keeps the trace's arrival pattern (its bursts and gaps) and its length
distribution, shrunk: ``duration_s`` of the trace from ``start_s``, its inter-arrival
times stretched by ``time_stretch`` (so a few minutes of wall time replay tens of
seconds of trace at a lower rate) and its token counts divided by ``token_divisor``,
capped at ``max_prompt`` / ``max_output`` (the model's context is 2048 tokens).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from tierserve.autoscaler.sim.trace import Trace, TraceRequest


class SliceSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    start_s: float = Field(default=60.0, ge=0)
    duration_s: float = Field(default=30.0, gt=0)
    time_stretch: float = Field(default=6.0, gt=0)
    token_divisor: float = Field(default=16.0, gt=0)
    max_prompt: int = Field(default=512, ge=1)
    max_output: int = Field(default=128, ge=2)


def slice_trace(trace: Sequence[TraceRequest], spec: SliceSpec) -> Trace:
    """The requests of ``[start_s, start_s + duration_s)``, re-timed from 0 and scaled.
    Raises ``ValueError`` when the window holds no request."""
    lo, hi = spec.start_s, spec.start_s + spec.duration_s
    inside = [r for r in trace if lo <= r.arrival_s < hi]
    if not inside:
        raise ValueError(f"no request in [{lo:g}, {hi:g}) s of the trace "
                         f"(it lasts {trace[-1].arrival_s if trace else 0:.0f} s)")
    t0 = inside[0].arrival_s
    return tuple(TraceRequest(
        (r.arrival_s - t0) * spec.time_stretch,
        min(spec.max_prompt, max(1, math.ceil(r.prompt_tokens / spec.token_divisor))),
        # at least two tokens, so every request has a TPOT
        min(spec.max_output, max(2, math.ceil(r.output_tokens / spec.token_divisor))),
    ) for r in inside)


def write_jsonl(trace: Sequence[TraceRequest], path: Path) -> Path:
    """The slice in the JSONL form ``tierserve sim --trace`` reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"arrival_s": r.arrival_s, "input_tokens":
                                        r.prompt_tokens, "output_tokens": r.output_tokens})
                            + "\n" for r in trace))
    return path
