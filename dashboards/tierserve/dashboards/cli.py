"""``tierserve dashboards``: ``generate`` writes the dashboards' JSON, ``snapshot``
draws them from a live Prometheus into PNG files.

Both need the ``dashboards`` extra (Grafana's SDK, matplotlib); this module imports
neither at start-up, so ``tierserve --help`` works without them, and a missing one is
reported with the extra that brings it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tierserve.core.cliflags import add_log_level

EXTRA = "pip install 'tierserve[dashboards]'"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("dashboards", help="generate the Grafana dashboards or draw snapshots")
    cmds = p.add_subparsers(dest="dashboards_command", required=True, metavar="COMMAND")
    g = cmds.add_parser("generate", help="write the dashboards' JSON")
    g.add_argument("--out", type=Path, action="append", default=[],
                   help="directory to write (repeatable; default: dashboards/json and "
                        "charts/tierserve/dashboards)")
    g.add_argument("--check", action="store_true",
                   help="exit 1 when the files in the output directories are stale")
    add_log_level(g)
    g.set_defaults(func=_generate)
    s = cmds.add_parser("snapshot", help="draw each dashboard from Prometheus into a PNG")
    s.add_argument("--prometheus", required=True, help="Prometheus base URL (HTTP API)")
    s.add_argument("--from", dest="start", required=True, type=parse_time,
                   help="start: Unix seconds, or now-<N>s|m|h")
    s.add_argument("--to", dest="end", default="now", type=parse_time,
                   help="end: Unix seconds, now, or now-<N>s|m|h (default: now)")
    s.add_argument("--out", type=Path, required=True, help="directory for <uid>.png")
    s.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                   help="template variable value (repeatable; default: All)")
    s.add_argument("--dashboard", action="append", default=[], metavar="UID",
                   help="only this dashboard (repeatable; default: all five)")
    s.add_argument("--step-s", type=float, default=0.0,
                   help="query_range step in seconds (default: range / 240)")
    s.add_argument("--rate-interval", default="1m",
                   help="what $__rate_interval stands for (default: 1m)")
    add_log_level(s)
    s.set_defaults(func=_snapshot)


def parse_time(text: str, now: float | None = None) -> float:
    """Unix seconds, ``now`` or ``now-<N><s|m|h|d>``."""
    now = time.time() if now is None else now
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text == "now":
        return now
    if text.startswith("now-") and text[-1:] in units and text[4:-1].isdigit():
        return now - int(text[4:-1]) * units[text[-1]]
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time (Unix seconds, now, or now-<N>s|m|h|d)") from None


def parse_vars(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"--var {item!r}: expected NAME=VALUE")
        out[name] = value
    return out


def _missing(exc: ModuleNotFoundError) -> int:
    print(f"tierserve dashboards needs {exc.name}, from the dashboards extra: {EXTRA}",
          file=sys.stderr)
    return 2


def _generate(args: argparse.Namespace) -> int:
    try:
        from tierserve.dashboards import generate
    except ModuleNotFoundError as exc:
        return _missing(exc)
    outs = args.out or list(generate.OUT_DIRS)
    if args.check:
        stale = [f for out in outs for f in generate.stale_files(out)]
        for f in stale:
            print(f"stale: {f} (run `tierserve dashboards generate`)")
        return 1 if stale else 0
    for path in generate.write(outs):
        print(path)
    return 0


def _snapshot(args: argparse.Namespace) -> int:
    try:
        from tierserve.dashboards import generate, snapshot
    except ModuleNotFoundError as exc:
        return _missing(exc)
    if args.end <= args.start:
        raise SystemExit(f"--to ({args.end}) must be after --from ({args.start})")
    window = snapshot.Window(args.start, args.end, args.step_s or (args.end - args.start) / 240)
    source = snapshot.PrometheusRange(args.prometheus)
    dashboards = generate.as_dicts()
    unknown = set(args.dashboard) - {d["uid"] for d in dashboards}
    if unknown:
        raise SystemExit(f"--dashboard {', '.join(sorted(unknown))}: no such dashboard; have "
                         + ", ".join(d["uid"] for d in dashboards))
    for dash in dashboards:
        if args.dashboard and dash["uid"] not in args.dashboard:
            continue
        path = snapshot.render(dash, source, window, args.out, parse_vars(args.var),
                               args.rate_interval)
        print(path)
    return 0
