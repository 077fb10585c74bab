"""Trace loaders reject malformed input clearly; synthetic traces are seeded."""

from __future__ import annotations

from pathlib import Path

import pytest

from tierserve.autoscaler.sim.trace import (
    TraceError,
    diurnal,
    load_trace,
    poisson_bursts,
    replicate_rate,
    scale_rate,
)

AZURE_HEAD = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_csv_azure_format(tmp_path: Path) -> None:
    rows = "2023-11-16 18:15:50.9951690,396,109\n2023-11-16 18:15:46.6805900,374,44\n"
    p = write(tmp_path, "t.csv", AZURE_HEAD + rows)
    trace = load_trace(p)
    assert [r.prompt_tokens for r in trace] == [374, 396]  # sorted by arrival
    assert trace[0].arrival_s == 0.0
    assert trace[1].arrival_s == pytest.approx(4.3145790, abs=1e-5)


def test_jsonl_format(tmp_path: Path) -> None:
    p = write(tmp_path, "t.jsonl", '{"arrival_s": 1.5, "input_tokens": 10, "output_tokens": 5}\n'
              '\n{"timestamp": 3, "input_tokens": 7, "output_tokens": 2}\n')  # fmt: skip
    trace = load_trace(p)
    assert [(r.arrival_s, r.prompt_tokens, r.output_tokens) for r in trace] == [
        (0.0, 10, 5), (1.5, 7, 2),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.csv", "time,in,out\n1,2,3\n", "CSV header must contain"),
        ("b.csv", AZURE_HEAD + "2023-11-16 18:15:46,12x,4\n",
         r"b.csv:2: ContextTokens must be an integer, got '12x'"),
        ("c.csv", AZURE_HEAD + "yesterday,1,4\n", r"c.csv:2: bad timestamp 'yesterday'"),
        ("d.csv", AZURE_HEAD + "1.0,5,0\n", r"GeneratedTokens must be >= 1, got 0"),
        ("e.csv", AZURE_HEAD, "trace has no requests"),
        ("f.jsonl", "{not json}\n", r"f.jsonl:1: invalid JSON"),
        ("g.jsonl", '{"arrival_s": 1, "input_tokens": 3}\n', "missing 'output_tokens'"),
        ("h.jsonl", '[1, 2, 3]\n', "expected an object"),
        ("i.jsonl", '{"input_tokens": 3, "output_tokens": 1}\n', "missing 'arrival_s'"),
        ("j.txt", "x", "unknown trace format '.txt'"),
    ],
)  # fmt: skip
def test_malformed_traces_are_rejected_with_the_location(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    with pytest.raises(TraceError, match=message):
        load_trace(write(tmp_path, name, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="no such trace file"):
        load_trace(tmp_path / "nope.csv")


def test_rate_scale_compresses_time() -> None:
    trace = poisson_bursts(rate=2, duration_s=100, seed=1)
    fast = scale_rate(trace, 2.0)
    assert len(fast) == len(trace)
    assert fast[-1].arrival_s == pytest.approx(trace[-1].arrival_s / 2)
    with pytest.raises(ValueError, match="positive number, got 0"):
        scale_rate(trace, 0)


def test_synthetic_traces_are_seeded_and_shaped() -> None:
    a = poisson_bursts(rate=2, duration_s=600, bursts=[(200, 100, 4.0)], seed=7)
    assert a == poisson_bursts(rate=2, duration_s=600, bursts=[(200, 100, 4.0)], seed=7)
    assert a != poisson_bursts(rate=2, duration_s=600, bursts=[(200, 100, 4.0)], seed=8)
    in_burst = sum(1 for r in a if 200 <= r.arrival_s < 300)
    before = sum(1 for r in a if 100 <= r.arrival_s < 200)
    assert in_burst > 2.5 * before
    d = diurnal(mean_rate=1.0, duration_s=2000, period_s=2000, amplitude=0.8, seed=3)
    first_half = sum(1 for r in d if r.arrival_s < 1000)
    assert first_half > 2 * (len(d) - first_half)  # sin is positive in the first half


def test_replicate_rate_keeps_the_clock() -> None:
    trace = poisson_bursts(rate=2, duration_s=600, seed=3)
    more = replicate_rate(trace, 2.5, seed=1)
    assert len(more) == pytest.approx(2.5 * len(trace), rel=0.05)
    assert more[-1].arrival_s <= trace[-1].arrival_s  # same hour, more requests
    assert [r.arrival_s for r in more] == sorted(r.arrival_s for r in more)
    assert more == replicate_rate(trace, 2.5, seed=1)  # seeded
    # the load curve is kept: requests per minute scale by the factor, minute by minute
    for minute in range(2, 8):
        n = sum(1 for r in trace if minute * 60 <= r.arrival_s < (minute + 1) * 60)
        m = sum(1 for r in more if minute * 60 <= r.arrival_s < (minute + 1) * 60)
        assert m == pytest.approx(2.5 * n, rel=0.3)
    with pytest.raises(ValueError, match="positive number, got -1"):
        replicate_rate(trace, -1)
