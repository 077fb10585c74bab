"""``tierserve-dev bench {operator,router,tiers}``: benchmarks that print figures as JSON.

Each target module exposes ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib

TARGETS = {
    "operator": "tierserve.dev.bench.operator",
    "router": "tierserve.dev.bench.router",
    "tiers": "tierserve.dev.bench.tiers",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bench", help="run a benchmark and print its figures")
    inner = p.add_subparsers(dest="target", required=True)
    for name, module_name in TARGETS.items():
        q = inner.add_parser(name, help=f"benchmark the {name}")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            q.set_defaults(func=lambda _a, e=exc: _unavailable(e))
            continue
        module.add_arguments(q)
        q.set_defaults(func=module.run)


def _unavailable(exc: Exception) -> int:
    print(f"benchmark unavailable: {exc}")
    return 2
