"""Calibrate what a replica's start costs the replica already serving beside it, and how
long the start takes, on this machine's shared cores.

The SLO replay scales 1 -> 2 under load, so for a few seconds one replica serves the
whole queue while the second starts (a Ray worker's imports, the model load) on the
same two cores. Each cycle of this phase: the stack at one replica, one closed-loop
client of fixed long-answer requests on it (the calibration's own lengths, not the replay
slice's: fitting to the slice would make the comparison circular); ``baseline_s`` with
the replica alone, then the scale to two, the loop running on, until the second replica
is ready (polled every 0.5 s: the start time is known to that resolution). Every
token is timed: the serving replica's mean gap between consecutive tokens during the
start over its mean gap alone, less one, is the profile's
``neighbour_starting_slowdown`` (one other replica, starting: the whole share). A start
takes 2-4 s here, shorter than most whole requests, so the measure is the token gaps
inside each window, not whole requests. The first ``settle_s`` of each baseline are
skipped (the replica just stopped by the scale to one may still be exiting).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from tierserve.autoscaler.sim.trace import TraceRequest
from tierserve.core.latency import LatencyProfile
from tierserve.dev.replay.client import send_one
from tierserve.dev.replay.stack import MODEL, RealStack

Window = tuple[float, float]


@dataclass(frozen=True)
class StartPhase:
    cycles: int = 4
    baseline_s: float = 10.0
    settle_s: float = 3.0
    prompt: int = 32
    output: int = 160
    clients: int = 1  # closed-loop clients: more than one keep a queue at the replica
    limit_s: float = 120.0  # a start that takes longer than this fails the phase

    def __post_init__(self) -> None:
        if self.cycles < 1 or not 0 <= self.settle_s < self.baseline_s or self.output < 2:
            raise ValueError(f"start phase needs cycles >= 1, 0 <= settle_s < baseline_s "
                             f"and output >= 2; got {self}")


def gaps(streams: Sequence[Sequence[float]], window: Window) -> list[float]:
    """The gaps (s) between consecutive tokens of one stream, both inside ``window``."""
    lo, hi = window
    return [b - a for times in streams for a, b in itertools.pairwise(times)
            if lo <= a and b <= hi]


@dataclass(frozen=True)
class StartCycle:
    """One scale-up: its duration (scale call to ready) and the serving replica's token
    gaps alone and during it."""

    start_s: float
    alone: tuple[float, ...]
    during: tuple[float, ...]

    @classmethod
    def of(cls, streams: Sequence[Sequence[float]], alone: Window, during: Window) -> StartCycle:
        return cls(round(during[1] - during[0], 2), tuple(gaps(streams, alone)),
                   tuple(gaps(streams, during)))


@dataclass(frozen=True)
class StartFit:
    profile: LatencyProfile
    cycles: tuple[StartCycle, ...]
    itl_ratio: float

    @property
    def start_s(self) -> float:
        """The median start, for the simulator's ``--replica-start-s``."""
        return statistics.median(c.start_s for c in self.cycles)

    def __str__(self) -> str:
        starts = ", ".join(f"{c.start_s:.1f}" for c in self.cycles)
        counts = ", ".join(f"{len(c.alone)}/{len(c.during)}" for c in self.cycles)
        alone = statistics.fmean(g for c in self.cycles for g in c.alone) * 1000
        return (f"# start phase: {len(self.cycles)} scale-ups 1 -> 2, starts {starts} s "
                f"(median {self.start_s:.1f}); token gaps alone/during {counts}; the "
                f"serving replica's ITL {alone:.2f} ms alone, x{self.itl_ratio:.3f} while "
                f"the other starts: neighbour_starting_slowdown "
                f"{self.profile.neighbour_starting_slowdown}")


MIN_GAPS = 20


def fit_start(cycles: Sequence[StartCycle], profile: LatencyProfile) -> StartFit:
    """``profile`` with the starting-neighbour slowdown these cycles show: the mean token
    gap during the starts over the mean alone, pooled over cycles."""
    alone = [g for c in cycles for g in c.alone]
    during = [g for c in cycles for g in c.during]
    if len(alone) < MIN_GAPS or len(during) < MIN_GAPS:
        raise ValueError(f"fitting a start's slowdown needs >= {MIN_GAPS} token gaps alone "
                         f"and during starts; got {len(alone)} and {len(during)}")
    ratio = statistics.fmean(during) / statistics.fmean(alone)
    fitted = dataclasses.replace(profile,
                                 neighbour_starting_slowdown=round(max(ratio - 1, 0.0), 3))
    return StartFit(fitted, tuple(cycles), round(ratio, 3))


async def _loop(session: aiohttp.ClientSession, url: str, phase: StartPhase, t0: float,
                stop: asyncio.Event, streams: list[list[float]], k: int) -> None:
    """Back-to-back requests until ``stop``; each one's token times into ``streams``."""
    i = 0
    while not stop.is_set():
        times: list[float] = []
        streams.append(times)
        o = await send_one(session, url, MODEL, TraceRequest(0.0, phase.prompt, phase.output),
                           500_000 + 1000 * k + i, seed=13, t0=t0, token_times=times)
        if o.error or math.isnan(o.first_s):
            raise RuntimeError(f"start-phase request failed: {o.error or o}")
        i += 1


async def _cycle(stack: RealStack, session: aiohttp.ClientSession, phase: StartPhase) -> StartCycle:
    await stack.scale(1)
    await stack.wait_ready(1, phase.limit_s)
    url = stack.base_url.rstrip("/") + "/completions"
    t0, stop = time.monotonic(), asyncio.Event()
    streams: list[list[float]] = []
    loops = [asyncio.create_task(_loop(session, url, phase, t0, stop, streams, k))
             for k in range(phase.clients)]
    try:
        await asyncio.sleep(phase.baseline_s)
        scaled = time.monotonic() - t0
        await stack.scale(2)
        await stack.wait_ready(2, phase.limit_s)  # polled every 0.5 s: the resolution
        ready = time.monotonic() - t0
    finally:
        stop.set()
        await asyncio.gather(*loops)
    return StartCycle.of(streams, (phase.settle_s, scaled), (scaled, ready))


async def measure_start(stack: RealStack, phase: StartPhase,
                        profile: LatencyProfile) -> StartFit:
    """``phase.cycles`` scale-ups of ``stack`` from one replica to two; it ends at two."""
    async with aiohttp.ClientSession() as session:
        cycles = [await _cycle(stack, session, phase) for _ in range(phase.cycles)]
    return fit_start(cycles, profile)
