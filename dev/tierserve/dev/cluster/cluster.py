"""Bring the dev cluster up, report on it and tear it down.

``up`` is idempotent: a cluster whose processes are all alive and healthy is left alone;
a half-dead one is torn down and started afresh. ``down`` stops exactly the processes
recorded in ``<state>/pids`` (by pid, checking each pid's start time) and removes the
state directory.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from tierserve.dev.cluster import build, components, kuberay, nodes, paths, pki, procs
from tierserve.dev.cluster.components import Layout, Ports
from tierserve.dev.cluster.health import Kubectl, healthy

# start order; each must be healthy before the next group starts
ORDER: tuple[str, ...] = ("etcd", "kube-apiserver", "kube-controller-manager",
                          "kube-scheduler", "kwok")
_ARGV: dict[str, Callable[[Layout], list[str]]] = {
    "etcd": components.etcd, "kube-apiserver": components.apiserver,
    "kube-controller-manager": components.controller_manager,
    "kube-scheduler": components.scheduler, "kwok": components.kwok,
}
STATE_FILE = "state.json"


class ClusterError(RuntimeError):
    """The cluster could not be brought up; the message includes the failing log's tail."""


@dataclass
class Options:
    name: str = "dev"
    state: Path | None = None
    cpu_nodes: int = 2
    timeout: float = 90.0
    log: Callable[[str], None] = field(default=print)

    @property
    def state_dir(self) -> Path:
        return self.state or paths.cluster_dir(self.name)


