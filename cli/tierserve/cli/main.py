"""The ``tierserve`` command: one entry point, one subcommand per capability.

Each subcommand lives in the package that owns it and exposes
``register(subparsers) -> None``; the table below is the only place that knows them
all, and it imports lazily so ``tierserve render`` never pays for Ray or Triton.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from importlib import metadata

from tierserve.core.cliflags import configure_logging

# subcommand -> module exposing register(subparsers)
SUBCOMMANDS: dict[str, str] = {
    "render": "tierserve.cli.render",
    "crds": "tierserve.cli.crds",
    "check": "tierserve.cli.check",
    "operator": "tierserve.cli.operator",
    "engine": "tierserve.engine.cli",
    "storage-init": "tierserve.engine.storage_cli",
    "router": "tierserve.routing.cli",
    "autoscaler": "tierserve.autoscaler.cli",
    "sim": "tierserve.autoscaler.sim_cli",
    "dashboards": "tierserve.dashboards.cli",
}


def _plain(text: str) -> str:
    """A docstring line for ``--help``: reStructuredText literals as plain words."""
    return text.replace("``", "")


def _version(prog: str) -> str:
    dist = "tierserve-dev" if prog == "tierserve-dev" else "tierserve"
    try:
        return f"{prog} {metadata.version(dist)}"
    except metadata.PackageNotFoundError:  # run from a checkout without installing
        return f"{prog} (not installed)"


def build_parser(argv: Sequence[str], prog: str = "tierserve", doc: str = __doc__ or "",
                 table: dict[str, str] = SUBCOMMANDS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=_plain(doc.splitlines()[0]))
    parser.add_argument("--version", action="version", version=_version(prog),
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = argv[0] if argv and not argv[0].startswith("-") else None
    for name, module in table.items():
        if wanted is not None and name != wanted:
            sub.add_parser(name, help=f"(see {prog} {name} --help)")
            continue
        try:
            importlib.import_module(module).register(sub)
        except ModuleNotFoundError as exc:
            if wanted is not None:
                raise
            sub.add_parser(name, help=f"unavailable: {exc}")
    return parser


def run(prog: str, doc: str, table: dict[str, str], argv: Sequence[str] | None) -> int:
    """Parse ``argv`` against ``table`` (subcommand -> module) and run the chosen one."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list, prog, doc, table)
    args = parser.parse_args(args_list)
    if getattr(args, "log_level", None):  # every subcommand has --log-level (cliflags)
        configure_logging(args.log_level)
    result = args.func(args)
    return int(result or 0)


def main(argv: Sequence[str] | None = None) -> int:
    return run("tierserve", __doc__ or "", SUBCOMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
