"""The one module that talks to the Kubernetes API (besides kopf's own watches).

Credentials come from kubernetes_asyncio's loaders (kubeconfig or in-cluster service
account); requests go over one shared aiohttp session. Every write is counted, so the
operator benchmark can prove zero writes in steady state.

Contracts: ``apply`` is server-side apply with ``force`` (idempotent create-or-update with
deterministic names); ``get`` returns ``None`` for 404; ``delete`` treats 404 as done.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio import config as kconfig
from kubernetes_asyncio.client import Configuration

FIELD_MANAGER = "tierserve"
Items = list[dict[str, Any]]  # (``KubeApi.list`` shadows the builtin in the class body)

# kind -> (plural, namespaced)
KINDS: dict[str, tuple[str, bool]] = {
    "LLMDeployment": ("llmdeployments", True),
    "LLMRoute": ("llmroutes", True),
    "RayService": ("rayservices", True),
    "Deployment": ("deployments", True),
    "Service": ("services", True),
    "ConfigMap": ("configmaps", True),
    "Pod": ("pods", True),
    "Event": ("events", True),
    "Lease": ("leases", True),
    "EndpointSlice": ("endpointslices", True),
    "Secret": ("secrets", True),
    "Node": ("nodes", False),
}


class ApiError(Exception):
    """A non-success answer from the API server."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"{status}: {body[:500]}")
        self.status = status
        self.body = body

    @property
    def retryable(self) -> bool:
        return self.status in (409, 429) or self.status >= 500


def resource_path(api_version: str, kind: str, namespace: str | None = None,
                  name: str | None = None, subresource: str | None = None) -> str:
    plural, namespaced = KINDS[kind]
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if namespaced and namespace:
        base += f"/namespaces/{namespace}"
    path = f"{base}/{plural}"
    if name:
        path += f"/{name}"
    if subresource:
        path += f"/{subresource}"
    return path


def _selectors(label_selector: str | None, field_selector: str | None) -> dict[str, str]:
    params = {"labelSelector": label_selector} if label_selector else {}
    if field_selector:
        params["fieldSelector"] = field_selector
    return params


@dataclass
class WriteCounter:
    total: int = 0


