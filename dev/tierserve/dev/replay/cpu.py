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

PROC = Path("/proc")
TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcSample:
    pid: int
    ppid: int
    cpu_s: float
    role: str


def _read(pid: int) -> ProcSample | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        cmd = (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:  # gone since listed
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after it
    rest = stat[stat.rindex(")") + 2:].split()
    ppid, utime, stime = int(rest[1]), int(rest[11]), int(rest[12])
    return ProcSample(pid, ppid, (utime + stime) * TICK_S, role_of(cmd))


def role_of(cmdline: str) -> str:
    """``ray::ServeReplica:replay--smollm2:LlamaCppEngine`` -> ``LlamaCppEngine``; a
    Ray worker by its actor's class; otherwise the program (``python -m X`` by ``X``)."""
    words = cmdline.split()
    if not words:
        return "?"
    first = words[0]
    if first.startswith("ray::"):
        return first.rsplit(":", 1)[-1] or first
    if len(words) > 2 and words[1] == "-m":
        return f"{words[2]} {words[3]}" if words[2] == "tierserve.cli.main" and len(
            words) > 3 else words[2]
    return Path(first).name


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

    def sample(self) -> None:
        for s in descendants(self.root):
            self._first.setdefault(s.pid, s.cpu_s if self._task is None else 0.0)
            self._last[s.pid] = s

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await asyncio.to_thread(self.sample)

    async def __aenter__(self) -> CpuSampler:
        self.sample()  # the baseline: what existed before is counted from here
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
