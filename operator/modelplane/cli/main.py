"""The ``modelplane`` command: one entry point, one subcommand per capability.

Each subcommand lives in the package that owns it and exposes
``register(subparsers) -> None``; the table below is the only place that knows them
all, and it imports lazily so ``modelplane render`` never pays for Ray or Triton.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand -> module exposing register(subparsers)
SUBCOMMANDS: dict[str, str] = {
    "render": "modelplane.cli.render",
    "crds": "modelplane.cli.crds",
    "operator": "modelplane.operator.cli",
    "cluster": "modelplane.devcluster.cli",
    "engine": "modelplane.engine.cli",
    "router": "modelplane.routing.cli",
    "autoscaler": "modelplane.autoscaler.cli",
    "sim": "modelplane.autoscaler.sim_cli",
    "bench": "modelplane.bench.cli",
    "demo": "modelplane.cli.demo",
}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelplane", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = argv[0] if argv and not argv[0].startswith("-") else None
    for name, module in SUBCOMMANDS.items():
        if wanted is not None and name != wanted:
            sub.add_parser(name, help=f"(see modelplane {name} --help)")
            continue
        try:
            importlib.import_module(module).register(sub)
        except ModuleNotFoundError as exc:
            if wanted is not None:
                raise
            sub.add_parser(name, help=f"unavailable: {exc}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    result = args.func(args)
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
