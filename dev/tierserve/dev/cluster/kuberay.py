"""KubeRay CRDs (RayCluster, RayService) from KubeRay's published Go module.

The module is fetched with ``go mod download`` into the Go module cache at a pinned
version, its content hash checked against the pin below (the checksum database is not
reachable from every machine), and the CRDs are applied from the module cache. Nothing
is copied into this repository.
"""

from __future__ import annotations

from pathlib import Path

from tierserve.dev.cluster import build, gomodules

MODULE = "github.com/ray-project/kuberay/ray-operator"
VERSION = "v1.4.2"
# `go mod download -json` "Sum" of the module zip at VERSION
SUM = "h1:A4tGzbIky8sInAUxZBdBb+rrpZ7fbqoxdsOtm559Zqg="
# RayJob is left out: Tierserve does not use it and its 1.3 MB schema slows start-up
CRDS = ("rayclusters.ray.io", "rayservices.ray.io")


def module_dir() -> Path:
    """Download (or find in the module cache) KubeRay's module and return its directory."""
    return gomodules.module_dir(MODULE, VERSION, SUM)


def crd_files() -> list[Path]:
    bases = module_dir() / "config" / "crd" / "bases"
    files = [bases / f"ray.io_{crd.split('.', 1)[0]}.yaml" for crd in CRDS]
    absent = [str(f) for f in files if not f.is_file()]
    if absent:
        raise build.BuildFailed(f"KubeRay {VERSION} lacks {', '.join(absent)}")
    return files
