"""The replay tooling's pure parts: trace slices, outcomes, summaries, the table, the
live timeline's figures and plot, and the one-sequence CPU profile's fit."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import aiohttp
import pytest

from tierserve.autoscaler.sim.trace import TraceRequest, load_trace
from tierserve.autoscaler.types import Slo
from tierserve.dev.live_timeline import (
    ReplicaPoint,
    RequestRecord,
    binned_p95,
    in_flight,
    phase_figures,
    plot_timeline,
)
from tierserve.dev.replay import client, compare
from tierserve.dev.replay.calibrate import START, fit_profile
from tierserve.dev.replay.client import Outcome, prompt_ids
from tierserve.dev.replay.slicing import SliceSpec, slice_trace, write_jsonl

TRACE = tuple(TraceRequest(float(t), p, o) for t, p, o in
              [(0, 800, 100), (1, 16, 1), (2, 8000, 3000), (3, 80, 9), (10, 8, 8)])


def test_slice_keeps_the_window_stretches_time_and_shrinks_tokens() -> None:
    got = slice_trace(TRACE, SliceSpec(start_s=1, duration_s=3, time_stretch=4,
                                       token_divisor=8, max_prompt=512, max_output=128))
    assert [r.arrival_s for r in got] == [0.0, 4.0, 8.0]
    assert [(r.prompt_tokens, r.output_tokens) for r in got] == [(2, 2), (512, 128), (10, 2)]


def test_slice_without_requests_is_an_error_and_bad_specs_are_refused() -> None:
    with pytest.raises(ValueError, match="no request"):
        slice_trace(TRACE, SliceSpec(start_s=100, duration_s=5))
    with pytest.raises(ValueError):
        SliceSpec(time_stretch=0)


def test_slice_round_trips_through_the_simulators_jsonl(tmp_path: Path) -> None:
    got = slice_trace(TRACE, SliceSpec(start_s=0, duration_s=20, time_stretch=1, token_divisor=1,
                                       max_prompt=10_000, max_output=10_000))
    assert load_trace(write_jsonl(got, tmp_path / "s.jsonl")) == got


def test_prompts_are_seeded_and_differ_from_the_first_token() -> None:
    assert prompt_ids(3, 50, seed=1) == prompt_ids(3, 50, seed=1)
    firsts = {prompt_ids(i, 4, seed=1)[0] for i in range(20)}
    assert len(firsts) > 15 and len(prompt_ids(0, 7, seed=1)) == 7


def test_outcome_times_are_the_simulators_definitions() -> None:
    out = Outcome(due_s=1.0, first_s=1.5, end_s=2.5, tokens=11)
    assert out.ttft_s == pytest.approx(0.5) and out.tpot_s == pytest.approx(0.1)
    slo = Slo(ttft_p95_ms=600, tpot_p95_ms=100, target_attainment=0.9)
    failed = Outcome(2.0, math.nan, math.nan, 0, "503")
    row = compare.real_summary([out, out, failed], slo, {})
    assert row["failed"] == 1 and row["attainment"] == pytest.approx(2 / 3, abs=1e-4)
    assert math.isnan(row["ttft_p95_ms"])  # a failed request is the worst, not dropped


def test_table_puts_the_simulators_error_under_its_row() -> None:
    real = {"requests": 10, "ttft_p50_ms": 100.0, "ttft_p95_ms": 200.0, "tpot_p50_ms": 10.0,
            "tpot_p95_ms": 20.0, "attainment": 0.95}
    sim = {**real, "ttft_p95_ms": 220.0, "attainment": 0.93}
    text = compare.table({"real, 2 replicas": real, "sim, 2 replicas": sim})
    assert "| sim vs real | | +0.0% / +10.0% | +0.0% / +0.0% | -2.0 pt | |" in text


def test_average_replicas_weights_time() -> None:
    writes = [(10.0, 2, "up"), (30.0, 1, "down")]
    assert compare._average_replicas(writes, 0.0, 40.0) == pytest.approx((10 + 40 + 10) / 40)


def test_one_sequence_profile_fit_recovers_its_own_points() -> None:
    from tierserve.core.profiles import BenchmarkPoint

    # prefill 4 ms/token and decode 12 ms/token: TTFT = 12 + 4 P, ITL = 12
    points = [BenchmarkPoint(1, p, 64, itl_ms=12.0, ttft_ms=12.0 + 4.0 * p, rounds=3)
              for p in (16, 128, 384)]
    fitted, err = fit_profile(points, "test")
    assert err < 0.02 and fitted.max_num_seqs == START.max_num_seqs == 1
    assert fitted.prefill_ms_per_token == pytest.approx(4.0, rel=0.03)


RECORDS = [RequestRecord(0.0, 1.0, 2.0, 11), RequestRecord(0.5, 0.7, 1.7, 11),
           RequestRecord(12.0, 12.1, 13.1, 11)]


def test_phase_figures_count_requests_started_in_the_phase() -> None:
    fig = phase_figures(RECORDS, 0.0, 10.0, ttft_slo_ms=500, tpot_slo_ms=100)
    assert fig["requests"] == 2 and fig["attainment"] == 0.5
    assert fig["ttft_p95_ms"] == pytest.approx(1000.0) and fig["tpot_p50_ms"] == 100.0
    assert phase_figures(RECORDS, 20.0, 30.0, 1, 1) == {"requests": 0}


def test_bins_and_in_flight() -> None:
    xs, ys = binned_p95(RECORDS, 0.0, 20.0, 10.0, "ttft_ms")
    assert xs == [5.0, 15.0] and ys == pytest.approx([1000.0, 100.0])
    assert in_flight(RECORDS, [0.6, 1.9, 5.0, 12.5]) == [2, 1, 0, 1]


def test_plot_writes_a_png(tmp_path: Path) -> None:
    points = [ReplicaPoint(float(t), 1 + (5 <= t < 15), 1, {"observedTtftP95Ms": 300})
              for t in range(20)]
    out = tmp_path / "img" / "t.png"
    plot_timeline(out, RECORDS, points, t0=0.0, load=(0.0, 13.0), ttft_slo_ms=500,
                  tpot_slo_ms=100, title="t")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class _Clock:
    """time.monotonic for the client: the stream moves it one second per line."""

    def __init__(self) -> None:
        self.t = 0.0

    def monotonic(self) -> float:
        return self.t


class _Stream:
    """An SSE body as the router sends it: two token chunks, the usage chunk, [DONE],
    one line per second of ``clock``."""

    status = 200

    def __init__(self, clock: _Clock) -> None:
        self.clock = clock
        token = '{"choices": [{"text": "a"}]}'
        usage = '{"choices": [], "usage": {"completion_tokens": 2}}'
        self.content = self._lines([f"data: {token}", f"data: {token}", f"data: {usage}",
                                    "data: [DONE]"])

    async def _lines(self, lines: list[str]) -> AsyncIterator[bytes]:
        for line in lines:
            self.clock.t += 1.0
            yield (line + "\n").encode()

    async def __aenter__(self) -> _Stream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class _Session:
    def __init__(self, clock: _Clock) -> None:
        self.clock = clock

    def post(self, url: str, json: object) -> _Stream:
        return _Stream(self.clock)


async def test_a_request_ends_at_its_last_token_not_at_the_streams_close(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = _Clock()
    monkeypatch.setattr(client, "time", clock)
    out = await client.send_one(cast(aiohttp.ClientSession, _Session(clock)), "u", "m",
                                TraceRequest(0.0, 4, 2), 0, 0, 0.0)
    # the tokens arrive at 1 and 2 s; the usage chunk and [DONE] at 3 and 4 s
    assert (out.first_s, out.end_s, out.tokens) == (1.0, 2.0, 2)
    assert out.tpot_s == 1.0
