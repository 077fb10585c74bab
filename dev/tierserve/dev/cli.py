"""The ``tierserve-dev`` command: development tooling that never ships in the runtime wheel.

Same shape as ``tierserve`` (one subcommand per module exposing ``register``), built by
the same dispatcher, :func:`tierserve.cli.main.run`.
"""

from __future__ import annotations

from collections.abc import Sequence

from tierserve.cli.main import run

SUBCOMMANDS: dict[str, str] = {
    "cluster": "tierserve.dev.cluster.cli",
    "bench": "tierserve.dev.bench.cli",
    "demo": "tierserve.dev.demo",
}


def main(argv: Sequence[str] | None = None) -> int:
    return run("tierserve-dev", __doc__ or "", SUBCOMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
