"""Compile the pinned control-plane binaries from ``hack/k8s`` into a version-keyed cache.

Each binary lands in ``<cache>/bin/<name>-<version>/<name>``; a binary already there is
never rebuilt, so a second ``tierserve-dev cluster build`` is instant. Builds are
``go build -trimpath -ldflags='-s -w'`` with ``CGO_ENABLED=0`` and ``GOFLAGS=-p=2`` (the
machines are small and shared); a file lock serialises concurrent builders.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tierserve.dev.cluster import paths


class BuildUnavailable(RuntimeError):
    """The machine cannot build the binaries at all (no Go toolchain): tests skip."""


class BuildFailed(RuntimeError):
    """A build was attempted and failed: a real error, never a reason to skip."""


def _kube_ldflags(version: str) -> list[str]:
    major, minor = version.lstrip("v").split(".")[:2]
    flags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {pkg}.gitVersion={version}", f"-X {pkg}.gitMajor={major}",
                  f"-X {pkg}.gitMinor={minor}", f"-X {pkg}.gitTreeState=clean"]
    return flags


def _helm_ldflags(version: str) -> list[str]:
    major, minor = paths.kubernetes_version().lstrip("v").split(".")[:2]
    flags = [f"-X helm.sh/helm/v3/internal/version.version={version}"]
    for pkg in ("helm.sh/helm/v3/pkg/chartutil", "helm.sh/helm/v3/pkg/lint/rules"):
        flags += [f"-X {pkg}.k8sVersionMajor={major}", f"-X {pkg}.k8sVersionMinor={minor}"]
    return flags


def _no_ldflags(version: str) -> list[str]:
    return []


@dataclass(frozen=True)
class Binary:
    """One command built from the pinned module; ``module`` decides its version."""

    name: str
    module: str
    package: str
    ldflags: Callable[[str], list[str]] = _no_ldflags

    @property
    def version(self) -> str:
        return paths.module_version(self.module)

    @property
    def directory(self) -> Path:
        return paths.bin_root() / f"{self.name}-{self.version}"

    @property
    def path(self) -> Path:
        return self.directory / self.name


_K8S = "k8s.io/kubernetes"
BINARIES: tuple[Binary, ...] = (
    Binary("etcd", "go.etcd.io/etcd/server/v3", "go.etcd.io/etcd/server/v3"),
    Binary("kube-apiserver", _K8S, f"{_K8S}/cmd/kube-apiserver", _kube_ldflags),
    Binary("kube-controller-manager", _K8S, f"{_K8S}/cmd/kube-controller-manager", _kube_ldflags),
    Binary("kube-scheduler", _K8S, f"{_K8S}/cmd/kube-scheduler", _kube_ldflags),
    Binary("kwok", "sigs.k8s.io/kwok", "sigs.k8s.io/kwok/cmd/kwok"),
    Binary("helm", "helm.sh/helm/v3", "helm.sh/helm/v3/cmd/helm", _helm_ldflags),
)


def binary(name: str) -> Binary:
    for candidate in BINARIES:
        if candidate.name == name:
            return candidate
    raise KeyError(name)


def missing() -> list[Binary]:
    return [b for b in BINARIES if not b.path.is_file()]


def go_executable() -> str:
    """The Go toolchain to build with, or :class:`BuildUnavailable` if there is none."""
    found = shutil.which(os.environ.get("GO", "go"))
    if found is None:
        raise BuildUnavailable("no Go toolchain on PATH (set $GO or install Go >= 1.24)")
    return found


def go_env() -> dict[str, str]:
    env = dict(os.environ)
    parallel = os.environ.get("TIERSERVE_GO_PARALLEL", "2")
    env.update(GOTOOLCHAIN="local", CGO_ENABLED="0",
               GOFLAGS=f"-p={parallel} -mod=readonly -buildvcs=false")
    return env


@contextmanager
def _build_lock() -> Iterator[None]:
    paths.bin_root().mkdir(parents=True, exist_ok=True)
    with open(paths.bin_root() / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_one(go: str, item: Binary, log: Callable[[str], None]) -> None:
    item.directory.mkdir(parents=True, exist_ok=True)
    partial = item.directory / f".{item.name}.partial"
    ldflags = " ".join(["-s", "-w", *item.ldflags(item.version)])
    cmd = [go, "build", "-trimpath", f"-ldflags={ldflags}", "-o", str(partial), item.package]
    started = time.monotonic()
    result = subprocess.run(cmd, cwd=paths.go_module_dir(), env=go_env(),
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BuildFailed(f"building {item.name} {item.version} failed:\n{result.stderr[-4000:]}")
    partial.rename(item.path)
    log(f"built {item.name} {item.version} in {time.monotonic() - started:.0f}s")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_built(log: Callable[[str], None] = _stderr) -> list[Binary]:
    """Build whatever is missing from the cache; return every binary. Idempotent."""
    if not missing():
        return list(BINARIES)
    go = go_executable()
    started = time.monotonic()
    with _build_lock():
        todo = missing()
        for item in todo:
            log(f"building {item.name} {item.version} ...")
            _build_one(go, item, log)
    if todo:
        log(f"cluster binaries built in {time.monotonic() - started:.0f}s (cold build)")
    return list(BINARIES)


def bin_dirs() -> list[Path]:
    """Directories to put on ``PATH`` for the built commands (helm, kwok, servers)."""
    return [b.directory for b in BINARIES]
