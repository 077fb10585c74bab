"""The runtime wheel ships what runs in production and nothing else.

Development tooling (local control plane, benchmarks, load generators, stubs, test
helpers, calibration, the demo) lives in the separate ``tierserve-dev`` distribution;
this builds both wheels from the checkout and reads what is inside.
"""

from __future__ import annotations

import configparser
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_COMPONENTS = {"core", "cli", "operator", "routing", "autoscaler", "engine", "dashboards"}


def _wheel(source: Path, out: Path) -> zipfile.ZipFile:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--quiet", "--wheel-dir", str(out), str(source)], check=True)
    (path,) = out.glob("*.whl")
    return zipfile.ZipFile(path)


def _components(wheel: zipfile.ZipFile) -> set[str]:
    return {n.split("/")[1] for n in wheel.namelist() if n.startswith("tierserve/")}


def _scripts(wheel: zipfile.ZipFile) -> set[str]:
    (name,) = (n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt"))
    parser = configparser.ConfigParser()
    parser.read_string(wheel.read(name).decode())
    return set(parser["console_scripts"])


def test_runtime_wheel_holds_the_runtime_components_only(tmp_path: Path) -> None:
    wheel = _wheel(ROOT, tmp_path)
    assert _components(wheel) == RUNTIME_COMPONENTS
    assert not [n for n in wheel.namelist() if n.startswith("tierserve/dev/")]
    assert _scripts(wheel) == {"tierserve"}


def test_dev_wheel_holds_the_dev_tooling_only(tmp_path: Path) -> None:
    wheel = _wheel(ROOT / "dev", tmp_path)
    assert _components(wheel) == {"dev"}
    assert _scripts(wheel) == {"tierserve-dev"}
