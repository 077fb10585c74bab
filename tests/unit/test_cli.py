"""The two commands: ``tierserve`` lists every runtime command, ``tierserve-dev`` the
development tooling, and each subcommand's module registers (none is "unavailable")."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tierserve.cli.main import SUBCOMMANDS, build_parser
from tierserve.dev.cli import SUBCOMMANDS as DEV_SUBCOMMANDS


@pytest.mark.parametrize(("table", "prog"), [(SUBCOMMANDS, "tierserve"),
                                             (DEV_SUBCOMMANDS, "tierserve-dev")])
def test_every_subcommand_registers(table: dict[str, str], prog: str) -> None:
    for name in table:
        parser = build_parser([name], prog, "doc", table)
        help_text = parser.format_help()
        assert name in help_text
        assert "unavailable" not in help_text, (prog, name, help_text)


@pytest.mark.parametrize(("module", "expected"), [
    ("tierserve.cli.main", SUBCOMMANDS), ("tierserve.dev.cli", DEV_SUBCOMMANDS)])
def test_help_lists_every_command(module: str, expected: dict[str, str]) -> None:
    out = subprocess.run([sys.executable, "-m", module, "--help"], check=True,
                         capture_output=True, text=True).stdout
    for name in expected:
        assert f"    {name}" in out, (name, out)
    assert "unavailable" not in out


def test_runtime_and_dev_commands_do_not_overlap() -> None:
    assert not set(SUBCOMMANDS) & set(DEV_SUBCOMMANDS)