def load(state: Path) -> Layout | None:
    try:
        data = json.loads((state / STATE_FILE).read_text())
        return Layout(state, Ports(**data["ports"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _pidfile(lay: Layout, component: str) -> Path:
    return lay.state / "pids" / f"{component}.pid"


def component_status(lay: Layout) -> dict[str, str]:
    """Component -> "healthy" | "unhealthy" | "not running"."""
    result = {}
    for name in ORDER:
        if not procs.is_running(_pidfile(lay, name)):
            result[name] = "not running"
        else:
            result[name] = "healthy" if healthy(lay, name) else "unhealthy"
    return result


def is_up(lay: Layout | None) -> bool:
    return lay is not None and all(v == "healthy" for v in component_status(lay).values())


def _new_layout(state: Path) -> Layout:
    state.mkdir(parents=True, exist_ok=True)
    ports = Ports(*procs.free_ports(6))
    lay = Layout(state, ports)
    meta = {"ports": asdict(ports), "kubernetes": paths.kubernetes_version(),
            "server": lay.server}
    (state / STATE_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return lay


def _write_credentials(lay: Layout, name: str) -> None:
    material = pki.generate(lay.pki.root)
    for who in pki.CLIENTS:
        config = pki.kubeconfig(material, who, lay.server, f"tierserve-{name}")
        pki.write_kubeconfig(lay.kubeconfig(who), config)


def _start(lay: Layout, component: str, timeout: float) -> float:
    started = time.monotonic()
    procs.start(component, _ARGV[component](lay), lay.state)
    pidfile = _pidfile(lay, component)

    def ready() -> bool:
        if not procs.is_running(pidfile):
            raise ClusterError(f"{component} exited:\n{procs.log_tail(lay.state, component)}")
        return healthy(lay, component)

    try:
        procs.wait_until(ready, timeout, f"{component} to become healthy")
    except procs.WaitTimeout as exc:
        raise ClusterError(f"{exc}\n{procs.log_tail(lay.state, component)}") from None
    return time.monotonic() - started


def _conditions_true(kubectl: Kubectl, condition: str, *target: str) -> bool:
    """Every object ``kubectl get <target>`` lists has ``condition`` True (and some exist)."""
    path = f'{{range .items[*]}}{{.status.conditions[?(@.type=="{condition}")].status}},{{end}}'
    result = kubectl.run("get", *target, "-o", f"jsonpath={path}", check=False)
    values = result.stdout.strip(",").split(",")
    return result.returncode == 0 and bool(result.stdout) and all(v == "True" for v in values)


def _populate(lay: Layout, opts: Options) -> None:
    kubectl = Kubectl(lay.kubeconfig())
    node_list = {"apiVersion": "v1", "kind": "List",
                 "items": nodes.manifests(nodes.default_pools(opts.cpu_nodes))}
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(node_list))
    files = [arg for crd in kuberay.crd_files() for arg in ("-f", str(crd))]
    kubectl("apply", "--server-side", "--force-conflicts", *files)
    crds = ("crd", *kuberay.CRDS)
    procs.wait_until(lambda: _conditions_true(kubectl, "Established", *crds),
                     opts.timeout, "KubeRay CRDs to be established")
    procs.wait_until(lambda: _conditions_true(kubectl, "Ready", "node", "-l", "type=kwok"),
                     opts.timeout, "kwok nodes to be Ready")
    procs.wait_until(lambda: kubectl.run("get", "serviceaccount", "default", "-n", "default",
                                         check=False).returncode == 0,
                     opts.timeout, "the default ServiceAccount")


def up(opts: Options) -> Layout:
    """Start (or find running) the cluster; return its layout."""
    existing = load(opts.state_dir)
    if existing is not None and is_up(existing):
        opts.log(f"cluster {opts.name!r} already running")
        return existing
    if existing is not None or opts.state_dir.exists():
        down(opts)
    build.ensure_built(opts.log)
    started = time.monotonic()
    lay = _new_layout(opts.state_dir)
    try:
        _write_credentials(lay, opts.name)
        for component in ORDER:
            opts.log(f"  {component} healthy in {_start(lay, component, opts.timeout):.1f}s")
        step = time.monotonic()
        _populate(lay, opts)
        opts.log(f"  nodes, KubeRay CRDs and default ServiceAccount ready in "
                 f"{time.monotonic() - step:.1f}s")
    except BaseException:
        opts.log(f"cluster {opts.name!r} failed to start; logs in {lay.state / 'logs'}")
        stop_all(lay)
        raise
    opts.log(f"cluster {opts.name!r} up in {time.monotonic() - started:.1f}s")
    return lay


def stop_all(lay: Layout) -> list[str]:
    """Stop every recorded process (reverse start order); return the names stopped."""
    return [name for name in reversed(ORDER) if procs.stop(_pidfile(lay, name))]


def _owned(state: Path) -> bool:
    """Only directories this module created (or empty ones) are ever deleted."""
    return (state / STATE_FILE).is_file() or not any(state.iterdir())


def down(opts: Options) -> list[str]:
    """Stop the processes and remove the state directory."""
    state = opts.state_dir
    if state.exists() and not _owned(state):
        raise ClusterError(f"{state} exists but holds no {STATE_FILE}; refusing to delete it")
    stopped: list[str] = []
    if (state / "pids").is_dir():
        lay = Layout(state, Ports(0, 0, 0, 0, 0, 0))
        stopped = stop_all(lay)
    if state.exists():
        shutil.rmtree(state)
    return stopped


def node_summary(lay: Layout) -> str:
    """``"7/7 nodes Ready"`` (or why it cannot tell)."""
    path = '{range .items[*]}{.status.conditions[?(@.type=="Ready")].status},{end}'
    result = Kubectl(lay.kubeconfig()).run("get", "nodes", "-o", f"jsonpath={path}",
                                           check=False, timeout=10)
    if result.returncode != 0:
        return f"nodes unknown: {result.stderr.strip()}"
    states = [s for s in result.stdout.split(",") if s]
    return f"{states.count('True')}/{len(states)} nodes Ready"


def env_lines(lay: Layout) -> list[str]:
    bins = ":".join(str(d) for d in build.bin_dirs())
    return [f"export KUBECONFIG={lay.kubeconfig()}", f'export PATH="{bins}:$PATH"']
