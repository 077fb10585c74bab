"""``tierserve-dev bench router``: added latency of Tierserve, LiteLLM and vllm-router.

Starts everything itself, side by side, against the same backend and one process per
target. The backend is ``--backend stub`` (default: the router stub,
:mod:`tierserve.dev.stub`, an aiohttp OpenAI server answering at once, paced at
``--itl-ms`` for streams) or ``--backend engine`` (the simulated engine,
:mod:`tierserve.engine.server`, with a latency profile of zero costs built here: no
prefill or per-sequence time, one step of ``--itl-ms`` per token for streams). The load
generator (:mod:`tierserve.dev.loadgen`) runs as its own process, open loop for
non-streamed requests, with a warm-up before every measurement.

Fairness on a small machine: every process is pinned with ``os.sched_setaffinity``; by
default the target under test (router, LiteLLM, vllm-router) on one core and the backend
and the load generator on another, and the direct baseline with the very same placement
(its target core then idles). Before each measurement the bench waits until every target
process is idle, so one target's backlog never steals CPU from the next. Added latency is
the target's percentile minus the direct percentile at the same rate in the same run.
LiteLLM (``litellm[proxy]``) and ``vllm-router`` are installed into a separate virtual
environment (``.tierserve/bench-venv``) when missing, because the LiteLLM proxy pins
versions of shared libraries that must not change under the project's venv.

``python -m tierserve.dev.bench.router --serve-engine --port P`` runs the engine backend.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

LITELLM_KEY = "sk-bench-master-key-0123456789abcdef"
_PIDS: dict[str, int] = {}  # target -> pid, to wait for its backlog to drain


def _settle(limit_s: float = 180.0) -> bool:
    """Wait until every target process is idle (each under 5% CPU over 0.5 s), so an
    overloaded target's backlog does not steal CPU from the next measurement; ``False``
    when one was still busy at the limit."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        before = {pid: _cpu_seconds(pid) for pid in _PIDS.values()}
        time.sleep(0.5)
        if all(_cpu_seconds(pid) - cpu < 0.025 for pid, cpu in before.items()):
            return True
    print("warning: a target was still busy when the next measurement started",
          file=sys.stderr)
    return False


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _core_ticks() -> dict[int, tuple[int, int]]:
    """Per core: (busy, total) jiffies from /proc/stat."""
    out: dict[int, tuple[int, int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name[3:].isdigit():
            ticks = [int(v) for v in values]
            idle = ticks[3] + ticks[4]  # idle + iowait
            out[int(name[3:])] = (sum(ticks[:8]) - idle, sum(ticks[:8]))
    return out


def _core_busy(before: dict[int, tuple[int, int]]) -> dict[str, float]:
    """Busy share of each core since ``before`` (all processes, ours and others')."""
    after = _core_ticks()
    return {str(c): round((after[c][0] - b[0]) / max(1, after[c][1] - b[1]), 2)
            for c, b in before.items() if c in after}


class Placement:
    """Which cores the target, the backend and the load generator run on."""

    def __init__(self, target: set[int], backend: set[int], loadgen: set[int]) -> None:
        self.target, self.backend, self.loadgen = target, backend, loadgen

    @classmethod
    def parse(cls, spec: str) -> Placement | None:
        """``auto``, ``none``, or ``target=1,backend=0,loadgen=0`` (cores joined by ``+``)."""
        if spec == "none":
            return None
        if spec == "auto":
            cores = sorted(os.sched_getaffinity(0))
            if len(cores) < 2:
                return None
            return cls({cores[1]}, {cores[0]}, {cores[0]})
        parts = dict(item.split("=", 1) for item in spec.split(","))
        sets = {k: {int(c) for c in v.split("+")} for k, v in parts.items()}
        return cls(sets["target"], sets["backend"], sets["loadgen"])

    def describe(self) -> str:
        def cores(s: set[int]) -> str:
            return "+".join(str(c) for c in sorted(s))
        return (f"target={cores(self.target)},backend={cores(self.backend)},"
                f"loadgen={cores(self.loadgen)}")


def _pinned(cores: set[int] | None) -> Any:
    """A ``preexec_fn`` pinning the child (and whatever it forks later) to ``cores``."""
    if not cores:
        return None

    def pin() -> None:
        os.sched_setaffinity(0, cores)
    return pin


TARGETS = ("tierserve", "litellm", "vllm-router")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print rows as a JSON list")
    p.add_argument("--rates", default="100,300,1000,1500", help="non-streaming req/s")
    p.add_argument("--duration", type=float, default=20.0,
                   help="measured seconds per rate and target (20 s: 6,000 requests at 300/s)")
    p.add_argument("--warmup", type=float, default=3.0,
                   help="unmeasured seconds of the same load before each measurement")
    p.add_argument("--backend", choices=("stub", "engine"), default="stub",
                   help="stub: the router stub; engine: the simulated engine, zero costs")
    p.add_argument("--cpus", default="auto",
                   help="placement: auto (target on the 2nd core, backend and load "
                        "generator on the 1st), none, or target=1,backend=0,loadgen=0")
    p.add_argument("--streams", type=int, default=1000, help="concurrent streams")
    p.add_argument("--stream-tokens", type=int, default=20)
    p.add_argument("--itl-ms", type=float, default=50.0, help="backend gap between chunks")
    p.add_argument("--targets", default=",".join(TARGETS))
    p.add_argument("--modes", default="nonstream,stream",
                   help="scenarios to run (nonstream, stream or both); final figures "
                        "come from one run of both")
    p.add_argument("--no-install", action="store_true",
                   help="skip targets whose package is missing instead of installing it")
    p.add_argument("--bench-venv", type=Path, default=Path(".tierserve/bench-venv"))
    p.add_argument("--base-routing", action="append", default=[], metavar="[LABEL=]DIR",
                   help="also run target tierserve-LABEL (default tierserve-base): the router "
                        "with this source root first on PYTHONPATH (e.g. `git worktree add D "
                        "OLD`, then D/routing), for before/after figures in one run; "
                        "repeatable")


def _bases(specs: list[str]) -> dict[str, Path]:
    """``[LABEL=]DIR`` options -> target name -> routing source root."""
    out: dict[str, Path] = {}
    for spec in specs:
        label, sep, path = spec.partition("=")
        if not sep:
            label, path = "base", spec
        if not (Path(path) / "tierserve" / "routing").is_dir():
            raise ValueError(f"--base-routing {spec}: {path} has no tierserve/routing")
        out[f"tierserve-{label}"] = Path(path).resolve()
    return out


def run(args: argparse.Namespace) -> int:
    targets = [t for t in args.targets.split(",") if t]
    try:
        args.bases = _bases(args.base_routing)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    at = targets.index("tierserve") + 1 if "tierserve" in targets else 0
    targets[at:at] = list(args.bases)
    tools = _tools(args.bench_venv, targets, install=not args.no_install)
    args.placement = Placement.parse(args.cpus)
    if args.placement is not None:  # the bench's own process sits with the load generator
        os.sched_setaffinity(0, args.placement.loadgen)
    modes = {m for m in args.modes.split(",") if m}
    if not modes or modes - {"nonstream", "stream"}:
        print("error: --modes takes nonstream, stream or both", file=sys.stderr)
        return 2
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mp-bench-") as tmp:
        if "nonstream" in modes:
            rows += _nonstream(args, targets, tools, Path(tmp))
        if "stream" in modes:
            rows += _stream(args, targets, tools, Path(tmp))
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        _print_table(rows)
    return 0


def _nonstream(args: argparse.Namespace, targets: list[str], tools: dict[str, str],
               tmp: Path) -> list[dict[str, Any]]:
    rows = []
    with _backend(args, tmp, itl_ms=0.0, tokens=16) as backend, \
            _targets(args, targets, tools, backend, tmp) as urls:
        for rate in (float(r) for r in args.rates.split(",")):
            base: dict[str, Any] = {}
            for target, url in [("direct", backend), *urls.items()]:
                got = _measure(args, url, target, "nonstream", rate=rate)
                base = base or got
                rows.append(_row(args, target, "nonstream", got, base, rate_rps=rate))
    return rows


def _measure(args: argparse.Namespace, url: str, target: str, mode: str, *,
             rate: float = 0, concurrency: int = 0) -> dict[str, Any]:
    """Wait for quiet, then one warmed-up measurement with per-core busy shares and the
    target's own CPU time per request (warm-up included on both sides of the ratio):
    the figure that other load on the machine disturbs least."""
    settled = _settle()
    ticks = _core_ticks()
    pid = _PIDS.get(target)
    cpu = _cpu_seconds(pid) if pid is not None else 0.0
    got = _load(args, url, target, mode, rate=rate, concurrency=concurrency)
    got["core_busy"] = _core_busy(ticks)
    got["settled"] = settled
    served = got.get("achieved_rps", 0.0) * (args.warmup + args.duration)
    if pid is not None and served > 0:
        got["target_cpu_ms_per_req"] = (_cpu_seconds(pid) - cpu) * 1000 / served
    return got


def _stream(args: argparse.Namespace, targets: list[str], tools: dict[str, str],
            tmp: Path) -> list[dict[str, Any]]:
    rows = []
    with _backend(args, tmp, itl_ms=args.itl_ms, tokens=args.stream_tokens) as backend, \
            _targets(args, targets, tools, backend, tmp) as urls:
        n = args.streams
        base: dict[str, Any] = {}
        for target, url in [("direct", backend), *urls.items()]:
            got = _measure(args, url, target, "stream", concurrency=n)
            base = base or got
            rows.append(_row(args, target, "stream", got, base, concurrency=n))
    return rows


def _row(args: argparse.Namespace, target: str, mode: str, got: dict[str, Any],
         base: dict[str, Any], **key: float) -> dict[str, Any]:
    lat = ("ttft_p50_ms", "ttft_p99_ms") if mode == "stream" else ("p50_ms", "p99_ms")

    def added(name: str) -> float | None:
        a, b = got.get(name), base.get(name)
        return None if a is None or b is None else round(a - b, 3)

    row: dict[str, Any] = {"target": target, "mode": mode, **key,
                           "added_p50_ms": added(lat[0]), "added_p99_ms": added(lat[1]),
                           "achieved_rps": round(got["achieved_rps"], 1),
                           "error_rate": round(got["error_rate"], 5),
                           "p50_ms": _r(got.get(lat[0])), "p99_ms": _r(got.get(lat[1])),
                           "requests": got.get("requests"),
                           "sched_lag_p99_ms": _r(got.get("sched_lag_p99_ms")),
                           "backend": args.backend,
                           "cpus": args.placement.describe() if args.placement else "none",
                           "core_busy": got.get("core_busy"), "settled": got.get("settled"),
                           "target_cpu_ms_per_req": _r(got.get("target_cpu_ms_per_req")),
                           "load1": round(os.getloadavg()[0], 2)}
    if mode == "nonstream":
        row["p999_ms"] = _r(got.get("p999_ms"))
    if mode == "stream":
        row["chunk_gap_added_p50_ms"] = added("gap_p50_ms")
        row["chunk_gap_added_p99_ms"] = added("gap_p99_ms")
    return row


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def _load(args: argparse.Namespace, url: str, target: str, mode: str, *, rate: float = 0,
          concurrency: int = 0) -> dict[str, Any]:
    duration = args.duration
    tokens = 16 if mode == "nonstream" else args.stream_tokens
    cmd = [sys.executable, "-m", "tierserve.dev.loadgen", "--url", url, "--mode", mode,
           "--duration", str(duration), "--warmup", str(args.warmup), "--rate", str(rate),
           "--concurrency", str(concurrency), "--max-tokens", str(tokens),
           "--api-key", LITELLM_KEY]
    placement: Placement | None = args.placement
    out = subprocess.run(cmd, capture_output=True, text=True,
                         timeout=(duration + args.warmup) * 4 + 120, check=False,
                         preexec_fn=_pinned(placement.loadgen if placement else None))
    if out.returncode != 0:
        print(f"loadgen failed for {target}: {out.stderr[-2000:]}", file=sys.stderr)
        return {"achieved_rps": 0.0, "error_rate": 1.0}
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def _process(cmd: list[str], log: Path, env: dict[str, str] | None = None,
             cores: set[int] | None = None) -> Iterator[int]:
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})}, start_new_session=True,
                                preexec_fn=_pinned(cores))
    try:
        yield proc.pid
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # our own child's group, by its pid
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _wait_ready(url: str, timeout: float = 120.0) -> None:
    body = json.dumps({"model": "bench", "max_tokens": 1,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        req = urllib.request.Request(url + "/v1/chat/completions", body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {LITELLM_KEY}"})
        with suppress(urllib.error.URLError, OSError), urllib.request.urlopen(req, timeout=5):
            return
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not become ready within {timeout:.0f}s")


@contextmanager
def _backend(args: argparse.Namespace, tmp: Path, *, itl_ms: float,
             tokens: int) -> Iterator[str]:
    port = _free_port()
    if args.backend == "engine":
        cmd = [sys.executable, "-m", "tierserve.dev.bench.router", "--serve-engine", "--port",
               str(port), "--itl-ms", str(itl_ms)]
    else:
        cmd = [sys.executable, "-m", "tierserve.dev.stub", "--port", str(port), "--name",
               "bench", "--tokens", str(tokens), "--itl-ms", str(itl_ms)]
    placement: Placement | None = args.placement
    with _process(cmd, tmp / f"backend-{port}.log",
                  cores=placement.backend if placement else None):
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url)
        yield url


@contextmanager
def _targets(args: argparse.Namespace, targets: list[str], tools: dict[str, str],
             backend: str, tmp: Path) -> Iterator[dict[str, str]]:
    urls: dict[str, str] = {}
    placement: Placement | None = args.placement
    cores = placement.target if placement else None
    _PIDS.clear()
    with _stack() as enter:
        for target in targets:
            if target not in tools and not target.startswith("tierserve"):
                continue
            port = _free_port()
            cmd, env = _command(target, tools, backend, port, tmp)
            if target in args.bases:
                env = {"PYTHONPATH": str(args.bases[target])}
            _PIDS[target] = enter(_process(cmd, tmp / f"{target}.log", env, cores))
            urls[target] = f"http://127.0.0.1:{port}"
        for target, url in urls.items():
            try:
                _wait_ready(url)
            except RuntimeError:
                print((tmp / f"{target}.log").read_text()[-3000:], file=sys.stderr)
                raise
        try:
            yield urls
        finally:
            _PIDS.clear()


@contextmanager
def _stack() -> Iterator[Any]:
    from contextlib import ExitStack
    with ExitStack() as stack:
        yield stack.enter_context


def _command(target: str, tools: dict[str, str], backend: str, port: int,
             tmp: Path) -> tuple[list[str], dict[str, str]]:
    if target.startswith("tierserve"):
        cfg = tmp / "tierserve.yaml"
        cfg.write_text(json.dumps({
            "deployments": [{"name": "bench", "endpoints": [{"url": backend}],
                             "balancing": {"scrape_metrics": False}}],
            "routes": [{"model": "bench", "variants": [{"name": "a", "deployment": "bench"}]}]}))
        return ([sys.executable, "-m", "tierserve.cli.main", "router", "--config", str(cfg),
                 "--port", str(port), "--log-level", "WARNING"], {})
    if target == "litellm":
        cfg = tmp / "litellm.yaml"
        cfg.write_text(json.dumps({
            "model_list": [{"model_name": "bench", "litellm_params": {
                "model": "openai/bench", "api_base": backend + "/v1", "api_key": "sk-none"}}],
            "litellm_settings": {"drop_params": True, "turn_off_message_logging": True}}))
        return ([tools["litellm"], "--config", str(cfg), "--host", "127.0.0.1", "--port",
                 str(port), "--num_workers", "1"],
                {"LITELLM_MASTER_KEY": LITELLM_KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                 "LITELLM_LOG": "ERROR"})
    return ([tools["vllm-router"], "--host", "127.0.0.1", "--port", str(port), "--worker-urls",
             backend, "--policy", "round_robin", "--log-level", "error",
             "--max-concurrent-requests", "4096", "--queue-size", "4096"], {})


def _tools(venv: Path, targets: list[str], *, install: bool) -> dict[str, str]:
    """Executables for the external targets, installing them into ``venv`` if asked."""
    wanted = {"litellm": "litellm[proxy]", "vllm-router": "vllm-router"}
    found: dict[str, str] = {}
    for name, package in wanted.items():
        if name not in targets:
            continue
        exe = _find(name, venv)
        if exe is None and install:
            if not (venv / "bin" / "pip").exists():
                subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "pip"), "install", "-q", package], check=True)
            exe = _find(name, venv)
        if exe is None:
            print(f"skipping {name}: not installed", file=sys.stderr)
        else:
            found[name] = exe
    return found


