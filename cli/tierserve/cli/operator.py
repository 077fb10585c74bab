"""``tierserve operator``, wired: the operator's command with the engine's local runtimes.

The operator and the engine never import each other; this module, in the composition
root, hands :class:`tierserve.engine.local.LocalRuntimes` (a
:class:`tierserve.core.local.LocalRuntimeFactory`) to the operator's command so that
``--target local`` can start engines.
"""

from __future__ import annotations

import argparse

from tierserve.engine.local import LocalRuntimes
from tierserve.operator import cli


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cli.register(sub, local_runtimes=LocalRuntimes)
