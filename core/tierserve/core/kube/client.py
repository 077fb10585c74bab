"""The one Kubernetes client: every API call of the operator, the router and the
autoscaler goes through :class:`KubeApi` (list/watch through
:class:`tierserve.core.kube.reflector.Reflector` on top of it).

Credentials come from :class:`tierserve.core.kube.credentials.Credentials` (kubeconfig or
in-cluster service account, loaded once); requests go over one shared aiohttp session.
The bearer token is taken from the credentials on every request (a rotated
service-account token is picked up), and a 401 re-reads the credentials and retries once.
Failures raise the typed errors of :mod:`tierserve.core.kube.errors`. Every write is
counted by verb, so the operator benchmark can prove zero writes in steady state.

Contracts: ``apply`` is server-side apply with ``force`` (idempotent create-or-update with
deterministic names); ``get`` returns ``None`` for 404; ``delete`` treats 404 as done.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tierserve.core.kube.credentials import Credentials
from tierserve.core.kube.errors import ApiError, NotFound, Unauthorized

__all__ = ["ApiError", "KubeApi", "resource_path"]

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
    "CustomResourceDefinition": ("customresourcedefinitions", False),
}


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


# HTTP method -> the API server's verb (server-side apply is its own verb, ``apply``, as
# in the API server's own ``apiserver_request_total{verb="APPLY"}``)
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
APPLY_PATCH = "application/apply-patch+yaml"


def verb_of(method: str, content_type: str) -> str:
    """The write verb of a request (``create``, ``update``, ``patch``, ``apply``, ``delete``)."""
    if method == "PATCH" and content_type == APPLY_PATCH:
        return "apply"
    return _VERBS.get(method, method.lower())


@dataclass
class WriteCounter:
    """Write calls by verb (``tierserve_operator_api_writes_total{verb}``)."""

    by_verb: dict[str, int] = field(default_factory=dict)

    def count(self, verb: str) -> None:
        self.by_verb[verb] = self.by_verb.get(verb, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.by_verb.values())


class KubeApi:
    """Minimal async Kubernetes client: JSON in, JSON out."""

    def __init__(self, credentials: Credentials, session: aiohttp.ClientSession,
                 user_agent: str = "tierserve", owns_session: bool = True) -> None:
        self.credentials = credentials
        self._host = credentials.server.rstrip("/")
        self._session = session
        self._base = {"Accept": "application/json", "User-Agent": user_agent}
        self._owns_session = owns_session
        self.writes = WriteCounter()

    @classmethod
    async def connect(cls, kubeconfig: str | None = None, pool: int = 64,
                      credentials: Credentials | None = None) -> KubeApi:
        """A client for ``credentials`` (else loaded from ``kubeconfig``, else in-cluster,
        else the default kubeconfig)."""
        creds = credentials if credentials is not None else await Credentials.load(kubeconfig)
        connector = aiohttp.TCPConnector(limit=pool, ssl=creds.ssl_context())
        return cls(creds, aiohttp.ClientSession(connector=connector))

    def view(self) -> KubeApi:
        """The same client (session, credentials) with its own write counter: the leader
        Lease's renewals are not the operator's writes."""
        return KubeApi(self.credentials, self._session, self._base["User-Agent"],
                       owns_session=False)

    async def close(self) -> None:
        if self._owns_session:
            await self._session.close()

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {**self._base, **self.credentials.auth_headers()}
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    @asynccontextmanager
    async def _send(self, method: str, path: str, data: str | None = None,
                    content_type: str | None = None, params: dict[str, str] | None = None,
                    timeout: aiohttp.ClientTimeout | None = None,  # noqa: ASYNC109
                    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One request; a 401 re-reads the credentials and retries once; an error status
        raises its typed :class:`ApiError`."""
        for attempt in (1, 2):
            kwargs: dict[str, Any] = {"data": data, "params": params,
                                      "headers": self._headers(content_type)}
            if timeout is not None:
                kwargs["timeout"] = timeout
            async with self._session.request(method, self._host + path, **kwargs) as resp:
                if resp.status == 401 and attempt == 1 and await self.credentials.reload():
                    continue
                if resp.status >= 400:
                    raise ApiError(resp.status, await resp.text())
                yield resp
                return
        raise Unauthorized(401, "credentials rejected after re-reading them")

    async def request(self, method: str, path: str, body: Any = None,
                      content_type: str = "application/json",
                      params: dict[str, str] | None = None) -> Any:
        if method != "GET":
            self.writes.count(verb_of(method, content_type))
        data = json.dumps(body) if body is not None else None
        async with self._send(method, path, data, content_type, params) as resp:
            text = await resp.text()
            return json.loads(text) if text else None

    async def raw(self, path: str) -> str:
        """GET a non-JSON endpoint (``/metrics``, ``/version`` text)."""
        async with self._send("GET", path) as resp:
            return await resp.text()

    async def get(self, api_version: str, kind: str, namespace: str | None,
                  name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await self.request(
                "GET", resource_path(api_version, kind, namespace, name))
            return result
        except NotFound:
            return None

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
        async with self._send("GET", resource_path(api_version, kind, namespace),
                              params=params, timeout=timeout) as resp:
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
            "PATCH", path, manifest, APPLY_PATCH,
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
                     name: str, uid: str | None = None) -> None:
        """Delete (404: already gone); with ``uid`` only that object (a 409 when the name
        now holds another one), its dependents collected in the background."""
        body = None if uid is None else {
            "apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid},
            "propagationPolicy": "Background"}
        with suppress(NotFound):
            await self.request("DELETE", resource_path(api_version, kind, namespace, name),
                               body)

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
