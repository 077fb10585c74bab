"""``modelplane bench router``: added latency of ModelPlane, LiteLLM and vllm-router.

Starts everything itself, side by side, against the same backend: the router stub
(:mod:`modelplane.routing.stub`, an aiohttp OpenAI server answering at once; paced at
``--itl-ms`` for streams) and one process per target. The load generator
(:mod:`modelplane.routing.loadgen`) runs as its own process. Added latency is the
target's percentile minus the direct percentile at the same rate, measured in the same
run. LiteLLM (``litellm[proxy]``) and ``vllm-router`` are installed into a separate
virtual environment (``.modelplane/bench-venv``) when missing, because the LiteLLM proxy
pins versions of shared libraries that must not change under the project's venv.
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


def _settle(target: str, limit_s: float = 90.0) -> None:
    """Wait until ``target`` is idle (CPU < 5% over 0.5 s), so an overloaded target's
    backlog does not steal CPU from the next measurement."""
    pid = _PIDS.get(target)
    if pid is None:
        return
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        before = _cpu_seconds(pid)
        time.sleep(0.5)
        if _cpu_seconds(pid) - before < 0.025:
            return


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
TARGETS = ("modelplane", "litellm", "vllm-router")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print rows as a JSON list")
    p.add_argument("--rates", default="100,300,1000,1500", help="non-streaming req/s")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    p.add_argument("--streams", type=int, default=1000, help="concurrent streams")
    p.add_argument("--stream-tokens", type=int, default=20)
    p.add_argument("--itl-ms", type=float, default=50.0, help="backend gap between chunks")
    p.add_argument("--targets", default=",".join(TARGETS))
    p.add_argument("--no-install", action="store_true",
                   help="skip targets whose package is missing instead of installing it")
    p.add_argument("--bench-venv", type=Path, default=Path(".modelplane/bench-venv"))


def run(args: argparse.Namespace) -> int:
    targets = [t for t in args.targets.split(",") if t]
    tools = _tools(args.bench_venv, targets, install=not args.no_install)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mp-bench-") as tmp:
        rows += _nonstream(args, targets, tools, Path(tmp))
        rows += _stream(args, targets, tools, Path(tmp))
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        _print_table(rows)
    return 0


def _nonstream(args: argparse.Namespace, targets: list[str], tools: dict[str, str],
               tmp: Path) -> list[dict[str, Any]]:
    rows = []
    with _backend(tmp, itl_ms=0.0, tokens=16) as backend, _targets(targets, tools, backend,
                                                                     tmp) as urls:
        for target, url in [("direct", backend), *urls.items()]:
            _load(url, target, mode="nonstream", rate=50, duration=1.0)  # warm up
        for rate in (float(r) for r in args.rates.split(",")):
            base = _load(backend, "direct", "nonstream", rate=rate, duration=args.duration)
            rows.append(_row("direct", "nonstream", base, base, rate_rps=rate))
            for target, url in urls.items():
                got = _load(url, target, "nonstream", rate=rate, duration=args.duration)
                rows.append(_row(target, "nonstream", got, base, rate_rps=rate))
                _settle(target)
    return rows


def _stream(args: argparse.Namespace, targets: list[str], tools: dict[str, str],
            tmp: Path) -> list[dict[str, Any]]:
    rows = []
    with _backend(tmp, itl_ms=args.itl_ms, tokens=args.stream_tokens) as backend, \
            _targets(targets, tools, backend, tmp) as urls:
        n, d = args.streams, args.duration
        base = _load(backend, "direct", "stream", concurrency=n, duration=d)
        rows.append(_row("direct", "stream", base, base, concurrency=n))
        for target, url in urls.items():
            got = _load(url, target, "stream", concurrency=n, duration=d)
            rows.append(_row(target, "stream", got, base, concurrency=n))
            _settle(target)
    return rows


def _row(target: str, mode: str, got: dict[str, Any], base: dict[str, Any],
         **key: float) -> dict[str, Any]:
    lat = ("ttft_p50_ms", "ttft_p99_ms") if mode == "stream" else ("p50_ms", "p99_ms")

    def added(name: str) -> float | None:
        a, b = got.get(name), base.get(name)
        return None if a is None or b is None else round(a - b, 3)

    row: dict[str, Any] = {"target": target, "mode": mode, **key,
                           "added_p50_ms": added(lat[0]), "added_p99_ms": added(lat[1]),
                           "achieved_rps": round(got["achieved_rps"], 1),
                           "error_rate": round(got["error_rate"], 5),
                           "p50_ms": _r(got.get(lat[0])), "p99_ms": _r(got.get(lat[1])),
                           "load1": round(os.getloadavg()[0], 2)}
    if mode == "stream":
        row["chunk_gap_added_p50_ms"] = added("gap_p50_ms")
        row["chunk_gap_added_p99_ms"] = added("gap_p99_ms")
    return row


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def _load(url: str, target: str, mode: str, *, duration: float, rate: float = 0,
          concurrency: int = 0) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "modelplane.routing.loadgen", "--url", url, "--mode", mode,
           "--duration", str(duration), "--rate", str(rate), "--concurrency", str(concurrency),
           "--max-tokens", "16" if mode == "nonstream" else "0",
           "--api-key", LITELLM_KEY]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration * 4 + 120,
                         check=False)
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
def _process(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[int]:
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})}, start_new_session=True)
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
def _backend(tmp: Path, *, itl_ms: float, tokens: int) -> Iterator[str]:
    port = _free_port()
    cmd = [sys.executable, "-m", "modelplane.routing.stub", "--port", str(port), "--name",
           "bench", "--tokens", str(tokens), "--itl-ms", str(itl_ms)]
    with _process(cmd, tmp / f"backend-{port}.log"):
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url)
        yield url


@contextmanager
def _targets(targets: list[str], tools: dict[str, str], backend: str,
             tmp: Path) -> Iterator[dict[str, str]]:
    urls: dict[str, str] = {}
    with _stack() as enter:
        for target in targets:
            if target not in tools and target != "modelplane":
                continue
            port = _free_port()
            cmd, env = _command(target, tools, backend, port, tmp)
            _PIDS[target] = enter(_process(cmd, tmp / f"{target}.log", env))
            urls[target] = f"http://127.0.0.1:{port}"
        for target, url in urls.items():
            try:
                _wait_ready(url)
            except RuntimeError:
                print((tmp / f"{target}.log").read_text()[-3000:], file=sys.stderr)
                raise
        yield urls


@contextmanager
def _stack() -> Iterator[Any]:
    from contextlib import ExitStack
    with ExitStack() as stack:
        yield stack.enter_context


def _command(target: str, tools: dict[str, str], backend: str, port: int,
             tmp: Path) -> tuple[list[str], dict[str, str]]:
    if target == "modelplane":
        cfg = tmp / "modelplane.yaml"
        cfg.write_text(json.dumps({
            "deployments": [{"name": "bench", "endpoints": [{"url": backend}],
                             "balancing": {"scrape_metrics": False}}],
            "routes": [{"model": "bench", "variants": [{"name": "a", "deployment": "bench"}]}]}))
        return ([sys.executable, "-m", "modelplane.cli.main", "router", "--config", str(cfg),
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


def _print_table(rows: list[dict[str, Any]]) -> None:
    cols = ("target", "mode", "rate_rps", "concurrency", "added_p50_ms", "added_p99_ms",
            "achieved_rps", "error_rate", "chunk_gap_added_p50_ms", "chunk_gap_added_p99_ms")
    print(" | ".join(cols))
    for row in rows:
        print(" | ".join(str(row.get(c, "")) for c in cols))
