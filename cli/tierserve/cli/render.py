"""``tierserve render -f FILE``: print the children the operator would create.

No cluster needed. Invalid manifests exit 1 with the API server's wording (schema and
CEL rules) or the operator's condition message (for example a model that cannot fit).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tierserve.core.api.deployment import API_VERSION
from tierserve.core.api.errors import InvalidObject, validate
from tierserve.core.api.route import LLMRouteSpec
from tierserve.core.builders import BuildSettings, build_children
from tierserve.core.builders.context import from_object
from tierserve.core.cliflags import add_build_settings, add_log_level, build_settings
from tierserve.core.sizing import SizingError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("render", help="print the child manifests for LLMDeployment manifests")
    p.add_argument("-f", "--filename", action="append", required=True, type=Path,
                   help="manifest file or directory (repeatable); '-' reads stdin")
    add_build_settings(p)
    add_log_level(p)
    p.set_defaults(func=run)


def _documents(paths: list[Path]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path in paths:
        files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
        for f in files:
            text = sys.stdin.read() if str(f) == "-" else f.read_text()
            for doc in yaml.safe_load_all(text):
                if doc:
                    yield str(f), doc


def render_object(doc: dict[str, Any], settings: BuildSettings) -> list[dict[str, Any]]:
    """Children for one object; raises InvalidObject or SizingError."""
    kind, name = doc.get("kind"), (doc.get("metadata") or {}).get("name", "")
    if doc.get("apiVersion") != API_VERSION:
        return []
    if kind not in ("LLMRoute", "LLMDeployment"):
        return []
    try:
        if kind == "LLMRoute":
            validate(LLMRouteSpec, doc.get("spec") or {})
            return []
        return build_children(from_object(doc, settings))
    except InvalidObject as exc:
        raise InvalidObject([f'The {kind} "{name}" is invalid: {line}'
                             for line in exc.lines]) from None


def run(args: argparse.Namespace) -> int:
    try:
        settings = build_settings(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failed, out = False, []
    for source, doc in _documents(args.filename):
        name = (doc.get("metadata") or {}).get("name", "?")
        try:
            out.extend(render_object(doc, settings))
        except InvalidObject as exc:
            failed = True
            for line in exc.lines:
                print(f"error: {source}: {line}", file=sys.stderr)
        except SizingError as exc:
            failed = True
            print(f"error: {source}: {doc.get('kind')} {name!r}: {exc.reason}: {exc}",
                  file=sys.stderr)
    if out:
        print(yaml.safe_dump_all(out, sort_keys=False), end="")
    return 1 if failed else 0
