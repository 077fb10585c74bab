"""Leader election of two operator processes against the real API server.

* SIGTERM on the leader releases the Lease (``holderIdentity`` cleared), so the follower
  takes over at its next retry, not after the lease duration: the lease duration here is
  far longer than the wait allows.
* A leader cut off from the API server (its connections go through a proxy that starts
  swallowing everything, a partition; the API server itself keeps serving the rest of
  the session) steps down after the renew deadline and exits 1; the follower, which
  still reaches the server, takes over.

The takeover after a SIGKILL (lease expiry) is ``test_operator_faults.py``'s.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from e2e.helm_install import SYSTEM_NS, OperatorProcess, running
from tierserve.dev.cluster.harness import ClusterHandle
from tierserve.dev.cluster.procs import free_port
from tierserve.dev.tcpproxy import TcpProxy
from tierserve.dev.waiting import WaitTimeout, wait_until

pytestmark = pytest.mark.cluster


def _timing(lease_s: int, deadline_s: int) -> list[str]:
    return ["--lease-duration-s", str(lease_s), "--renew-deadline-s", str(deadline_s),
            "--retry-period-s", "1"]


def _lease(cluster: ClusterHandle, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(cluster.kubectl(
        "get", "lease", name, "-n", SYSTEM_NS, "-o", "json"))["spec"]
    return spec


def _pair(installed: Path, tmp_path: Path, namespace: str, timing: list[str],
          kubeconfig_a: Path | None = None) -> tuple[OperatorProcess, OperatorProcess]:
    lease = f"lease-{namespace}"
    a, b = (OperatorProcess(kubeconfig, tmp_path / f"{name}.log", name, free_port(),
                            ["-n", namespace, *timing], lease=lease)
            for name, kubeconfig in (("replica-a", kubeconfig_a or installed),
                                     ("replica-b", installed)))
    return a, b


def _exited(proc: OperatorProcess) -> bool:
    return proc.proc is not None and proc.proc.poll() is not None


def _logged(proc: OperatorProcess, text: str, timeout_s: float, what: str) -> None:
    """Wait for ``text`` in the process's log; a timeout shows the log's end."""
    try:
        wait_until(lambda: text in proc.logs(), timeout_s, what)
    except WaitTimeout as exc:
        raise AssertionError(f"{exc}; {proc.identity} logged:\n{proc.logs()[-3000:]}") from None


def test_sigterm_releases_the_lease_and_the_follower_takes_over_at_once(
        cluster: ClusterHandle, installed: Path, namespace: str, tmp_path: Path) -> None:
    a, b = _pair(installed, tmp_path, namespace, _timing(lease_s=300, deadline_s=20))
    with running(a):
        _logged(a, "became leader", 60, "replica-a leads")
        with running(b):
            _logged(b, "waiting for leadership", 60, "replica-b waits")
            assert _lease(cluster, a.lease or "")["holderIdentity"] == "replica-a"
            a.kill(signal.SIGTERM)
            assert a.proc is not None and a.proc.returncode == 0, a.logs()[-2000:]
            assert "released" in a.logs()
            # far less than the 300 s lease: only a released Lease is taken this soon
            _logged(b, "became leader", 60, "replica-b takes over")
            spec = _lease(cluster, a.lease or "")
    assert spec["holderIdentity"] == "replica-b"
    assert spec["leaseTransitions"] >= 1


@pytest.fixture
def proxied(installed: Path, tmp_path: Path) -> Iterator[tuple[Path, TcpProxy]]:
    """The operator ServiceAccount's kubeconfig, through a proxy the test can cut."""
    config = yaml.safe_load(installed.read_text())
    server = urlsplit(config["clusters"][0]["cluster"]["server"])
    assert server.hostname == "127.0.0.1" and server.port
    with TcpProxy(server.hostname, server.port) as proxy:
        config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
        path = tmp_path / "proxied-kubeconfig"
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        yield path, proxy


def test_a_leader_cut_off_from_the_api_server_steps_down_and_the_follower_takes_over(
        cluster: ClusterHandle, installed: Path, namespace: str, tmp_path: Path,
        proxied: tuple[Path, TcpProxy]) -> None:
    kubeconfig, proxy = proxied
    a, b = _pair(installed, tmp_path, namespace, _timing(lease_s=15, deadline_s=5),
                 kubeconfig_a=kubeconfig)
    with running(a):
        _logged(a, "became leader", 60, "replica-a leads")  # b starts after: a wins
        with running(b):
            _logged(b, "waiting for leadership", 60, "replica-b waits")
            proxy.blackhole()
            wait_until(lambda: _exited(a), 90, "replica-a steps down and exits")
            assert a.proc is not None and a.proc.returncode == 1, a.logs()[-2000:]
            assert "leadership lost" in a.logs()
            _logged(b, "became leader", 90, "replica-b takes over")
            assert _lease(cluster, b.lease or "")["holderIdentity"] == "replica-b"
