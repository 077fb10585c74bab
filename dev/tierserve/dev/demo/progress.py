"""The demo's live view in the terminal, as people expect from a long-running command.

It shows the phase, the time since the traffic began, requests sent/answered/failed, the
client-side TTFT/TPOT p95 over the last 30 s against the SLO, and the replicas per
deployment. On a terminal it redraws its lines in place (ANSI cursor-up and clear); in a
log (CI, a pipe) it prints one line at most every 5 s instead, so logs stay readable.
:func:`render` is the pure formatting.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TextIO

from tierserve.dev.demo.figures import failed, p95_ms
from tierserve.dev.demo.traffic import DemoRecord

WINDOW_S = 30.0
LOG_INTERVAL_S = 5.0


def _elapsed(seconds: float) -> str:
    whole = max(0, int(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


def _against(name: str, value_ms: float, slo_ms: float) -> str:
    if math.isnan(value_ms):
        return f"{name} p95 - (SLO {slo_ms:g} ms)"
    verdict = "ok" if value_ms <= slo_ms else "OVER"
    return f"{name} p95 {value_ms:.0f} ms (SLO {slo_ms:g} ms) {verdict}"


def render(phase: str, records: Sequence[DemoRecord], replicas: Mapping[str, int], *,
           now: float, started: float, slo_ttft_s: float, slo_tpot_s: float,
           sent: int | None = None) -> list[str]:
    """The view's lines at ``now`` (monotonic seconds, as the records' times); ``sent``
    defaults to the records' count (requests finished)."""
    bad = failed(records)
    ttft, tpot = p95_ms(records, since=now - WINDOW_S)
    counts = "  ".join(f"{name} {n}" for name, n in sorted(replicas.items())) or "-"
    return [f"phase {phase}  elapsed {_elapsed(now - started)}",
            f"requests sent {len(records) if sent is None else sent}  "
            f"answered {len(records) - bad}  failed {bad}",
            f"last {WINDOW_S:g} s: {_against('TTFT', ttft, slo_ttft_s * 1000)}  "
            f"{_against('TPOT', tpot, slo_tpot_s * 1000)}",
            f"replicas {counts}"]


class LiveView:
    """Draws :func:`render`'s lines to ``out`` on each :meth:`update`."""

    def __init__(self, out: TextIO, slo_ttft_s: float, slo_tpot_s: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._out, self._clock = out, clock
        self._slo = (slo_ttft_s, slo_tpot_s)
        self._started = clock()
        isatty = getattr(out, "isatty", None)
        self._tty = bool(isatty and isatty())
        self._drawn = 0  # lines of the last in-place draw, to move back over
        self._printed_at = -math.inf
        self._pending: str | None = None  # the latest log line not printed yet

    def update(self, phase: str, records: Sequence[DemoRecord], replicas: Mapping[str, int],
               *, sent: int | None = None) -> None:
        now = self._clock()
        lines = render(phase, records, replicas, now=now, started=self._started,
                       slo_ttft_s=self._slo[0], slo_tpot_s=self._slo[1], sent=sent)
        if self._tty:
            self._redraw(lines)
            return
        self._pending = " | ".join(lines)
        if now - self._printed_at >= LOG_INTERVAL_S:
            self._print_pending(now)

    def _redraw(self, lines: list[str]) -> None:
        # back to the block's first line, clear to the end of the screen, draw again
        back = f"\x1b[{self._drawn}F\x1b[J" if self._drawn else ""
        self._out.write(back + "".join(line + "\n" for line in lines))
        self._out.flush()
        self._drawn = len(lines)

    def _print_pending(self, now: float) -> None:
        if self._pending is not None:
            self._out.write(self._pending + "\n")
            self._out.flush()
            self._pending, self._printed_at = None, now

    def close(self) -> None:
        """Leave the last state on screen: in a log, print it if it was held back."""
        if not self._tty:
            self._print_pending(self._clock())
        self._drawn = 0
