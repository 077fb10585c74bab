"""CPU time of this process's descendants during a replay, by role.

On two cores every process of the stack (Ray's GCS and raylet, the Serve controller and
proxy, the ingress, the llama.cpp replicas, the router, this client) competes with the
replicas' decode steps, so where the CPU goes tells a setting that runs slower from one
that does more work. :class:`CpuSampler` reads ``/proc`` (Linux) every ``interval_s``
and keeps, per process, the last cumulative user + system time it saw (a process that
exits mid-run keeps what it had used by its last sample); ``roles()`` sums the
difference from the first sample by role, the process title Ray sets for its workers
(``ray::ServeReplica:<app>:<deployment>`` and so on) or the program's name.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tierserve.dev.cluster.procs import stat_fields

PROC = Path("/proc")
TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcSample:
    pid: int
    ppid: int
    cpu_s: float
    role: str


def _read(pid: int) -> ProcSample | None:
    fields = stat_fields(pid)
    if fields is None:  # gone since listed
        return None
    try:
        cmd = (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return None
    ppid, utime, stime = int(fields[1]), int(fields[11]), int(fields[12])
    return ProcSample(pid, ppid, (utime + stime) * TICK_S, role_of(cmd))


def role_of(cmdline: str) -> str:
    """``ray::ServeReplica:replay--smollm2:LlamaCppEngine`` -> ``LlamaCppEngine``; a
    Ray worker by its actor's class; ``python -m X`` by ``X`` (the CLI with its
    subcommand); otherwise the program's name."""
    words = cmdline.split()
    if not words:
        return "?"
    if words[0].startswith("ray::"):
        return words[0].rsplit(":", 1)[-1] or words[0]
    if len(words) > 2 and words[1] == "-m":
        return " ".join(words[2:4]) if words[2] == "tierserve.cli.main" else words[2]
    return Path(words[0]).name


def descendants(root: int) -> list[ProcSample]:
    """Every live process under ``root`` (``root`` included)."""
    samples = [s for p in PROC.iterdir() if p.name.isdigit() and (s := _read(int(p.name)))]
    children: dict[int, list[ProcSample]] = {}
    for s in samples:
        children.setdefault(s.ppid, []).append(s)
    found = [s for s in samples if s.pid == root]
    todo = [root]
    while todo:
        kids = children.get(todo.pop(), [])
        found.extend(kids)
        todo.extend(k.pid for k in kids)
    return found


@dataclass
class CpuSampler:
    """``async with CpuSampler() as cpu: ...``, then ``cpu.roles()``."""

    root: int = field(default_factory=os.getpid)
    interval_s: float = 1.0
    _first: dict[int, float] = field(default_factory=dict)
    _last: dict[int, ProcSample] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    def sample(self, baseline: bool = False) -> None:
        """Record every live descendant. A process first seen in the baseline counts
        from what it had used by then, one born later from 0."""
        for s in descendants(self.root):
            self._first.setdefault(s.pid, s.cpu_s if baseline else 0.0)
            self._last[s.pid] = s

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await asyncio.to_thread(self.sample)

    async def __aenter__(self) -> CpuSampler:
        self.sample(baseline=True)
        self._task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.sample()

    def roles(self) -> Mapping[str, dict[str, float]]:
        """Per role: CPU seconds used over the sampled span and processes seen."""
        out: dict[str, dict[str, float]] = {}
        for pid, s in self._last.items():
            row = out.setdefault(s.role, {"cpu_s": 0.0, "procs": 0})
            row["cpu_s"] = round(row["cpu_s"] + s.cpu_s - self._first[pid], 2)
            row["procs"] += 1
        return dict(sorted(out.items(), key=lambda kv: -kv[1]["cpu_s"]))
