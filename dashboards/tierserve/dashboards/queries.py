"""Every query of a dashboard's JSON with its template variables substituted: what the
live test runs against Prometheus and what the snapshot draws.

Works on Grafana's JSON model (plain dicts), so it needs neither the SDK nor Grafana.
Variables get a value from ``values`` or, when absent, Grafana's "All" (``.*``, the
``allValue`` the dashboards set); the interval macros get ``rate_interval``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

ALL = ".*"
_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")
_MACROS = ("__rate_interval", "__interval", "__range")


@dataclass(frozen=True)
class PanelQuery:
    """One query of one panel, ready to send to Prometheus."""

    dashboard: str  # uid
    panel: str  # title
    ref: str
    expr: str
    legend: str
    unit: str
    kind: str  # timeseries, stat, heatmap
    target: bool  # a reference line (SLO target, objective), drawn dashed


def substitute(expr: str, values: Mapping[str, str], rate_interval: str = "1m") -> str:
    """``expr`` with ``$var``/``${var}`` replaced (unknown names raise, naming them)."""
    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name in _MACROS:
            return rate_interval
        if name in values:
            return values[name]
        raise KeyError(f"{expr!r} uses ${name}, which no variable defines")

    return _VAR.sub(one, expr)


def variable_names(dash: Mapping[str, Any]) -> list[str]:
    return [v["name"] for v in dash.get("templating", {}).get("list", [])]


def defaults(dash: Mapping[str, Any], values: Mapping[str, str]) -> dict[str, str]:
    """Every variable's value: the given one, else All."""
    filled = {name: ALL for name in variable_names(dash)}
    filled.update(values)
    return filled


def panels(dash: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The dashboard's panels in order (rows are headings, not panels)."""
    for p in dash.get("panels", []):
        if p.get("type") == "row":
            yield from p.get("panels", [])
        else:
            yield p


def target_refs(panel: Mapping[str, Any]) -> set[str]:
    """refIds whose field override draws them as a dashed reference line."""
    refs = set()
    for o in panel.get("fieldConfig", {}).get("overrides", []):
        matcher = o.get("matcher", {})
        dashed = any(p.get("id") == "custom.lineStyle" and p.get("value", {}).get("fill")
                     == "dash" for p in o.get("properties", []))
        if matcher.get("id") == "byFrameRefID" and dashed:
            refs.add(matcher.get("options"))
    return refs


def unit(panel: Mapping[str, Any]) -> str:
    return str(panel.get("fieldConfig", {}).get("defaults", {}).get("unit") or "")


def panel_queries(dash: Mapping[str, Any], values: Mapping[str, str] | None = None,
                  rate_interval: str = "1m") -> list[PanelQuery]:
    filled = defaults(dash, values or {})
    out = []
    for p in panels(dash):
        refs = target_refs(p)
        for t in p.get("targets", []):
            out.append(PanelQuery(
                dash["uid"], p["title"], t.get("refId", ""),
                substitute(t["expr"], filled, rate_interval), t.get("legendFormat", ""),
                unit(p), p["type"], t.get("refId") in refs))
    return out


def annotation_queries(dash: Mapping[str, Any], values: Mapping[str, str] | None = None,
                       rate_interval: str = "1m") -> dict[str, str]:
    """Annotation name -> PromQL (scale events)."""
    filled = defaults(dash, values or {})
    return {a["name"]: substitute(a["expr"], filled, rate_interval)
            for a in dash.get("annotations", {}).get("list", []) if a.get("expr")}


def label_values(query: str) -> tuple[str, str]:
    """``label_values(selector, label)`` -> (selector, label)."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\)\s*", query)
    if m is None:
        raise ValueError(f"not a label_values(selector, label) query: {query!r}")
    return m.group(1), m.group(2)


def variable_queries(dash: Mapping[str, Any]) -> dict[str, str]:
    """Query variable name -> its ``label_values(...)`` query, in dashboard order."""
    return {v["name"]: v["query"] for v in dash.get("templating", {}).get("list", [])
            if v.get("type") == "query"}
