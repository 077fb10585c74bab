"""The flags every ``tierserve`` subcommand spells the same way, defined once.

Conventions (``tests/unit/test_cli_conventions.py`` walks every subcommand's parser and
holds them to these):

* ``--log-level LEVEL`` on every subcommand (no ``-v``); :func:`configure_logging` is
  called once, by the dispatcher, before the subcommand runs.
* Cluster access: ``--kubeconfig PATH`` or ``--in-cluster`` (the pod's ServiceAccount
  only), never both; with neither, the pod's ServiceAccount when running in a pod, else
  ``$KUBECONFIG``, else ``~/.kube/config``. Where the cluster is optional the command
  says what neither means: the router reads the cluster only with ``--kubernetes``, the
  autoscaler stays advisory (prints its decisions) without either flag.
* Durations carry their unit in the flag's name: ``-s`` for seconds (``--resync-s``,
  ``--interval-s``), ``-ms`` only where the API states the value in milliseconds
  (``--slo-ttft-ms``, like ``ttftP95Ms``).
* A setting that can be switched either way is a ``BooleanOptionalAction``
  (``--leader-elect`` / ``--no-leader-elect``), never a lone ``--no-X``.
* Every flag has help text, in plain words (no reStructuredText markup).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when used: every command imports this module
    from tierserve.core.builders.common import BuildSettings

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DURATION_SUFFIXES = ("-s", "-ms")


def add_log_level(parser: argparse.ArgumentParser, default: str = "info") -> None:
    parser.add_argument("--log-level", type=str.lower, choices=LOG_LEVELS, default=default,
                        help="log messages at this level and above (default: %(default)s)")


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)


AUTO_ACCESS = ("with neither flag: the pod's ServiceAccount when running in a pod, else "
               "$KUBECONFIG, else ~/.kube/config")


def add_cluster_access(parser: argparse.ArgumentParser, note: str = AUTO_ACCESS) -> None:
    """``--kubeconfig`` / ``--in-cluster``; ``note`` says what neither flag means."""
    group = parser.add_argument_group("cluster access", note)
    either = group.add_mutually_exclusive_group()
    either.add_argument("--kubeconfig", metavar="PATH", help="use this kubeconfig file")
    either.add_argument("--in-cluster", action="store_true",
                        help="use the pod's ServiceAccount only (fails outside a pod)")


def uses_cluster_access(args: argparse.Namespace) -> bool:
    return bool(args.kubeconfig or args.in_cluster)


def add_build_settings(parser: argparse.ArgumentParser) -> None:
    """``--build-settings FILE``: images, node labels and prices for the children."""
    parser.add_argument("--build-settings", type=Path, metavar="FILE",
                        help="YAML/JSON with the images, node labels per accelerator type and "
                        "prices the children are built with (the chart's engines values; "
                        "docs/values.md); default: the built-in ones")


def build_settings(args: argparse.Namespace) -> BuildSettings:
    """The ``--build-settings`` file's settings; ValueError naming the file and the bad
    value."""
    from tierserve.core.builders.common import BuildSettings

    path: Path | None = args.build_settings
    if path is None:
        return BuildSettings()
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"--build-settings {path}: {exc.strerror or exc}") from exc
    return BuildSettings.from_yaml(text, str(path))
