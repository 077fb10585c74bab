"""``tierserve dashboards snapshot`` against a fake Prometheus (an HTTP server answering
``/api/v1/query_range`` with canned matrices): one PNG per dashboard, every panel's
every query asked for over the requested range, query errors reported with the query."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tierserve.cli.main import main
from tierserve.dashboards import generate
from tierserve.dashboards.queries import annotation_queries, panel_queries
from tierserve.dashboards.snapshot import (
    PrometheusRange,
    Window,
    annotation_times,
    fetch,
    legend,
    render,
)
from tierserve.dashboards.units import format_value

START, END = 1_700_000_000.0, 1_700_000_600.0


def _matrix(query: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
    times = [start + i * step for i in range(int((end - start) / step) + 1)]
    if "_bucket" in query and query.startswith("sum by (le)"):
        return [{"metric": {"le": le}, "values": [[t, str(n * (i + 1))] for i, t in
                                                  enumerate(times)]}
                for le, n in (("0.1", 1), ("1", 3), ("+Inf", 4))]
    labels = {"namespace": "team", "deployment": "chat", "route": "r", "variant": "a",
              "tier": "fast", "reason": "low_confidence", "kind": "deployment"}
    return [{"metric": labels, "values": [[t, str(0.5 + 0.1 * (i % 5))]
                                          for i, t in enumerate(times)]}]


class FakePrometheus(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.asked: list[dict[str, str]] = []
        self.fail_on: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FakePrometheus

    def do_GET(self) -> None:
        u = urllib.parse.urlsplit(self.path)
        q = {k: v[0] for k, v in urllib.parse.parse_qs(u.query).items()}
        self.server.asked.append(q)
        body: dict[str, Any]
        if u.path != "/api/v1/query_range" or q["query"] == self.server.fail_on:
            body = {"status": "error", "errorType": "bad_data", "error": "parse error"}
            code = 400
        else:
            result = _matrix(q["query"], float(q["start"]), float(q["end"]), float(q["step"]))
            body, code = {"status": "success",
                          "data": {"resultType": "matrix", "result": result}}, 200
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def prom() -> Iterator[FakePrometheus]:
    server = FakePrometheus()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_snapshot_writes_the_png_and_asks_every_query(
        prom: FakePrometheus, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two dashboards drawn (every panel kind: stat, time series, heatmap, annotations),
    to keep the drawing time small; every query of all five is asked by fetch below."""
    drawn = ["tierserve-fleet", "tierserve-deployment"]
    rc = main(["dashboards", "snapshot", "--prometheus", prom.url, "--from", str(START),
               "--to", str(END), "--out", str(tmp_path), "--var", "namespace=team",
               "--rate-interval", "30s", *(a for uid in drawn for a in ("--dashboard", uid))])
    assert rc == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / f"{u}.png") for u in drawn]
    for uid in drawn:
        assert (tmp_path / f"{uid}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {(q["start"], q["end"], q["step"]) for q in prom.asked} == {
        (f"{START:.3f}", f"{END:.3f}", f"{(END - START) / 240:.3f}")}
    dashes = [d for d in generate.as_dicts() if d["uid"] in drawn]
    assert {q["query"] for q in prom.asked} == _expected(dashes)


def _expected(dashes: list[dict[str, Any]]) -> set[str]:
    values = {"namespace": "team"}
    return ({q.expr for d in dashes for q in panel_queries(d, values, "30s")}
            | {e for d in dashes for e in annotation_queries(d, values, "30s").values()})


def test_fetch_asks_every_panel_query_of_every_dashboard(prom: FakePrometheus) -> None:
    source = PrometheusRange(prom.url)
    for dash in generate.as_dicts():
        got = fetch(dash, source, Window(START, END, 60), {"namespace": "team"}, "30s")
        assert set(got) == {q.panel for q in panel_queries(dash)}, dash["uid"]
        assert all(got.values()), dash["uid"]
    asked = {q["query"] for q in prom.asked}
    assert asked == {q.expr for d in generate.as_dicts()
                     for q in panel_queries(d, {"namespace": "team"}, "30s")}
    assert all('namespace=~"team"' in q for q in asked if "namespace" in q)


def test_unknown_dashboard_is_refused(prom: FakePrometheus, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="--dashboard nope: no such dashboard"):
        main(["dashboards", "snapshot", "--prometheus", prom.url, "--from", "now-5m",
              "--out", str(tmp_path), "--dashboard", "nope"])


def test_a_failing_query_is_named(prom: FakePrometheus, tmp_path: Path) -> None:
    dash = generate.as_dicts()[0]
    bad = panel_queries(dash)[0].expr
    prom.fail_on = bad
    with pytest.raises(RuntimeError, match="parse error") as err:
        render(dash, PrometheusRange(prom.url), Window(START, END, 10), tmp_path)
    assert bad in str(err.value)


def test_empty_results_still_draw(tmp_path: Path) -> None:
    class Empty:
        def query_range(self, expr: str, start: float, end: float,
                        step: float) -> list[Any]:
            return []

    path = render(generate.as_dicts()[4], Empty(), Window(START, END, 10), tmp_path)
    assert path.stat().st_size > 0


def test_legend_and_units() -> None:
    assert legend("{{deployment}} p95", {"deployment": "chat"}) == "chat p95"
    assert legend("{{route}} {{variant}}", {"route": "r"}) == "r"
    assert format_value(0.25, "s") == "250 ms"
    assert format_value(0.995, "percentunit") == "99.5 %"
    assert format_value(1234.0, "suffix: tok/s") == "1.23k tok/s"
    assert format_value(3.5, "currencyUSD") == "$3.50"


def test_a_run_of_annotation_samples_is_one_event() -> None:
    """``changes(...[1m]) > 0`` stays true for its lookback: one event per run, at its
    start (as Grafana draws one region), not one line per step."""
    class Runs:
        def query_range(self, expr: str, start: float, end: float,
                        step: float) -> list[Any]:
            return [({}, [10.0, 20.0, 30.0, 80.0, 90.0], [1.0, 1.0, 1.0, 1.0, 1.0])]

    dash = generate.as_dicts()[1]
    assert annotation_times(dash, Runs(), Window(0, 100, 10), {}, "30s") == [10.0, 80.0]
