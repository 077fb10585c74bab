"""Draw a dashboard from live Prometheus data into one PNG, for people without Grafana
(the demo, the docs, a bug report).

It reads the dashboard's own JSON (the panels' queries, units, layout and the dashed
reference lines, see :mod:`tierserve.dashboards.queries`), asks Prometheus'
``query_range`` API for every query, and lays the panels out on Grafana's 24-column
grid with matplotlib's Agg canvas (no display, no pyplot state).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from tierserve.dashboards.queries import PanelQuery, annotation_queries, defaults, panel_queries
from tierserve.dashboards.units import format_value

Series = tuple[dict[str, str], list[float], list[float]]  # labels, times, values
COL_IN, ROW_IN = 0.8, 0.42  # inches per grid column and grid row
DAY = 86400.0  # matplotlib's date axis counts days since 1970


class RangeSource(Protocol):
    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        ...


@dataclass(frozen=True)
class Window:
    start: float
    end: float
    step: float


@dataclass(frozen=True)
class PrometheusRange:
    """Prometheus' ``/api/v1/query_range``; a query error raises, naming the query."""

    url: str
    timeout_s: float = 30.0

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}",
                  "step": f"{max(step, 0.001):.3f}"}
        url = self.url.rstrip("/") + "/api/v1/query_range?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # a bad query: 400 with the error in JSON
            body = _error_body(exc)
        except OSError as exc:
            raise RuntimeError(f"query_range {expr!r} at {self.url}: {exc}") from exc
        if body.get("status") != "success":
            raise RuntimeError(f"query_range {expr!r}: {body.get('error', body)}")
        return [(r["metric"], [float(t) for t, _ in r["values"]],
                 [float(v) for _, v in r["values"]]) for r in body["data"]["result"]]


def _error_body(exc: urllib.error.HTTPError) -> dict[str, Any]:
    try:
        body: dict[str, Any] = json.loads(exc.read())
    except ValueError:
        body = {"error": f"HTTP {exc.code}"}
    return body


def legend(fmt: str, labels: Mapping[str, str]) -> str:
    """Grafana's ``{{label}}`` legend format (a label the series lacks prints empty)."""
    out = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt)
    return " ".join(out.split()) or "value"


def _times(ts: Sequence[float]) -> list[dt.datetime]:
    return [dt.datetime.fromtimestamp(t, tz=dt.UTC) for t in ts]


def _clock(t: float) -> str:
    return f"{dt.datetime.fromtimestamp(t, tz=dt.UTC):%H:%M:%S}"


def _lines(panel: Mapping[str, Any]) -> list[float]:
    """Fixed thresholds that the panel draws dashed."""
    d = panel.get("fieldConfig", {}).get("defaults", {})
    if "dashed" not in (d.get("custom", {}).get("thresholdsStyle", {}).get("mode") or ""):
        return []
    return [s["value"] for s in d.get("thresholds", {}).get("steps", []) if s.get("value")]


