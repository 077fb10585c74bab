"""Every ``tierserve`` subcommand follows the conventions of :mod:`tierserve.core.cliflags`.

The test walks each subcommand's real parser (nested subcommands too) and fails on a
flag without help text, on ``-v``/``--verbose``, on reStructuredText backticks in
``--help``, on a numeric duration flag without its unit suffix (``-s``, or ``-ms``), on
a lone ``--no-X`` flag, on a command without ``--log-level``, and on cluster access that
is not the ``--kubeconfig``/``--in-cluster`` pair.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tierserve.cli.main import SUBCOMMANDS, build_parser
from tierserve.core.cliflags import DURATION_SUFFIXES, LOG_LEVELS

TIME_WORDS = ("interval", "period", "timeout", "deadline", "duration", "resync", "window",
              "after", "delay", "cold-start", "ttft", "tpot", "latency", "age", "step",
              "wait", "grace", "ttl", "drain")
TIME_IN_HELP = re.compile(r"\b(seconds?|milliseconds?|ms|minutes?)\b")


def _parsers(parser: argparse.ArgumentParser, path: str) -> Iterator[
        tuple[str, argparse.ArgumentParser]]:
    """``parser`` and every parser below it, with the command line that reaches it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, f"{path} {name}")


def _subcommand(name: str) -> argparse.ArgumentParser:
    parser = build_parser([name])
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    child: argparse.ArgumentParser = sub.choices[name]
    return child


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings
            and not isinstance(a, argparse._HelpAction | argparse._VersionAction)]


def _is_leaf(parser: argparse.ArgumentParser) -> bool:
    return not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)


ALL = [(path, p) for name in SUBCOMMANDS for path, p in _parsers(_subcommand(name), name)]
IDS = [path for path, _ in ALL]


@pytest.mark.parametrize(("path", "parser"), ALL, ids=IDS)
def test_every_flag_has_help_text(path: str, parser: argparse.ArgumentParser) -> None:
    missing = [a.option_strings[-1] for a in _options(parser)
               if not a.help or a.help == argparse.SUPPRESS]
    assert not missing, f"tierserve {path}: flags without help: {missing}"


@pytest.mark.parametrize(("path", "parser"), ALL, ids=IDS)
def test_no_verbose_flag_and_log_level_on_every_command(
        path: str, parser: argparse.ArgumentParser) -> None:
    strings = {s for a in _options(parser) for s in a.option_strings}
    assert not strings & {"-v", "--verbose"}, f"tierserve {path}: use --log-level"
    if _is_leaf(parser):
        levels = [a for a in _options(parser) if "--log-level" in a.option_strings]
        assert levels, f"tierserve {path}: no --log-level (tierserve.core.cliflags)"
        assert tuple(levels[0].choices or ()) == LOG_LEVELS, path


@pytest.mark.parametrize(("path", "parser"), ALL, ids=IDS)
def test_help_has_no_restructuredtext_markup(path: str,
                                             parser: argparse.ArgumentParser) -> None:
    text = parser.format_help()
    assert "`" not in text, f"tierserve {path} --help:\n{text}"


def _is_duration(action: argparse.Action) -> bool:
    if action.type not in (int, float):
        return False
    name = action.option_strings[-1]
    return any(w in name for w in TIME_WORDS) or bool(TIME_IN_HELP.search(action.help or ""))


@pytest.mark.parametrize(("path", "parser"), ALL, ids=IDS)
def test_duration_flags_carry_their_unit(path: str, parser: argparse.ArgumentParser) -> None:
    wrong = [a.option_strings[-1] for a in _options(parser) if _is_duration(a)
             and not a.option_strings[-1].endswith(DURATION_SUFFIXES)]
    assert not wrong, f"tierserve {path}: durations need a unit suffix {DURATION_SUFFIXES}: " \
        f"{wrong}"


@pytest.mark.parametrize(("path", "parser"), ALL, ids=IDS)
def test_switches_are_boolean_optional_actions(path: str,
                                               parser: argparse.ArgumentParser) -> None:
    lone = [s for a in _options(parser) for s in a.option_strings
            if s.startswith("--no-") and not isinstance(a, argparse.BooleanOptionalAction)]
    assert not lone, f"tierserve {path}: use argparse.BooleanOptionalAction for {lone}"


@pytest.mark.parametrize(("path", "parser"), ALL, ids=IDS)
def test_cluster_access_is_the_kubeconfig_in_cluster_pair(
        path: str, parser: argparse.ArgumentParser) -> None:
    strings = {s for a in _options(parser) for s in a.option_strings}
    if strings & {"--kubeconfig", "--in-cluster"}:
        assert {"--kubeconfig", "--in-cluster"} <= strings, path
        with pytest.raises(SystemExit):  # never both
            parser.parse_args(["--kubeconfig", "k", "--in-cluster", *_required(parser)])


def _required(parser: argparse.ArgumentParser) -> list[str]:
    """Values for the required flags (``--config`` for the router, ...)."""
    out: list[str] = []
    for group in parser._mutually_exclusive_groups:
        if group.required:
            out.append(group._group_actions[0].option_strings[-1])
            if group._group_actions[0].nargs != 0:
                out.append("x")
    for a in _options(parser):
        if a.required:
            out += [a.option_strings[-1], "x"]
    return out


def test_top_level_help_has_version_and_no_markup() -> None:
    text = build_parser([]).format_help()
    assert "--version" in text and "`" not in text, text


def test_the_walk_sees_every_subcommand_and_the_nested_ones() -> None:
    assert set(SUBCOMMANDS) <= {path.split()[0] for path in IDS}
    assert len(ALL) > len(SUBCOMMANDS) or all(_is_leaf(p) for _, p in ALL)


def test_version() -> None:
    out = subprocess.run([sys.executable, "-m", "tierserve.cli.main", "--version"],
                         check=True, capture_output=True, text=True).stdout
    assert re.fullmatch(r"tierserve \d+\.\d+\.\d+\S*\n", out), out


def test_log_level_is_case_insensitive_and_rejects_unknown_levels() -> None:
    args = build_parser(["render"]).parse_args(["render", "-f", "x", "--log-level", "DEBUG"])
    assert args.log_level == "debug"
    with pytest.raises(SystemExit):
        build_parser(["render"]).parse_args(["render", "-f", "x", "--log-level", "loud"])