class KubeApi:
    """Minimal async Kubernetes client: JSON in, JSON out."""

    def __init__(self, host: str, session: aiohttp.ClientSession,
                 headers: dict[str, str]) -> None:
        self._host = host.rstrip("/")
        self._session = session
        self._headers = headers
        self.writes = WriteCounter()

    @classmethod
    async def connect(cls, kubeconfig: str | None = None, pool: int = 64) -> KubeApi:
        cfg = Configuration()
        if kubeconfig is not None:
            await kconfig.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        else:
            try:
                kconfig.load_incluster_config(  # type: ignore[no-untyped-call]
                    client_configuration=cfg)
            except kconfig.ConfigException:
                await kconfig.load_kube_config(client_configuration=cfg)
        ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert) if cfg.ssl_ca_cert else None
        if ctx is not None and cfg.cert_file:
            ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
        headers = {"Accept": "application/json", "User-Agent": "tierserve-operator"}
        token = (cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get("BearerToken")
        if token:
            prefix = (cfg.api_key_prefix or {}).get("authorization", "")
            headers["Authorization"] = f"{prefix} {token}".strip()
        connector = aiohttp.TCPConnector(limit=pool, ssl=ctx if ctx is not None else False)
        return cls(str(cfg.host), aiohttp.ClientSession(connector=connector), headers)

    async def close(self) -> None:
        await self._session.close()

    async def request(self, method: str, path: str, body: Any = None,
                      content_type: str = "application/json",
                      params: dict[str, str] | None = None) -> Any:
        if method != "GET":
            self.writes.total += 1
        headers = {**self._headers, "Content-Type": content_type}
        data = json.dumps(body) if body is not None else None
        async with self._session.request(method, self._host + path, data=data,
                                         headers=headers, params=params) as resp:
            text = await resp.text()
            if resp.status >= 400:
                raise ApiError(resp.status, text)
            return json.loads(text) if text else None

    async def raw(self, path: str) -> str:
        """GET a non-JSON endpoint (``/metrics``, ``/version`` text)."""
        async with self._session.get(self._host + path, headers=self._headers) as resp:
            text = await resp.text()
            if resp.status >= 400:
                raise ApiError(resp.status, text)
            return text

    async def get(self, api_version: str, kind: str, namespace: str | None,
                  name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await self.request(
                "GET", resource_path(api_version, kind, namespace, name))
            return result
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def list(self, api_version: str, kind: str, namespace: str | None = None,
                   label_selector: str | None = None) -> list[dict[str, Any]]:
        params = {"labelSelector": label_selector} if label_selector else None
        result = await self.request("GET", resource_path(api_version, kind, namespace),
                                    params=params)
        items: list[dict[str, Any]] = result.get("items", [])
        return items

    async def list_versioned(self, api_version: str, kind: str, namespace: str | None = None,
                             label_selector: str | None = None,
                             field_selector: str | None = None) -> tuple[Items, str]:
        """Like :meth:`list`, plus the list's ``resourceVersion`` to start a watch from.

        ``field_selector`` (such as ``metadata.name=NAME``) is what RBAC rules restricted
        with ``resourceNames`` require for list and watch.
        """
        params = _selectors(label_selector, field_selector) or None
        result = await self.request("GET", resource_path(api_version, kind, namespace),
                                    params=params)
        items: Items = result.get("items", [])
        return items, str((result.get("metadata") or {}).get("resourceVersion") or "")

    async def watch(self, api_version: str, kind: str, namespace: str | None,
                    resource_version: str, label_selector: str | None = None,
                    timeout_s: int = 300, field_selector: str | None = None,
                    ) -> AsyncIterator[dict[str, Any]]:
        """Stream watch events (``{"type": ..., "object": ...}``) from ``resource_version``.

        Ends when the server closes the watch (about ``timeout_s``); an ``ERROR`` event
        (such as 410 Gone: the version is too old) is yielded for the caller to re-list.
        """
        params = {"watch": "1", "resourceVersion": resource_version,
                  "allowWatchBookmarks": "true", "timeoutSeconds": str(timeout_s)}
        params.update(_selectors(label_selector, field_selector))
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=timeout_s + 30)
        async with self._session.get(self._host + resource_path(api_version, kind, namespace),
                                     headers=self._headers, params=params,
                                     timeout=timeout) as resp:
            if resp.status >= 400:
                raise ApiError(resp.status, await resp.text())
            buffer = b""
            async for chunk in resp.content.iter_any():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        event: dict[str, Any] = json.loads(line)
                        yield event

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        meta = manifest["metadata"]
        path = resource_path(manifest["apiVersion"], manifest["kind"], meta.get("namespace"),
                             meta["name"])
        result: dict[str, Any] = await self.request(
            "PATCH", path, manifest, "application/apply-patch+yaml",
            {"fieldManager": FIELD_MANAGER, "force": "true"})
        return result

    async def patch_status(self, api_version: str, kind: str, namespace: str, name: str,
                           status: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch the status subresource; returns the updated object."""
        result: dict[str, Any] = await self.request(
            "PATCH", resource_path(api_version, kind, namespace, name, "status"),
            {"status": status}, "application/merge-patch+json")
        return result

    async def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        meta = manifest["metadata"]
        result: dict[str, Any] = await self.request(
            "POST", resource_path(manifest["apiVersion"], manifest["kind"],
                                  meta.get("namespace")), manifest)
        return result

    async def replace(self, manifest: dict[str, Any]) -> dict[str, Any]:
        meta = manifest["metadata"]
        result: dict[str, Any] = await self.request(
            "PUT", resource_path(manifest["apiVersion"], manifest["kind"],
                                 meta.get("namespace"), meta["name"]), manifest)
        return result

    async def delete(self, api_version: str, kind: str, namespace: str | None,
                     name: str) -> None:
        try:
            await self.request("DELETE", resource_path(api_version, kind, namespace, name))
        except ApiError as exc:
            if exc.status != 404:
                raise

    async def get_scale(self, api_version: str, kind: str, namespace: str,
                        name: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "GET", resource_path(api_version, kind, namespace, name, "scale"))
        return result

    async def patch_scale(self, api_version: str, kind: str, namespace: str, name: str,
                          replicas: int, resource_version: str | None = None) -> None:
        """Merge-patch ``spec.replicas`` of the scale subresource; with ``resource_version``
        the API server refuses (409) when the object changed since it was read."""
        body: dict[str, Any] = {"spec": {"replicas": replicas}}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        await self.request("PATCH", resource_path(api_version, kind, namespace, name, "scale"),
                           body, "application/merge-patch+json")
