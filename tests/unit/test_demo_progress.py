"""The demo's live view: its lines (pure), in-place redraws on a terminal, and one line at
most every 5 s in a log."""

from __future__ import annotations

import io

from tierserve.dev.demo.progress import LiveView, render
from tierserve.dev.demo.traffic import DemoRecord


def _rec(start: float, ttft: float, end: float, tokens: int = 11, ok: bool = True,
         model: str = "qa") -> DemoRecord:
    return DemoRecord("burst", model, start, start + ttft if ok else None, end, tokens, ok,
                      None if ok else "APIError: boom")


RECORDS = [
    _rec(0, 5.0, 6),  # ended 94 s before now: outside the 30 s window
    _rec(80, 0.2, 81.2),  # TTFT 200 ms, TPOT (1.0 s / 10) 100 ms
    _rec(85, 0.4, 85.9),  # TTFT 400 ms, TPOT 50 ms
    _rec(90, 0, 91, ok=False),
]


def _lines(sent: int | None = None) -> list[str]:
    return render("burst", RECORDS, {"smollm2-ray": 2, "gemma3-triton": 1}, now=100.0,
                  started=35.0, slo_ttft_s=1.0, slo_tpot_s=0.06, sent=sent)


def test_render_shows_phase_counts_window_p95_against_the_slo_and_replicas() -> None:
    phase, counts, latency, replicas = _lines()
    assert phase == "phase burst  elapsed 1:05"
    assert counts == "requests sent 4  answered 3  failed 1"
    # only the two answers of the last 30 s: the 5 s TTFT of the first is not in it
    assert "TTFT p95 400 ms (SLO 1000 ms) ok" in latency
    assert "TPOT p95 100 ms (SLO 60 ms) OVER" in latency
    assert replicas == "replicas gemma3-triton 1  smollm2-ray 2"


def test_render_counts_sent_requests_when_told_and_shows_no_data_as_a_dash() -> None:
    assert _lines(sent=6)[1].startswith("requests sent 6 ")
    lines = render("steady", [], {}, now=1, started=0, slo_ttft_s=1, slo_tpot_s=0.04)
    assert "TTFT p95 - (SLO 1000 ms)" in lines[2] and lines[3] == "replicas -"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_on_a_terminal_every_update_redraws_the_block_in_place() -> None:
    out = Tty()
    view = LiveView(out, 1.0, 0.04, clock=Clock())
    view.update("steady", [], {"a": 1})
    first = out.getvalue()
    assert first.count("\n") == 4 and "\x1b[" not in first
    view.update("steady", [], {"a": 2})
    second = out.getvalue()[len(first):]
    assert second.startswith("\x1b[4F\x1b[J") and "replicas a 2" in second
    view.close()


def test_in_a_log_it_prints_one_line_at_most_every_five_seconds_and_the_last_at_close() -> None:
    out, clock = io.StringIO(), Clock()
    view = LiveView(out, 1.0, 0.04, clock=clock)
    for t, n in ((0, 1), (1, 2), (4.9, 3), (5.0, 4), (6, 5)):
        clock.t = t
        view.update("burst", [], {"a": n})
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "\x1b" not in out.getvalue()
    assert lines[0].startswith("phase burst  elapsed 0:00 | ") and lines[0].endswith("a 1")
    assert lines[1].endswith("a 4")
    view.close()
    assert out.getvalue().splitlines()[-1].endswith("a 5")
    view.close()  # nothing held back any more: prints nothing
    assert len(out.getvalue().splitlines()) == 3
