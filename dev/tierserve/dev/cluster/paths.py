"""Where things live: the pinned Go module, the binary cache and cluster state directories.

Versions have a single source of truth, ``hack/k8s/go.mod``; this module reads them from
there so the cache key (``<name>-<version>``) always matches what would be built.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path

KUBERNETES_MODULE = "k8s.io/kubernetes"


def repo_root() -> Path:
    """The source checkout holding ``hack/k8s`` (override: ``$TIERSERVE_REPO_ROOT``)."""
    override = os.environ.get("TIERSERVE_REPO_ROOT")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[4]


def go_module_dir() -> Path:
    return repo_root() / "hack" / "k8s"


def cache_root() -> Path:
    """``$TIERSERVE_CACHE_DIR``, else ``$XDG_CACHE_HOME/tierserve``, else ``~/.cache/...``."""
    override = os.environ.get("TIERSERVE_CACHE_DIR")
    if override:
        return Path(override)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "tierserve"


def bin_root() -> Path:
    return cache_root() / "bin"


def cluster_dir(name: str) -> Path:
    """State directory of cluster ``name`` (``$TIERSERVE_CLUSTER_DIR`` wins when set)."""
    override = os.environ.get("TIERSERVE_CLUSTER_DIR")
    if override:
        return Path(override)
    return cache_root() / "cluster" / name


_REQUIRE = re.compile(r"^\s*(?:require\s+)?(\S+)\s+(v\S+)", re.MULTILINE)


def parse_requires(gomod: str) -> dict[str, str]:
    """Module path -> version for each ``require`` line of a go.mod (replace lines skipped)."""
    versions: dict[str, str] = {}
    in_replace = False
    for line in gomod.splitlines():
        stripped = line.strip()
        if stripped.startswith("//"):
            continue
        if stripped.startswith("replace"):
            in_replace = stripped.endswith("(")
            continue
        if in_replace:
            in_replace = stripped != ")"
            continue
        match = _REQUIRE.match(line)
        if match and "=>" not in line:
            versions.setdefault(match.group(1), match.group(2))
    return versions


@cache
def module_versions() -> dict[str, str]:
    return parse_requires((go_module_dir() / "go.mod").read_text())


def module_version(module: str) -> str:
    try:
        return module_versions()[module]
    except KeyError:
        raise LookupError(f"{module} is not required by {go_module_dir() / 'go.mod'}") from None


def kubernetes_version() -> str:
    return module_version(KUBERNETES_MODULE)
