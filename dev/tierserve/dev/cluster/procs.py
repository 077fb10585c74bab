"""Start, watch and stop the cluster's processes by pid.

Each process gets ``<state>/pids/<name>.pid`` holding its pid and its kernel start time
(``/proc/<pid>/stat`` field 22), so ``down`` never signals a recycled pid that now
belongs to somebody else. Processes run in their own session with output in
``<state>/logs/<name>.log``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

# Re-exported: the cluster code waits through ``procs``; the helper lives in one place.
from tierserve.dev.waiting import WaitTimeout as WaitTimeout
from tierserve.dev.waiting import wait_until as wait_until


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports on 127.0.0.1 (all held open while choosing)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                 for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def free_port() -> int:
    return free_ports(1)[0]


def stat_fields(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` from field 3 (state) on: index 1 is the ppid, 11 and 12 the
    user and system ticks, 19 the start time; None when the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces; everything after ')' is well formed
    return raw[raw.rindex(")") + 2:].split()


def start_time(pid: int) -> str | None:
    fields = stat_fields(pid)
    return fields[19] if fields else None


def _running(pid: int, started: str | None) -> bool:
    fields = stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return started is None or fields[19] == started


def read_pidfile(pidfile: Path) -> tuple[int, str | None] | None:
    try:
        parts = pidfile.read_text().split()
        return int(parts[0]), parts[1] if len(parts) > 1 else None
    except (OSError, ValueError, IndexError):
        return None


def is_running(pidfile: Path) -> bool:
    entry = read_pidfile(pidfile)
    return entry is not None and _running(*entry)


def start(name: str, argv: Sequence[str], state: Path,
          env: dict[str, str] | None = None) -> int:
    """Launch ``argv`` detached, logging to ``logs/<name>.log``; record its pid."""
    (state / "logs").mkdir(parents=True, exist_ok=True)
    (state / "pids").mkdir(parents=True, exist_ok=True)
    with open(state / "logs" / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=state, env=env)
    (state / "pids" / f"{name}.pid").write_text(f"{proc.pid} {start_time(proc.pid) or ''}\n")
    return proc.pid


def _gone(pid: int, started: str | None) -> bool:
    """Reap ``pid`` if it is our child, then report whether it is no longer running."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    return not _running(pid, started)


def stop(pidfile: Path, timeout: float = 10.0) -> bool:
    """SIGTERM the recorded process, SIGKILL after ``timeout``; True if one was stopped."""
    entry = read_pidfile(pidfile)
    if entry is None or not _running(*entry):
        pidfile.unlink(missing_ok=True)
        return False
    pid, started = entry
    os.kill(pid, signal.SIGTERM)
    try:
        wait_until(lambda: _gone(pid, started), timeout, f"pid {pid} to exit", interval=0.1)
    except WaitTimeout:
        if _running(pid, started):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: _gone(pid, started), 5.0, f"pid {pid} to die", interval=0.1)
    pidfile.unlink(missing_ok=True)  # only now: an interrupted stop can be retried
    return True


def terminate(proc: subprocess.Popen[bytes], grace_s: float = 20.0) -> None:
    """Stop a child this process started: SIGTERM, then SIGKILL after ``grace_s``."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def log_tail(state: Path, name: str, lines: int = 30) -> str:
    path = state / "logs" / f"{name}.log"
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
