"""Published Go modules as a source of files (CRDs), fetched with ``go mod download``.

A module is downloaded into the Go module cache at a pinned version and its content hash
checked against a pinned sum (the checksum database is not reachable from every
machine); callers read files from the module cache. Nothing is copied into this
repository.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from tierserve.dev.cluster import build


def module_dir(module: str, version: str, sum_: str) -> Path:
    """Download (or find in the module cache) ``module@version``, check its ``go mod
    download -json`` "Sum" against ``sum_`` and return its directory."""
    env = build.go_env()
    env.update(GOFLAGS="-mod=mod", GONOSUMDB=module, GOSUMDB="off")
    with tempfile.TemporaryDirectory() as outside_any_module:
        result = subprocess.run(
            [build.go_executable(), "mod", "download", "-json", f"{module}@{version}"],
            cwd=outside_any_module, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise build.BuildFailed(f"go mod download {module}@{version}: {result.stderr[-2000:]}")
    info = json.loads(result.stdout)
    if info.get("Sum") != sum_:
        raise build.BuildFailed(f"{module}@{version} hash {info.get('Sum')} != pinned {sum_}")
    return Path(info["Dir"])
