"""e2e harness: a real local control plane (``tierserve-dev cluster``) for the whole session.

Fixtures:

* ``cluster`` (session): builds the pinned binaries if needed (cached; ``make e2e`` runs
  ``tierserve-dev cluster build`` first), starts a private cluster in a temporary state
  directory with its own kubeconfig, refuses anything whose server is not 127.0.0.1, and
  tears it down at the end of the session, also when tests fail or the run is
  interrupted (SIGINT/SIGTERM). Yields a
  :class:`tierserve.dev.cluster.harness.ClusterHandle`: ``.kubeconfig``, ``.server``,
  ``.kubectl``, ``.apply(obj_or_list, namespace=)``, ``.get_json(...)``,
  ``.exists(...)``, ``.env()`` (for subprocesses such as the operator or helm) and
  ``.binary("helm")``.
* ``kubectl`` (session): ``cluster.kubectl``; ``kubectl("get", "nodes")`` returns stdout
  (raises ``KubectlError`` on failure), ``kubectl.run(..., check=False)`` returns the
  ``CompletedProcess``. Always passes ``--kubeconfig`` of the e2e cluster.
* ``namespace`` (function): a fresh namespace with its default ServiceAccount ready,
  deleted afterwards.

Waiting: ``from tierserve.dev.waiting import wait_until`` (poll a predicate with a
timeout and a description of what is awaited), or ``kubectl wait``.

Tests that use the cluster are marked ``@pytest.mark.cluster``. They are skipped, with
the reason, only when the machine cannot build the binaries (no Go toolchain); with
``$CI`` set that is a failure instead.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from tierserve.dev.cluster import build
from tierserve.dev.cluster import cluster as devcluster
from tierserve.dev.cluster.harness import ClusterHandle, NotLocal, assert_local_only
from tierserve.dev.cluster.health import Kubectl
from tierserve.dev.waiting import wait_until


def _unavailable(reason: str) -> None:
    message = f"cluster binaries cannot be built on this machine: {reason}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI must run the cluster tests)", pytrace=False)
    pytest.skip(message)


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # pytest then runs session teardown


@pytest.fixture(scope="session")
def cluster_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """State directory of the session's cluster (private, never the developer's)."""
    return tmp_path_factory.mktemp("tierserve-cluster") / "state"


@pytest.fixture(scope="session")
def cluster(cluster_state: Path) -> Iterator[ClusterHandle]:
    try:
        build.go_executable()
    except build.BuildUnavailable as exc:
        _unavailable(str(exc))
    opts = devcluster.Options(name="e2e", state=cluster_state)
    previous = signal.signal(signal.SIGTERM, _raise_on_sigterm)
    try:
        layout = devcluster.up(opts)
        try:
            assert_local_only(layout.kubeconfig())
        except NotLocal as exc:
            pytest.exit(str(exc), returncode=2)
        yield ClusterHandle(layout, Kubectl(layout.kubeconfig()))
    finally:
        # never leave teardown half done (down is bounded: SIGKILL after 10 s a process)
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            devcluster.down(opts)
        finally:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_int)


@pytest.fixture(scope="session")
def kubectl(cluster: ClusterHandle) -> Kubectl:
    return cluster.kubectl


@pytest.fixture
def namespace(cluster: ClusterHandle) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    wait_until(lambda: cluster.exists("serviceaccount", "default", "-n", name),
             30, f"default ServiceAccount in {name}")
    yield name
    cluster.kubectl.run("delete", "namespace", name, "--wait=false", check=False)


# --- Tierserve installed by its chart, operator processes under its ServiceAccount ---

@pytest.fixture(scope="session")
def installed(cluster: ClusterHandle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Chart installed (CRDs, RBAC); returns the operator ServiceAccount's kubeconfig."""
    from e2e.helm_install import helm_install, service_account_kubeconfig

    helm_install(cluster)
    return service_account_kubeconfig(cluster, tmp_path_factory.mktemp("sa") / "kubeconfig")


@pytest.fixture
def operator_factory(installed: Path, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Make operator processes (stopped at teardown, by pid, also on failure)."""
    from e2e.helm_install import OperatorProcess
    from tierserve.dev.cluster.procs import free_port

    made: list[OperatorProcess] = []

    def make(identity: str = "op-a", *extra: str) -> OperatorProcess:
        proc = OperatorProcess(installed, tmp_path / f"{identity}.log", identity, free_port(),
                               list(extra))
        made.append(proc)
        return proc

    yield make
    for proc in made:
        proc.stop()
