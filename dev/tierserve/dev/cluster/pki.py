"""Local PKI for the dev cluster: a CA, serving and client certificates, SA signing keys.

Everything is generated with the ``cryptography`` package into ``<state>/pki`` at
``cluster up``; nothing leaves the machine. Client certificates encode Kubernetes
identities (CN = user, O = groups), which RBAC's bootstrap policy already knows for the
controller manager and the scheduler.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=365)
SERVING_DNS = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
               "kubernetes.default.svc.cluster.local")
SERVING_IPS = ("127.0.0.1", "10.96.0.1")

# file stem -> (common name, organisations) for client certificates
CLIENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "admin": ("tierserve-admin", ("system:masters",)),
    "controller-manager": ("system:kube-controller-manager", ()),
    "scheduler": ("system:kube-scheduler", ()),
    "kwok": ("kwok-controller", ("system:masters",)),
    "front-proxy-client": ("front-proxy-client", ()),
}


@dataclass(frozen=True)
class Pki:
    """Paths of the generated material."""

    root: Path

    def cert(self, stem: str) -> Path:
        return self.root / f"{stem}.crt"

    def key(self, stem: str) -> Path:
        return self.root / f"{stem}.key"

    @property
    def ca(self) -> Path:
        return self.cert("ca")

    @property
    def sa_key(self) -> Path:
        return self.root / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.root / "sa.pub"


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    path.write_bytes(pem)
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _builder(subject: x509.Name, issuer: x509.Name, public: Any) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(public).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + _VALIDITY))


def _make_ca(pki: Pki) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("tierserve-dev-ca")
    cert = (_builder(name, name, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(key, hashes.SHA256()))
    _write_key(pki.key("ca"), key)
    _write_cert(pki.ca, cert)
    return key, cert


def _issue(pki: Pki, stem: str, subject: x509.Name, usage: x509.ObjectIdentifier,
           ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
           sans: list[x509.GeneralName] | None = None) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (_builder(subject, ca[1].subject, key.public_key())
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    _write_key(pki.key(stem), key)
    _write_cert(pki.cert(stem), builder.sign(ca[0], hashes.SHA256()))


def _serving_sans() -> list[x509.GeneralName]:
    dns: list[x509.GeneralName] = [x509.DNSName(d) for d in SERVING_DNS]
    return dns + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVING_IPS]


def _make_sa_keys(pki: Pki) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(pki.sa_key, key)
    pki.sa_pub.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def generate(root: Path) -> Pki:
    """Create the CA, the serving certificate, client certificates and SA keys."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    pki = Pki(root)
    ca = _make_ca(pki)
    _issue(pki, "serving", _name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH, ca,
           _serving_sans())
    for stem, (cn, orgs) in CLIENTS.items():
        _issue(pki, stem, _name(cn, orgs), ExtendedKeyUsageOID.CLIENT_AUTH, ca)
    _make_sa_keys(pki)
    return pki


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def kubeconfig(pki: Pki, stem: str, server: str, cluster: str) -> dict[str, Any]:
    """A self-contained kubeconfig (data embedded) for client identity ``stem``."""
    user = f"{cluster}-{stem}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {
            "server": server, "certificate-authority-data": _b64(pki.ca)}}],
        "users": [{"name": user, "user": {
            "client-certificate-data": _b64(pki.cert(stem)),
            "client-key-data": _b64(pki.key(stem))}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user}}],
        "current-context": cluster,
    }


def write_kubeconfig(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path