def _timeseries(ax: Axes, panel: Mapping[str, Any], data: list[tuple[PanelQuery, Series]],
                unit: str, events: Sequence[float]) -> None:
    for t in events:
        ax.axvline(t / DAY, color="orange", linewidth=0.8, alpha=0.7)
    for q, (labels, ts, vs) in data:
        ax.plot([t / DAY for t in ts], vs, linestyle="--" if q.target else "-",
                linewidth=1.8 if q.target else 1.2, label=legend(q.legend, labels))
    for v in _lines(panel):
        ax.axhline(v, linestyle=":", linewidth=1, color="grey")
    lo, hi = ax.get_ylim()
    if hi - lo < 1e-3 * max(abs(lo), abs(hi), 1e-9):  # flat lines: a readable range
        pad = 0.05 * max(abs(hi), 1e-9)
        ax.set_ylim(lo - pad, hi + pad)
    d = panel.get("fieldConfig", {}).get("defaults", {})
    if d.get("min") is not None:  # the panel's axis bounds, as Grafana applies them
        ax.set_ylim(bottom=d["min"])
    if d.get("max") is not None:  # a little headroom: a line at the bound stays visible
        bottom = ax.get_ylim()[0]
        ax.set_ylim(top=d["max"] + 0.04 * max(d["max"] - bottom, 1e-9))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_value(v, unit)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _clock(v * DAY)))
    ax.xaxis.set_major_locator(MaxNLocator(nbins=max(4, int(panel["gridPos"]["w"]) // 2)))
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    if data:
        ax.legend(fontsize=6, loc="upper left", ncol=2 if len(data) > 4 else 1,
                  framealpha=0.6)


def _last(vs: Sequence[float]) -> float:
    return next((v for v in reversed(vs) if not math.isnan(v)), math.nan)


def _stat(ax: Axes, data: list[tuple[PanelQuery, Series]], unit: str) -> None:
    ax.set_axis_off()
    n = max(len(data), 1)
    for i, (q, (labels, _, vs)) in enumerate(data):
        x = (i + 0.5) / n
        ax.text(x, 0.5, format_value(_last(vs), unit), ha="center", va="center",
                fontsize=16, weight="bold", transform=ax.transAxes)
        ax.text(x, 0.15, legend(q.legend, labels), ha="center", fontsize=7,
                transform=ax.transAxes)


def _le(labels: Mapping[str, str]) -> float:
    return float(labels.get("le", "+Inf"))


def _bound(le: float, unit: str) -> str:
    return "+Inf" if math.isinf(le) else format_value(le, unit)


def _heatmap(ax: Axes, data: list[tuple[PanelQuery, Series]], unit: str) -> None:
    """Cumulative ``le`` buckets -> requests per bucket per step, one row per bucket."""
    buckets = sorted((s for _, s in data), key=lambda s: _le(s[0]))
    if not buckets:
        return
    times = sorted({t for _, ts, _ in buckets for t in ts})
    grid = [[dict(zip(ts, vs, strict=True)).get(t, 0.0) for t in times] for _, ts, vs in buckets]
    rows = [grid[0]] + [[max(b - a, 0.0) for a, b in zip(lo, hi, strict=True)]
                        for lo, hi in itertools.pairwise(grid)]
    ax.imshow(rows, aspect="auto", origin="lower", cmap="Oranges", interpolation="nearest")
    step = max(len(buckets) // 8, 1)
    ax.set_yticks(range(0, len(buckets), step),
                  [_bound(_le(b[0]), unit) for b in buckets][::step], fontsize=6)
    ticks = range(0, len(times), max(len(times) // 5, 1))
    ax.set_xticks(list(ticks), [_clock(times[i]) for i in ticks],
                  fontsize=6)


def _draw(ax: Axes, panel: Mapping[str, Any], data: list[tuple[PanelQuery, Series]],
          events: Sequence[float]) -> None:
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit") or ""
    ax.set_title(panel["title"], fontsize=9, loc="left")
    if not data:
        ax.text(0.5, 0.5, "No data", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    kind = panel["type"]
    if kind == "stat":
        _stat(ax, data, unit)
    elif kind == "heatmap":
        _heatmap(ax, data, unit)
    else:
        _timeseries(ax, panel, data, unit, events)


def fetch(dash: Mapping[str, Any], source: RangeSource, window: Window,
          values: Mapping[str, str], rate_interval: str) -> dict[str, list[tuple[PanelQuery,
                                                                                  Series]]]:
    """Panel title -> every series of every query of that panel."""
    got: dict[str, list[tuple[PanelQuery, Series]]] = {}
    for q in panel_queries(dash, values, rate_interval):
        series = source.query_range(q.expr, window.start, window.end, window.step)
        got.setdefault(q.panel, []).extend((q, s) for s in series)
    return got


def annotation_times(dash: Mapping[str, Any], source: RangeSource, window: Window,
                values: Mapping[str, str], rate_interval: str) -> list[float]:
    """Times where an annotation query (scale events) has a non-zero sample; drawn as
    vertical lines, as Grafana draws them."""
    times: set[float] = set()
    for expr in annotation_queries(dash, defaults(dash, values), rate_interval).values():
        for _, ts, vs in source.query_range(expr, window.start, window.end, window.step):
            # a run of samples (the query's lookback) is one event, at its start
            times.update(t for i, (t, v) in enumerate(zip(ts, vs, strict=True))
                         if v > 0 and (i == 0 or ts[i - 1] < t - 1.5 * window.step))
    return sorted(times)


def _axes(fig: Figure, grid: Mapping[str, float], rows: float) -> Axes:
    # room on the left for the y tick labels, which matplotlib draws outside the axes
    pad_left, pad_right, pad_y = 0.035, 0.008, 0.5 / rows
    left = grid["x"] / 24 + pad_left
    width = grid["w"] / 24 - pad_left - pad_right
    top = 1 - grid["y"] / rows
    height = grid["h"] / rows - 2.2 * pad_y
    return fig.add_axes((left, top - grid["h"] / rows + 1.2 * pad_y, width, height))


def render(dash: Mapping[str, Any], source: RangeSource, window: Window, out: Path,
           values: Mapping[str, str] | None = None, rate_interval: str = "1m") -> Path:
    """Draw ``dash`` into ``out/<uid>.png``; returns the path."""
    values = dict(values or {})
    data = fetch(dash, source, window, values, rate_interval)
    events = annotation_times(dash, source, window, values, rate_interval)
    rows = 2 + max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dash["panels"])
    fig = Figure(figsize=(24 * COL_IN, rows * ROW_IN), dpi=80)
    chosen = {k: v for k, v in defaults(dash, values).items() if k != "datasource"}
    start, end = _times([window.start, window.end])
    span = f"{start:%Y-%m-%d %H:%M:%S} to {end:%H:%M:%S} UTC"
    fig.suptitle(f"{dash['title']}    {span}    " + ", ".join(
        f"{k}={v}" for k, v in chosen.items()), fontsize=12, x=0.01, ha="left")
    for p in dash["panels"]:
        grid = dict(p["gridPos"], y=p["gridPos"]["y"] + 2)
        if p["type"] == "row":
            fig.text(0.01, 1 - (grid["y"] + 0.7) / rows, p["title"], fontsize=11, weight="bold")
            continue
        _draw(_axes(fig, grid, rows), p, data.get(p["title"], []), events)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{dash['uid']}.png"
    fig.savefig(path)
    return path