def _find(name: str, venv: Path) -> str | None:
    for directory in (venv / "bin", Path(sys.executable).parent):
        if (directory / name).exists():
            return str(directory / name)
    return shutil.which(name)


def engine_profile(itl_ms: float) -> Any:
    """A latency profile of zero costs: no prefill or per-sequence time, ``itl_ms`` per
    step (one token for every running sequence), room for thousands of sequences."""
    from tierserve.core.latency import LatencyProfile

    return LatencyProfile(name="bench-zero", model="bench", gpu="none",
                          source="tierserve-dev bench router: zero costs",
                          prefill_ms_per_token=0.0, step_base_ms=itl_ms, step_ms_per_seq=0.0,
                          step_ms_per_seq2=0.0, kv_cache_tokens=10**9, max_num_seqs=100_000,
                          max_prefill_tokens_per_step=10**9, max_model_len=8192)


def _serve_engine(port: int, itl_ms: float) -> None:
    import asyncio

    from tierserve.engine.server import EngineConfig, serve

    with suppress(ImportError):
        import uvloop
        uvloop.install()
    config = EngineConfig(profile=engine_profile(itl_ms), served_name="bench")
    with suppress(KeyboardInterrupt):
        asyncio.run(serve(config, "127.0.0.1", port))


def _print_table(rows: list[dict[str, Any]]) -> None:
    cols = ("target", "mode", "rate_rps", "concurrency", "added_p50_ms", "added_p99_ms",
            "achieved_rps", "error_rate", "chunk_gap_added_p50_ms", "chunk_gap_added_p99_ms")
    print(" | ".join(cols))
    for row in rows:
        print(" | ".join(str(row.get(c, "")) for c in cols))


if __name__ == "__main__":
    _p = argparse.ArgumentParser(description="the bench's engine backend")
    _p.add_argument("--serve-engine", action="store_true", required=True)
    _p.add_argument("--port", type=int, required=True)
    _p.add_argument("--itl-ms", type=float, default=0.0)
    _a = _p.parse_args()
    _serve_engine(_a.port, _a.itl_ms)
