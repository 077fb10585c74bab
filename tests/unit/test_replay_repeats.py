"""Several real runs of one setting: merged into one table, the simulator against their
median, their spread as the measurement's own noise."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tierserve.core.profiles import get_profile
from tierserve.dev.replay import compare, repeats
from tierserve.dev.replay.__main__ import main


def _row(ttft: float, tpot: float, att: float) -> dict[str, Any]:
    return {"requests": 141, "ttft_p50_ms": ttft / 3, "ttft_p95_ms": ttft,
            "tpot_p50_ms": tpot / 1.4, "tpot_p95_ms": tpot, "attainment": att,
            "avg_replicas": 2.0}


SIM = _row(2500.0, 44.0, 0.85)
RUNS = [{"real, 2 replicas": _row(t, p, a), "sim, 2 replicas": SIM}
        for t, p, a in ((2800.0, 42.0, 0.87), (3400.0, 50.0, 0.80), (2600.0, 47.0, 0.83))]


def test_the_sim_is_compared_with_the_median_of_the_real_runs() -> None:
    rows = repeats.merge(RUNS)
    assert list(rows) == ["real, 2 replicas, run 1", "real, 2 replicas, run 2",
                          "real, 2 replicas, run 3", "real, 2 replicas", "sim, 2 replicas"]
    med = rows["real, 2 replicas"]
    assert (med["ttft_p95_ms"], med["tpot_p95_ms"], med["attainment"], med["runs"]) == (
        2800.0, 47.0, 0.83, 3)
    assert "| sim vs real | | " in compare.table(rows)
    assert "+2.0 pt" in compare.table(rows)  # 0.85 against the median 0.83
    assert repeats.spread(rows, "real, 2 replicas")["attainment"] == pytest.approx(0.07)


def test_differing_simulated_rows_are_refused() -> None:
    other = [RUNS[0], {**RUNS[1], "sim, 2 replicas": _row(2400.0, 44.0, 0.85)}]
    with pytest.raises(ValueError, match="2400"):
        repeats.merge(other)
    with pytest.raises(ValueError, match="no runs"):
        repeats.median_row([])


def test_table_command_reads_compare_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    paths = []
    for k, run in enumerate(RUNS):
        paths.append(tmp_path / f"run{k}.json")
        paths[-1].write_text(json.dumps(run))
    assert main(["table", *map(str, paths)]) == 0
    out = capsys.readouterr().out
    assert "real, 2 replicas, run 3" in out and "spread" in out
    (tmp_path / "bad.json").write_text("[]")
    with pytest.raises(ValueError, match=r"bad\.json"):
        repeats.load([tmp_path / "bad.json"])


def test_table_takes_the_simulated_rows_from_one_file_when_asked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = []
    for k, run in enumerate(RUNS):
        paths.append(tmp_path / f"run{k}.json")
        # each real run written beside a differing simulated row: merged, it is refused
        paths[-1].write_text(json.dumps({**run, "sim, 2 replicas": _row(2400.0 + k, 44.0,
                                                                          0.85)}))
    sim = tmp_path / "sim.json"
    sim.write_text(json.dumps({"sim, 2 replicas": _row(2500.0, 44.0, 0.90)}))
    assert main(["table", "--sim-from", str(sim), *map(str, paths)]) == 0
    assert "+7.0 pt" in capsys.readouterr().out  # 0.90 against the real median 0.83


def test_probed_runs_are_compared_twin_by_twin_median_to_median() -> None:
    def twin(ttft: float, speed: float) -> dict[str, Any]:
        return {**_row(ttft, 44.0, 0.85), "host_speed": {"prefill": speed, "step": speed}}

    runs = [{"real, 2 replicas": _row(t, 42.0, 0.87), "sim, 2 replicas": twin(s, k)}
            for t, s, k in ((2800.0, 2700.0, 1.0), (3400.0, 3300.0, 1.2),
                            (2600.0, 2400.0, 0.9))]
    rows = repeats.merge(runs)
    assert list(rows)[-4:] == ["sim, 2 replicas, run 1", "sim, 2 replicas, run 2",
                               "sim, 2 replicas, run 3", "sim, 2 replicas"]
    assert rows["sim, 2 replicas"]["ttft_p95_ms"] == 2700.0
    assert "-3.6%" in compare.table(rows)  # 2700 against the real median 2800
    with pytest.raises(ValueError, match="some runs probed"):
        repeats.merge([*runs, RUNS[0]])


def test_twins_are_resimulated_beside_the_earlier_real_rows(tmp_path: Path) -> None:
    from tierserve.autoscaler.sim.trace import TraceRequest
    from tierserve.dev.replay.slicing import write_jsonl

    trace = write_jsonl(tuple(TraceRequest(60.0 + i, 400, 40) for i in range(30)),
                        tmp_path / "t.jsonl")
    profile = tmp_path / "p.json"
    compare.save_profile(get_profile("smollm2-135m-cpu1"), profile)
    ref = {"prefill": 1.0, "step": 1.0, "ttft_ms": 500.0, "itl_ms": 20.0}
    (tmp_path / "ref.json").write_text(json.dumps(ref))

    def twin(speed: float) -> dict[str, Any]:
        real = {**_row(2800.0, 42.0, 0.87), "host_speed": {**ref, "step": speed,
                                                           "prefill": speed}}
        (tmp_path / "earlier.json").write_text(json.dumps({"real, 2 replicas": real}))
        out = tmp_path / "twin.json"
        assert main(["compare", "--trace", str(trace), "--start-s", "0", "--sim-only",
                     "--runs", "fixed",
                     "--profile-file", str(profile), "--real-from",
                     str(tmp_path / "earlier.json"), "--probe-reference",
                     str(tmp_path / "ref.json"), "--json", str(out)]) == 0
        rows: dict[str, dict[str, Any]] = json.loads(out.read_text())
        assert rows["real, 2 replicas"] == real  # kept as it was
        assert rows["sim, 2 replicas"]["host_speed"]["step"] == speed
        return rows["sim, 2 replicas"]

    # a slower host, a slower twin: the speed is the earlier run's probe against ref
    assert twin(1.3)["tpot_p50_ms"] > twin(1.0)["tpot_p50_ms"]


def test_bad_twin_inputs_are_refused_with_the_file(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from tierserve.autoscaler.sim.trace import TraceRequest
    from tierserve.dev.replay.slicing import write_jsonl

    trace = write_jsonl(tuple(TraceRequest(float(i), 400, 40) for i in range(10)),
                        tmp_path / "t.jsonl")
    (tmp_path / "earlier.json").write_text(json.dumps({"real, 2 replicas": {
        **_row(2800.0, 42.0, 0.87), "host_speed": {"prefill": 1.0, "step": 1.0,
                                                   "ttft_ms": 500.0, "itl_ms": 20.0}}}))
    (tmp_path / "ref.json").write_text(json.dumps({"prefill": 1.0}))
    base = ["compare", "--trace", str(trace), "--start-s", "0", "--runs", "fixed",
            "--real-from", str(tmp_path / "earlier.json")]
    assert main(base) == 2  # without --sim-only
    assert "--real-from goes with --sim-only" in capsys.readouterr().err
    assert main([*base, "--sim-only", "--probe-reference", str(tmp_path / "ref.json")]) == 2
    assert "ref.json: not a saved probe" in capsys.readouterr().err
