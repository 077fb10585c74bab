"""Grafana unit ids (the ones the dashboards use) as text, for the snapshot's axes and
numbers. Unknown units print the plain number: a snapshot never fails on a unit."""

from __future__ import annotations

import math

_SI = ((1e9, "G"), (1e6, "M"), (1e3, "k"))


def _short(v: float) -> str:
    for scale, suffix in _SI:
        if abs(v) >= scale:
            return f"{v / scale:.3g}{suffix}"
    return f"{v:.3g}"


def _seconds(v: float) -> str:
    a = abs(v)
    if a == 0:
        return "0 s"
    if a < 1e-3:
        return f"{v * 1e6:.3g} µs"
    if a < 1:
        return f"{v * 1e3:.3g} ms"
    if a < 120:
        return f"{v:.3g} s"
    return f"{v / 60:.3g} min"


def format_value(v: float, unit: str) -> str:
    if math.isnan(v):
        return "n/a"
    if unit == "s":
        return _seconds(v)
    if unit == "percentunit":
        return f"{v * 100:.3g} %"
    if unit == "currencyUSD":
        return f"${v:,.2f}" if abs(v) >= 0.01 or v == 0 else f"${v:.2g}"
    if unit == "reqps":
        return f"{_short(v)} req/s"
    if unit == "ops":
        return f"{_short(v)} /s"
    if unit == "x":
        return f"{v:.3g}x"
    if unit.startswith("suffix:"):
        return f"{_short(v)}{unit.removeprefix('suffix:')}"
    return _short(v)
