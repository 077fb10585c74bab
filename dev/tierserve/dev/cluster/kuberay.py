"""KubeRay CRDs (RayCluster, RayService) from KubeRay's published Go module.

The module is fetched with ``go mod download`` into the Go module cache at a pinned
version, its content hash checked against the pin below (the checksum database is not
reachable from every machine), and the CRDs are applied from the module cache. Nothing
is copied into this repository.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from tierserve.dev.cluster import build

MODULE = "github.com/ray-project/kuberay/ray-operator"
VERSION = "v1.4.2"
# `go mod download -json` "Sum" of the module zip at VERSION
SUM = "h1:A4tGzbIky8sInAUxZBdBb+rrpZ7fbqoxdsOtm559Zqg="
# RayJob is left out: Tierserve does not use it and its 1.3 MB schema slows start-up
CRDS = ("rayclusters.ray.io", "rayservices.ray.io")


def module_dir() -> Path:
    """Download (or find in the module cache) KubeRay's module and return its directory."""
    env = build.go_env()
    env.update(GOFLAGS="-mod=mod", GONOSUMDB=MODULE, GOSUMDB="off")
    with tempfile.TemporaryDirectory() as outside_any_module:
        result = subprocess.run(
            [build.go_executable(), "mod", "download", "-json", f"{MODULE}@{VERSION}"],
            cwd=outside_any_module, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise build.BuildFailed(f"go mod download {MODULE}@{VERSION}: {result.stderr[-2000:]}")
    info = json.loads(result.stdout)
    if info.get("Sum") != SUM:
        raise build.BuildFailed(f"{MODULE}@{VERSION} hash {info.get('Sum')} != pinned {SUM}")
    return Path(info["Dir"])


def crd_files() -> list[Path]:
    bases = module_dir() / "config" / "crd" / "bases"
    files = [bases / f"ray.io_{crd.split('.', 1)[0]}.yaml" for crd in CRDS]
    absent = [str(f) for f in files if not f.is_file()]
    if absent:
        raise build.BuildFailed(f"KubeRay {VERSION} lacks {', '.join(absent)}")
    return files
