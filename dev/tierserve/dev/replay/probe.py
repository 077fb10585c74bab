"""The host's speed right before a real run, against the fitted profile.

The two shared cores change speed by up to a fifth within half an hour on a quiet
machine (docs/engine.md, sixth check), and a single replica's start-up queue under the
SLO policy turns a few percent of speed into two or three times that of TTFT p95, so a
profile fitted minutes before a run can be further from the host than the 15% target is
wide. A probe, on the run's own stack just before its replay, measures the alone prefill
and decode step with the calibration's closed loop (one request at a time, the stack
otherwise idle: requests of the calibration's own lengths, never the replay slice's),
and the simulated twin of that run uses the fitted profile with its prefill and step
scaled by what the probe saw. The probe's requests also warm every replica the run
starts with.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from tierserve.core.latency import LatencyProfile
from tierserve.core.profiles import BenchmarkPoint
from tierserve.dev.replay.calibrate import measure

PROMPT, OUTPUT = 64, 32


@dataclass(frozen=True)
class HostSpeed:
    """Measured over modelled: the alone TTFT at the probe's prompt (prefill) and the
    alone inter-token latency (decode step); above 1 the host is slower than the fit."""

    prefill: float
    step: float
    ttft_ms: float
    itl_ms: float

    @classmethod
    def of(cls, point: BenchmarkPoint, profile: LatencyProfile) -> HostSpeed:
        if point.ttft_ms is None or point.itl_ms is None:
            raise ValueError(f"a probe point needs a TTFT and an ITL; got {point}")
        return cls(round(point.ttft_ms / profile.step_ms(1, point.prompt_tokens), 4),
                   round(point.itl_ms / profile.step_ms(1, 0), 4), point.ttft_ms, point.itl_ms)

    def relative_to(self, reference: HostSpeed) -> HostSpeed:
        """This probe against one taken beside the calibration: the host's change since
        the fit, free of the fit's own error at the probe's point (the open-loop fit's
        alone step is an intercept, a few percent off a step measured alone)."""
        return HostSpeed(round(self.prefill / reference.prefill, 4),
                         round(self.step / reference.step, 4), self.ttft_ms, self.itl_ms)

    def scaled(self, profile: LatencyProfile) -> LatencyProfile:
        """``profile`` at this host's speed (its interference and noise kept)."""
        return dataclasses.replace(
            profile, prefill_ms_per_token=round(profile.prefill_ms_per_token * self.prefill, 4),
            step_ms_per_seq=round(profile.step_ms_per_seq * self.step, 4),
            source=f"{profile.source}; x{self.prefill} prefill, x{self.step} step (probe)")


async def probe(base_url: str, model: str, profile: LatencyProfile, rounds: int) -> HostSpeed:
    """``rounds`` alone requests (after one warm-up) through ``base_url``."""
    (point,) = await measure(base_url, model, [PROMPT], OUTPUT, rounds)
    return HostSpeed.of(point, profile)
