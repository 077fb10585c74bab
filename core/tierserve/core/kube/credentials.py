"""Where the one Kubernetes client configuration comes from: a kubeconfig or the pod's
service account.

Loaded once per process and shared by everything that talks to the API server (our
client, and kopf's login handler in the operator), so there is one configuration and no
environment variable to set. A service-account token is a file the kubelet rotates
(bound tokens expire after about an hour): it is re-read whenever the file changes
(inode or mtime) and after a 401, so a long-running process never keeps a stale token.
A kubeconfig is re-loaded after a 401 as well (an exec plugin may hand out a new token).
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes_asyncio import config as kconfig
from kubernetes_asyncio.client import Configuration

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class CredentialsError(Exception):
    """No usable configuration (no kubeconfig, not in a pod)."""


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


@dataclass
class Credentials:
    """Server address, TLS material and the current bearer token (if any)."""

    server: str
    ca_path: str | None = None
    cert_path: str | None = None
    key_path: str | None = None
    insecure: bool = False
    token_file: Path | None = None  # re-read on change (service account)
    kubeconfig: str | None = None  # re-loaded after a 401 (kubeconfig source)
    static_token: str | None = None
    _file_token: str | None = field(default=None, repr=False)
    _file_stamp: tuple[int, int] | None = field(default=None, repr=False)

    @classmethod
    async def load(cls, kubeconfig: str | None = None, in_cluster: bool = False) -> Credentials:
        """``kubeconfig`` when given; the pod's service account only with ``in_cluster``;
        else the pod's service account, else the default kubeconfig (``$KUBECONFIG`` or
        ``~/.kube/config``). The ``--kubeconfig``/``--in-cluster`` flags
        (:mod:`tierserve.core.cliflags`) map to the two arguments."""
        if kubeconfig is not None:
            return await cls.from_kubeconfig(kubeconfig)
        if in_cluster:
            return cls.in_cluster()
        try:
            return cls.in_cluster()
        except CredentialsError:
            return await cls.from_kubeconfig(None)

    @classmethod
    def in_cluster(cls, directory: Path = SERVICE_ACCOUNT_DIR,
                   host: str | None = None, port: str | None = None) -> Credentials:
        host = host or os.environ.get("KUBERNETES_SERVICE_HOST")
        port = port or os.environ.get("KUBERNETES_SERVICE_PORT")
        token = directory / "token"
        if not host or not port or not token.is_file():
            raise CredentialsError(f"not in a pod (no service host or no {token})")
        host = f"[{host}]" if ":" in host else host
        ca = directory / "ca.crt"
        return cls(server=f"https://{host}:{port}", ca_path=str(ca) if ca.is_file() else None,
                   token_file=token)

    @classmethod
    async def from_kubeconfig(cls, path: str | None) -> Credentials:
        cfg = Configuration()
        try:
            await kconfig.load_kube_config(config_file=path, client_configuration=cfg)
        except (kconfig.ConfigException, OSError) as exc:
            raise CredentialsError(f"no usable kubeconfig ({path or 'default'}): {exc}") from exc
        keys = cfg.api_key or {}
        token = str(keys.get("authorization") or keys.get("BearerToken") or "")
        if token[:7].lower() == "bearer ":  # the loader stores the header value
            token = token[7:]
        return cls(server=str(cfg.host), ca_path=cfg.ssl_ca_cert, cert_path=cfg.cert_file,
                   key_path=cfg.key_file, insecure=not cfg.verify_ssl,
                   kubeconfig=path or "", static_token=token or None)

    def token(self) -> str | None:
        """The bearer token now: the file's current content for a service account."""
        if self.token_file is None:
            return self.static_token
        stamp = _stamp(self.token_file)
        if stamp != self._file_stamp or self._file_token is None:
            self._file_token = self.token_file.read_text().strip()
            self._file_stamp = stamp
        return self._file_token

    async def reload(self) -> bool:
        """After a 401: re-read the source. True when the token changed (worth a retry)."""
        before = self.token()
        if self.token_file is not None:
            self._file_stamp = None
        elif self.kubeconfig is not None:
            fresh = await Credentials.from_kubeconfig(self.kubeconfig or None)
            self.static_token = fresh.static_token
        return self.token() != before

    def auth_headers(self) -> dict[str, str]:
        token = self.token()
        return {"Authorization": f"Bearer {token}"} if token else {}

    def ssl_context(self) -> ssl.SSLContext | bool:
        """For aiohttp: a context with the CA and client certificate, or ``False`` (plain
        HTTP, or ``insecure-skip-tls-verify``)."""
        if self.insecure or not self.server.startswith("https"):
            return False
        ctx = ssl.create_default_context(cafile=self.ca_path)
        if self.cert_path:
            ctx.load_cert_chain(self.cert_path, self.key_path)
        return ctx
