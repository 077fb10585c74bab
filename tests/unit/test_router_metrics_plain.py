"""The router's per-request series, kept as plain numbers, expose exactly what
prometheus_client's own Counter and Histogram expose for the same values (less the
``_created`` samples)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from tierserve.routing.metrics import CounterFamily, HistogramFamily

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 1, 2.5, 120)
VALUES = (0.0001, 0.0005, 0.0007, 0.003, 0.01, 0.5, 1.0, 2.5, 119.0, 200.0)


def _lines(registry: CollectorRegistry) -> list[str]:
    return [line for line in generate_latest(registry).decode().splitlines()
            if "_created" not in line]


def test_histogram_and_counter_match_prometheus_client() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    h = HistogramFamily("x_seconds", "doc", ("route", "tier"), ours, BUCKETS)
    c = CounterFamily("x_requests", "doc", ("route",), ours)
    ph = Histogram("x_seconds", "doc", ("route", "tier"), buckets=BUCKETS, registry=theirs)
    pc = Counter("x_requests", "doc", ("route",), registry=theirs)
    for i, v in enumerate(VALUES):
        route = "a" if i % 3 else "b"
        h.labels(route, "fast").observe(v)
        ph.labels(route, "fast").observe(v)
        c.labels(route).inc()
        pc.labels(route).inc()
    c.labels("a").inc(2.5)
    pc.labels("a").inc(2.5)
    assert _lines(ours) == _lines(theirs)
    assert ours.get_sample_value("x_seconds_bucket",
                                 {"route": "b", "tier": "fast", "le": "0.0005"}) == 1.0


def test_a_name_registered_twice_is_refused() -> None:
    registry = CollectorRegistry()
    CounterFamily("x_requests", "doc", ("route",), registry)
    try:
        Counter("x_requests", "doc", ("route",), registry=registry)
    except ValueError as exc:
        assert "Duplicated" in str(exc)
    else:
        raise AssertionError("a duplicate metric name was accepted")
