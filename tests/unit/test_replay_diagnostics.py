"""The replay's diagnostics: per-request outcomes in a row, a saved profile's round
trip, and the CPU sampler's roles (on this process's own /proc entries)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tierserve.autoscaler.types import Slo
from tierserve.core.profiles import get_profile
from tierserve.dev.replay import compare
from tierserve.dev.replay.client import Outcome
from tierserve.dev.replay.cpu import CpuSampler, descendants, role_of


def test_a_real_row_keeps_each_requests_times() -> None:
    slo = Slo(ttft_p95_ms=600, tpot_p95_ms=100, target_attainment=0.9)
    row = compare.real_summary([Outcome(1.0, 1.5, 2.5, 11)], slo, {})
    assert row["outcomes"] == [[1.0, 1.5, 2.5, 11]]


def test_a_saved_profile_loads_back_equal(tmp_path: Path) -> None:
    prof = get_profile("smollm2-135m-cpu1")
    compare.save_profile(prof, tmp_path / "p.json")
    assert compare.load_profile(tmp_path / "p.json") == prof


def test_a_file_that_is_no_profile_is_refused_with_its_name(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x"}')
    with pytest.raises(ValueError, match=r"bad\.json: not a saved latency profile"):
        compare.load_profile(bad)


def test_roles_are_rays_actor_classes_or_the_program() -> None:
    assert role_of("ray::ServeReplica:replay--smollm2:LlamaCppEngine") == "LlamaCppEngine"
    assert role_of("/v/bin/python -m tierserve.cli.main router --config c") == (
        "tierserve.cli.main router")
    assert role_of("/v/bin/python -m tierserve.dev.replay compare") == "tierserve.dev.replay"
    assert role_of("/usr/bin/gcs_server --x") == "gcs_server"
    assert role_of("") == "?"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_the_sampler_counts_a_child_that_used_the_cpu() -> None:
    async def run() -> dict[str, dict[str, float]]:
        async with CpuSampler(interval_s=0.05) as cpu:
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-c", "import sys, time\n"
                "t = time.process_time()\n"
                "while time.process_time() - t < 0.3: pass\n"
                "sys.stdin.read()", stdin=asyncio.subprocess.PIPE)
            try:
                # wait on the condition (its CPU seen in /proc), not on a clock
                while not any(s.pid == child.pid and s.cpu_s >= 0.25
                              for s in descendants(cpu.root)):
                    await asyncio.sleep(0.05)
                cpu.sample()  # and the sampler has seen it so far
            finally:
                await asyncio.wait_for(child.communicate(b""), 10)
        return dict(cpu.roles())

    roles = asyncio.run(run())
    assert roles[Path(sys.executable).name]["cpu_s"] >= 0.25, roles


def test_a_measured_replica_start_replaces_the_policys_cold_start_in_the_simulation() -> None:
    from tierserve.autoscaler.sim.runner import Runner, Scenario
    from tierserve.autoscaler.sim.trace import TraceRequest
    from tierserve.autoscaler.types import Limits

    # one replica cannot keep up: the policy adds the second at its first decision
    trace = tuple(TraceRequest(i * 0.2, 64, 24) for i in range(150))
    slo = Slo(ttft_p95_ms=2500, tpot_p95_ms=40, target_attainment=0.9)
    limits = Limits(min_replicas=1, max_replicas=2, cold_start_s=10.0)

    fast_sc = Scenario(profile="smollm2-135m-cpu1", slo=slo, limits=limits, initial_replicas=1,
                       replica_start_s=4.2)
    slow_sc = fast_sc.model_copy(update={"replica_start_s": None})  # limits.cold_start_s
    fast = Runner(trace, fast_sc).run("slo", {"interval_s": 2.0}).result
    slow = Runner(trace, slow_sc).run("slo", {"interval_s": 2.0}).result
    # the decision is the policy's, told the same cold start in both
    assert [c[:3] for c in fast.changes][:1] == [c[:3] for c in slow.changes][:1] != []
    early = [i for i, r in enumerate(trace) if r.arrival_s < 20]
    # a replica serving 5.8 s sooner drains the start-up queue sooner
    assert sum(fast.ttft_s()[i] for i in early) < sum(slow.ttft_s()[i] for i in early)
