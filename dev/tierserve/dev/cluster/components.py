"""Command lines of the control-plane processes, all bound to 127.0.0.1.

Ports are picked free at ``up`` and recorded in ``state.json``. Flags are the minimum a
conformant-enough control plane needs, plus two dev-cluster choices documented in
``docs/cluster.md``: etcd runs with ``--unsafe-no-fsync`` (throwaway data, faster
writes) and the controllers run without leader election (one replica each).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tierserve.dev.cluster.build import binary
from tierserve.dev.cluster.pki import Pki

LOCALHOST = "127.0.0.1"
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.1/16"
ADMISSION = "NodeRestriction,ExtendedResourceToleration"


@dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int


@dataclass(frozen=True)
class Layout:
    """Where a cluster's files are."""

    state: Path
    ports: Ports

    @property
    def pki(self) -> Pki:
        return Pki(self.state / "pki")

    def kubeconfig(self, who: str = "admin") -> Path:
        return self.state / f"{who}.kubeconfig" if who != "admin" else self.state / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://{LOCALHOST}:{self.ports.apiserver}"


def etcd(lay: Layout) -> list[str]:
    client = f"http://{LOCALHOST}:{lay.ports.etcd_client}"
    peer = f"http://{LOCALHOST}:{lay.ports.etcd_peer}"
    return [str(binary("etcd").path), "--name=dev", f"--data-dir={lay.state / 'etcd'}",
            f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=dev={peer}", "--unsafe-no-fsync", "--log-level=warn"]


def _front_proxy(pki: Pki) -> list[str]:
    """Request-header authentication for aggregated APIs (one CA, a named client cert)."""
    return [f"--requestheader-client-ca-file={pki.ca}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki.cert('front-proxy-client')}",
            f"--proxy-client-key-file={pki.key('front-proxy-client')}"]


def apiserver(lay: Layout) -> list[str]:
    pki = lay.pki
    return [
        str(binary("kube-apiserver").path),
        f"--etcd-servers=http://{LOCALHOST}:{lay.ports.etcd_client}",
        f"--bind-address={LOCALHOST}", f"--advertise-address={LOCALHOST}",
        f"--secure-port={lay.ports.apiserver}", f"--cert-dir={lay.state / 'apiserver-certs'}",
        f"--tls-cert-file={pki.cert('serving')}", f"--tls-private-key-file={pki.key('serving')}",
        f"--client-ca-file={pki.ca}", *_front_proxy(pki),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC", f"--enable-admission-plugins={ADMISSION}",
        "--allow-privileged=true", "--profiling=false", "--endpoint-reconciler-type=none",
    ]


def _component_common(lay: Layout, who: str, port: int) -> list[str]:
    kubeconfig = lay.kubeconfig(who)
    pki = lay.pki
    return [f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}", f"--bind-address={LOCALHOST}",
            f"--secure-port={port}", f"--tls-cert-file={pki.cert('serving')}",
            f"--tls-private-key-file={pki.key('serving')}", f"--client-ca-file={pki.ca}",
            "--leader-elect=false", "--profiling=false"]


def controller_manager(lay: Layout) -> list[str]:
    pki = lay.pki
    return [str(binary("kube-controller-manager").path),
            *_component_common(lay, "controller-manager", lay.ports.controller_manager),
            f"--service-account-private-key-file={pki.sa_key}", f"--root-ca-file={pki.ca}",
            f"--cluster-signing-cert-file={pki.ca}", f"--cluster-signing-key-file={pki.key('ca')}",
            "--use-service-account-credentials=true", f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--controllers=*"]


def scheduler(lay: Layout) -> list[str]:
    return [str(binary("kube-scheduler").path),
            *_component_common(lay, "scheduler", lay.ports.scheduler)]


KWOK_CONFIG = """\
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options: {}
"""


def kwok(lay: Layout) -> list[str]:
    config = lay.state / "kwok.yaml"
    config.write_text(KWOK_CONFIG)
    return [str(binary("kwok").path), f"--config={config}",
            f"--kubeconfig={lay.kubeconfig('kwok')}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--cidr={POD_CIDR}", f"--node-ip={LOCALHOST}",
            f"--server-address={LOCALHOST}:{lay.ports.kwok}",
            "--node-lease-duration-seconds=40", "--v=WARN"]
