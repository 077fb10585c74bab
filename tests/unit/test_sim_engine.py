"""The simulator: deterministic, conserves requests, honours cold start, and its CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tierserve.autoscaler.policy import FixedPolicy, make_policy
from tierserve.autoscaler.sim.engine import SimSettings, Simulation
from tierserve.autoscaler.sim.oracle import oracle_schedule
from tierserve.autoscaler.sim.profiles import get_sim_profile
from tierserve.autoscaler.sim.runner import Runner, Scenario
from tierserve.autoscaler.sim.trace import Trace, poisson_bursts
from tierserve.autoscaler.types import Limits, Slo
from tierserve.cli.main import main as tierserve_main
from tierserve.core.capacity import capacity_from_profile

PROFILE = get_sim_profile("llama-3.1-70b-a100x2-est")
SLO = Slo(ttft_p95_ms=2500, tpot_p95_ms=100)
CAPACITY = capacity_from_profile(PROFILE, SLO.tpot_p95_ms, prompt_tokens=600, output_tokens=100)


def small_trace(seed: int = 1) -> Trace:
    return poisson_bursts(rate=3, duration_s=600, bursts=[(300, 120, 3.0)], seed=seed,
                          prompt_mean=600, output_mean=100)  # fmt: skip


def settings(limits: Limits | None = None, initial: int = 2) -> SimSettings:
    lim = limits or Limits(min_replicas=1, max_replicas=12, cold_start_s=60)
    return SimSettings(slo=SLO, limits=lim, capacity=CAPACITY, initial_replicas=initial)


def test_deterministic_for_a_seed() -> None:
    runs = [Simulation(small_trace(), PROFILE, settings(), make_policy("slo")).run()
            for _ in range(2)]  # fmt: skip
    assert runs[0].finish_s == runs[1].finish_s
    assert runs[0].changes == runs[1].changes
    other = Simulation(small_trace(seed=2), PROFILE, settings(), make_policy("slo")).run()
    assert other.finish_s != runs[0].finish_s


def test_every_request_finishes_in_order_of_its_life() -> None:
    res = Simulation(small_trace(), PROFILE, settings(), make_policy("hpa", target=8)).run()
    for req, first, end in zip(res.trace, res.first_token_s, res.finish_s, strict=True):
        assert req.arrival_s < first <= end


def test_scale_up_pays_the_cold_start() -> None:
    res = Simulation(small_trace(), PROFILE, settings(initial=1), make_policy("slo")).run()
    ups = [c for c in res.changes if c[2] > c[1]]
    assert ups, "the burst must trigger a scale-up"
    t_up = ups[0][0]
    ready_before = [p.ready for p in res.timeline if t_up < p.t < t_up + 58]
    assert ready_before and max(ready_before) <= ups[0][1]  # nothing ready before 60 s
    ready_after = [p.ready for p in res.timeline if t_up + 62 <= p.t < t_up + 70]
    assert max(ready_after) > ups[0][1]


def test_fixed_gpu_time_is_replicas_times_duration() -> None:
    res = Simulation(small_trace(), PROFILE, settings(initial=3), FixedPolicy(replicas=3)).run()
    assert res.gpu_seconds == pytest.approx(3 * res.end_s)
    assert not res.changes


def test_oracle_is_a_lower_bound_on_fixed_capacity() -> None:
    trace = small_trace()
    sched = oracle_schedule(trace, PROFILE, settings(initial=1), bucket_s=60)
    assert len(sched.replicas) == 10
    assert max(sched.replicas[5:7]) > min(sched.replicas[:4])  # the burst needs more
    fixed = Simulation(
        trace, PROFILE, settings(initial=sched.peak), FixedPolicy(replicas=sched.peak)
    ).run()
    assert sched.gpu_hours <= fixed.gpu_seconds / 3600


def test_runner_summary_has_the_required_keys() -> None:
    scenario = Scenario(slo=SLO, limits=Limits(max_replicas=12, cold_start_s=60))
    run = Runner(small_trace(), scenario).run("kpa", {"target": 8})
    keys = {"requests", "slo_attainment", "ttft_p95_ms", "tpot_p95_ms", "gpu_hours",
            "oracle_gpu_hours", "peak_replicas", "scale_events", "policy"}  # fmt: skip
    assert keys <= set(run.summary)
    assert run.summary["requests"] == len(small_trace())


def _jsonl_trace(tmp_path: Path) -> Path:
    """The small trace as a JSONL file, as a user would hand it to ``tierserve sim``."""
    trace = tmp_path / "t.jsonl"
    trace.write_text("".join(
        json.dumps({"arrival_s": r.arrival_s, "input_tokens": r.prompt_tokens,
                    "output_tokens": r.output_tokens}) + "\n"
        for r in small_trace()
    ))  # fmt: skip
    return trace


def test_sim_cli_json_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = _jsonl_trace(tmp_path)
    png = tmp_path / "out.png"
    rc = tierserve_main(["sim", "--trace", str(trace), "--policy", "hpa", "--set", "target=8",
                          "--json", "--plot", str(png)])  # fmt: skip
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["policy"] == "hpa" and summary["requests"] == len(small_trace())
    assert png.stat().st_size > 10_000


def test_sim_cli_reports_bad_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert tierserve_main(["sim", "--trace", str(bad)]) == 2
    assert "CSV header must contain" in capsys.readouterr().err


def test_sim_cli_compare_with_frontier(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = _jsonl_trace(tmp_path)
    rc = tierserve_main(["sim", "--trace", str(trace), "--compare", "--no-tune", "--frontier",
                          "--hpa", "target=8", "--kpa", "target=8"])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    table = out.split("GPU-hours at equal attainment")[1]
    header = table.strip().splitlines()[1]
    assert "slo GPU-h" in header and "saving vs hpa" in header and "saving vs kpa" in header
    assert "slo:" in out and "hpa:" in out and "kpa:" in out  # each policy's frontier
    against = out.split("against the clairvoyant bound")[1].split("\n| ")
    assert "bound GPU-h | slo / bound" in against[1]
    assert against[3].startswith("99.00% | ")  # one row per level, from the target up


def test_sim_cli_frontier_json_has_the_clairvoyant_bound(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = _jsonl_trace(tmp_path)
    rc = tierserve_main(["sim", "--trace", str(trace), "--compare", "--no-tune", "--frontier",
                          "--json", "--hpa", "target=8", "--kpa", "target=8"])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    fronts = json.loads(out[out.index('{\n  "frontiers"'):])
    bounds = fronts["clairvoyant_bound"]
    assert "0.9900" in bounds and "0.9950" in bounds
    levels = sorted(bounds)
    values = [bounds[k] for k in levels if bounds[k] is not None]
    assert values and values == sorted(values)  # more attainment never costs less


def test_sim_cli_seed_places_the_replicated_copies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = _jsonl_trace(tmp_path)

    def summary(seed: int) -> dict[str, object]:
        rc = tierserve_main(["sim", "--trace", str(trace), "--rate-scale", "2.5",
                              "--policy", "fixed", "--set", "replicas=3",
                              "--seed", str(seed), "--json"])  # fmt: skip
        assert rc == 0
        out: dict[str, object] = json.loads(capsys.readouterr().out)
        return out

    first, again, other = summary(0), summary(0), summary(1)
    assert first == again
    assert first["requests"] != other["requests"] or first["ttft_p95_ms"] != other["ttft_p95_ms"]
