"""Helpers for tests against the dev cluster (used by ``e2e/conftest.py``).

Import from here in e2e tests: ``from tierserve.dev.cluster.harness import ClusterHandle``;
wait with ``tierserve.dev.waiting.wait_until``. Nothing in this module starts or stops
anything; the fixtures do.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from tierserve.dev.cluster import build
from tierserve.dev.cluster.components import Layout
from tierserve.dev.cluster.health import Kubectl

__all__ = ["ClusterHandle", "NotLocal", "assert_local_only"]


class NotLocal(RuntimeError):
    """The kubeconfig points at a server that is not on 127.0.0.1."""


def assert_local_only(kubeconfig: Path) -> None:
    """Raise :class:`NotLocal` unless every cluster in ``kubeconfig`` is on 127.0.0.1."""
    config = yaml.safe_load(kubeconfig.read_text()) or {}
    clusters = config.get("clusters") or []
    if not clusters:
        raise NotLocal(f"{kubeconfig} names no cluster")
    for entry in clusters:
        host = urlparse(entry["cluster"]["server"]).hostname
        if host != "127.0.0.1":
            raise NotLocal(f"refusing to touch {host}: {kubeconfig} is not the local cluster")


@dataclass(frozen=True)
class ClusterHandle:
    """What a test needs to talk to the e2e cluster, and only to it."""

    layout: Layout
    kubectl: Kubectl

    @property
    def kubeconfig(self) -> Path:
        return self.layout.kubeconfig()

    @property
    def server(self) -> str:
        return self.layout.server

    def binary(self, name: str) -> Path:
        """Path of a built binary: ``helm``, ``kwok``, ``kube-apiserver``, ..."""
        return build.binary(name).path

    def env(self) -> dict[str, str]:
        """Environment for subprocesses (operator, helm): this KUBECONFIG, built bins on PATH."""
        bins = os.pathsep.join(str(d) for d in build.bin_dirs())
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig),
                "PATH": f"{bins}{os.pathsep}{os.environ.get('PATH', '')}"}

    def apply(self, manifest: dict[str, Any] | list[dict[str, Any]],
              namespace: str | None = None) -> str:
        """``kubectl apply -f -`` of one object or a list of objects."""
        items = manifest if isinstance(manifest, list) else [manifest]
        ns = ["-n", namespace] if namespace else []
        return self.kubectl("apply", *ns, "-f", "-",
                            stdin=yaml.safe_dump_all(items, sort_keys=False))

    def get_json(self, *args: str) -> dict[str, Any]:
        """``kubectl get <args> -o json`` parsed."""
        loaded: dict[str, Any] = json.loads(self.kubectl("get", *args, "-o", "json"))
        return loaded

    def exists(self, *args: str) -> bool:
        """Whether ``kubectl get <args>`` finds the object."""
        return self.kubectl.run("get", *args, "-o", "name", check=False).returncode == 0
