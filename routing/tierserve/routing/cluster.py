"""Cluster mode (``tierserve router --kubernetes``): routes from the Kubernetes API.

:class:`ClusterSource` keeps three caches by list-then-watch (the shared
:class:`tierserve.core.kube.reflector.Reflector`):
``LLMRoute`` and ``LLMDeployment`` objects and the EndpointSlices of Services (label
``kubernetes.io/service-name``), in one namespace or all. Every change marks the config
dirty; after a short debounce (a rollout touches many slices at once) the pure builder
:func:`tierserve.routing.kubeconfig.router_config` turns the caches into a
:class:`RouterConfig` and, when it differs from the one applied, ``Router.apply_config``
swaps it in. That swap keeps in-flight requests on the snapshot they started with and
carries per-deployment state over, so changes never drop requests. A watch that ends is
resumed from its last resourceVersion; an expired one (410) re-lists; transient errors
back off; a kind the router may not read (403) is logged once and re-checked slowly.

With ``api_keys_secret`` a fourth reflector watches that one Secret (field selector
``metadata.name``, so RBAC can restrict the router to it with ``resourceNames``) and
its entries become the router's API keys (:func:`tierserve.routing.kubeconfig.api_keys`),
hot-swapped like any other change. Key values never reach logs.

Every ``ab_interval_s`` the router's A/B statistics are written to each served route's
``status.ab`` (merge patch on the status subresource) in the ``ABReadout`` shape, only when
the readout differs from what the status already shows, so an idle router writes nothing.
With ``replicas`` (the router's own Service, :mod:`tierserve.routing.replicas`) only the
replica holding the writer Lease writes, and it writes the readout of every ready
replica's statistics merged; the ready replicas' count divides each API key's limits
(``auth.replicas``). Without it this process writes its own statistics (one replica).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp

from tierserve.core.api.deployment import API_VERSION
from tierserve.core.api.route import ABReadout, VariantReadout
from tierserve.core.kube.client import KubeApi
from tierserve.core.kube.errors import ApiError, Conflict
from tierserve.core.kube.reflector import Change, Reflector, Resource, run_all, wait_synced
from tierserve.core.routerconfig import ApiKey, RouterConfig
from tierserve.routing.abtest import merged
from tierserve.routing.app import Router
from tierserve.routing.kubeconfig import (
    SERVICE_NAME_LABEL,
    api_keys,
    route_owners,
    router_config,
)
from tierserve.routing.replicas import RouterReplicas, Statistics, route_parts

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Key = tuple[str, str]
_NET_ERRORS = (ApiError, aiohttp.ClientError, OSError, TimeoutError, ValueError)


class KubeScaleSignal:
    """The router as activator: wakes a scaled-to-zero LLMDeployment (0 -> 1 replica).

    ``Hold`` calls :meth:`wake` once per hold episode. The scale subresource is read and,
    only when ``spec.replicas`` is 0, patched to 1 with the read ``resourceVersion`` as a
    precondition: a concurrent change (another router replica, the autoscaler) wins and
    the call is a no-op, so waking is idempotent and never scales anything down.
    Deployments without a namespace (static ones of a base config) are not in the cluster.
    """

    def __init__(self, api: KubeApi | None = None) -> None:
        self.api = api  # set by the cluster source once connected

    async def wake(self, deployment: str) -> None:
        namespace, sep, name = deployment.partition("/")
        if self.api is None or not sep:
            log.info("deployment %s has no ready replica; holding requests", deployment)
            return
        scale = await self.api.get_scale(API_VERSION, "LLMDeployment", namespace, name)
        replicas = int((scale.get("spec") or {}).get("replicas") or 0)
        if replicas != 0:
            log.info("LLMDeployment %s wants %d replica(s); holding requests until one is "
                     "ready", deployment, replicas)
            return
        version = str((scale.get("metadata") or {}).get("resourceVersion") or "")
        try:
            await self.api.patch_scale(API_VERSION, "LLMDeployment", namespace, name, 1,
                                       resource_version=version or None)
        except Conflict:
            log.info("LLMDeployment %s changed while waking it; leaving it as it is",
                     deployment)
            return
        log.info("scaled LLMDeployment %s from 0 to 1 replica for held requests", deployment)


def _ms(seconds: object) -> float | None:
    return round(seconds * 1000, 3) if isinstance(seconds, int | float) else None


def ab_status(readout: dict[str, Any], updated: str) -> dict[str, Any]:
    """``Router.ab_readout`` (seconds, comparisons) -> ``status.ab`` (ABReadout, wire form).

    Two variants: the p-value of the one comparison with the control. More: the smallest
    p-value, Bonferroni-adjusted for the number of comparisons.
    """
    variants = [VariantReadout(
        name=v["name"], requests=v["requests"], error_rate=round(v["error_rate"], 6),
        ttft_p50_ms=_ms(v["ttft_p50_seconds"]), ttft_p95_ms=_ms(v["ttft_p95_seconds"]),
        tpot_p50_ms=_ms(v["tpot_p50_seconds"]), tpot_p95_ms=_ms(v["tpot_p95_seconds"]))
        for v in readout["variants"]]
    tested = [c for c in readout["comparisons"] if c.get("p_value") is not None]
    test, p_value, significant = str(readout["test"]), None, None
    if tested:
        best = min(tested, key=lambda c: float(c["p_value"]))
        p_value = round(min(1.0, float(best["p_value"]) * len(readout["comparisons"])), 6)
        significant = p_value < float(readout["alpha"])
        test += (f" on {best['metric']}, {best['variant']} vs {best['control']} "
                 f"(alpha {readout['alpha']}")
        test += f", Bonferroni x{len(readout['comparisons'])})" if len(
            readout["comparisons"]) > 1 else ")"
    elif readout["comparisons"]:
        test += f" (not yet: {readout['comparisons'][0].get('note', 'too few samples')})"
    ab = ABReadout(variants=variants, test=test, p_value=p_value, significant=significant,
                   updated=updated)
    return ab.model_dump(by_alias=True, mode="json")


def _comparable(value: Any) -> Any:
    """Drop ``updated`` and nulls (a merge patch deletes null keys) for comparison."""
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if v is not None and k != "updated"}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return value


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ClusterSource:
    """Feeds the router from the cluster and writes the A/B readout back."""

    def __init__(self, api: KubeApi, router: Router, namespace: str | None = None, *,
                 base: RouterConfig | None = None, debounce_s: float = 0.1,
                 ab_interval_s: float = 10.0, now: Callable[[], str] = _now,
                 api_keys_secret: Key | None = None,
                 replicas: RouterReplicas | None = None) -> None:
        self._api, self._router, self._base, self._now = api, router, base, now
        self._debounce, self._ab_interval = debounce_s, ab_interval_s
        self._dirty = asyncio.Event()
        self._applied: RouterConfig | None = None
        self._skipped: set[Key] = set()
        mark = self._mark
        self.routes = Reflector(api, Resource(API_VERSION, "LLMRoute", namespace), mark)
        self.deployments = Reflector(api, Resource(API_VERSION, "LLMDeployment", namespace),
                                     mark)
        self.slices = Reflector(api, Resource("discovery.k8s.io/v1", "EndpointSlice", namespace,
                                              label_selector=SERVICE_NAME_LABEL), mark)
        self._secret_key = api_keys_secret
        self.secrets = (None if api_keys_secret is None else Reflector(
            api, Resource("v1", "Secret", api_keys_secret[0],
                          field_selector=f"metadata.name={api_keys_secret[1]}"), mark))
        self._keys: list[ApiKey] = []
        self.replicas = replicas
        if replicas is not None:
            replicas.slices.subscribe(mark)  # the replica count divides the key limits
        router.metrics.ab_writer.set_function(
            lambda: float(replicas is None or replicas.leading))

    def _mark(self, _change: Change) -> None:
        self._dirty.set()

    @property
    def _reflectors(self) -> list[Reflector]:
        found = [self.routes, self.deployments, self.slices]
        found += [] if self.secrets is None else [self.secrets]
        return found if self.replicas is None else [*found, self.replicas.slices]

    async def run(self) -> None:
        """Watch, rebuild and publish until cancelled."""
        tasks = [asyncio.create_task(run_all(self._reflectors)),
                 asyncio.create_task(self._rebuild_loop()),
                 asyncio.create_task(self._ab_loop())]
        if self.replicas is not None:
            tasks.append(asyncio.create_task(self.replicas.run()))
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def synced(self) -> None:
        await wait_synced(self._reflectors)

    def _with_keys(self) -> RouterConfig | None:
        """The base config, with the Secret's API keys when a Secret is the key source,
        and the key limits shared by the ready router replicas.

        With a Secret configured authentication is always on (``required``): a missing or
        empty Secret refuses every request rather than opening the router. A bad Secret
        keeps the keys loaded before (the error names the Secret, never a value).
        """
        base = self._shared(self._base)
        if self.secrets is None or self._secret_key is None:
            return base
        base = base or RouterConfig()
        try:
            self._keys = api_keys(self.secrets.objects.get(self._secret_key))
        except ValueError as exc:
            log.error("API keys Secret %s/%s not applied, keeping the previous keys: %s",
                      *self._secret_key, exc)
        auth = base.auth.model_copy(update={"keys": [*base.auth.keys, *self._keys],
                                            "required": True})
        return base.model_copy(update={"auth": auth})

    def _shared(self, base: RouterConfig | None) -> RouterConfig | None:
        """``base`` with ``auth.replicas`` = the ready router replicas (with ``replicas``)."""
        if self.replicas is None:
            return base
        base = base or RouterConfig()
        auth = base.auth.model_copy(update={"replicas": self.replicas.count()})
        return base.model_copy(update={"auth": auth})

    def rebuild(self) -> bool:
        """Build from the caches; apply when changed. True when a new config was applied."""
        try:
            config = router_config(self.routes.objects.values(),
                                   self.deployments.objects.values(),
                                   self.slices.objects.values(), self._with_keys())
        except ValueError as exc:  # the builder skips bad objects; this is a safety net
            log.error("cluster objects give no valid router config (%s); keeping the "
                      "running one", exc)
            return False
        self._log_skipped(config)
        if config == self._applied:
            return False
        try:
            self._router.apply_config(config)
        except ValueError as exc:
            log.error("router config rejected, keeping the running one: %s", exc)
            return False
        self._applied = config
        return True

    def _log_skipped(self, config: RouterConfig) -> None:
        served = {r.model for r in config.routes}
        owners = route_owners(self.routes.objects.values())
        skipped = {k for k in self.routes.objects if k not in
                   {owners[m] for m in served if m in owners}}
        for ns, name in sorted(skipped - self._skipped):
            log.warning("LLMRoute %s/%s is not served (invalid, a model name another route "
                        "claims first, or an LLMDeployment it names is missing)", ns, name)
        self._skipped = skipped

    async def _rebuild_loop(self) -> None:
        await self.synced()
        while True:
            self.rebuild()
            await self._dirty.wait()
            await asyncio.sleep(self._debounce)  # coalesce bursts (rollouts)
            self._dirty.clear()

    async def _ab_loop(self) -> None:
        await self.synced()
        while True:
            await asyncio.sleep(self._ab_interval)
            await self.publish_ab()

    async def _statistics(self) -> list[Statistics] | None:
        """Every replica's statistics when this one writes; ``None``: write nothing."""
        if self.replicas is None:
            return []  # one replica: its own
        if not self.replicas.leading:
            return None  # another replica writes status.ab
        return await self.replicas.statistics()

    def _readout(self, model: str, statistics: list[Statistics]) -> dict[str, Any]:
        if self.replicas is None:
            return self._router.ab_readout(model)
        order = [v.name for v in self._router.snapshot.routes[model].variants]
        return merged(route_parts(statistics, model)).readout(order)

    async def publish_ab(self) -> int:
        """Write changed A/B readouts to LLMRoute status; returns how many were written."""
        written = 0
        statistics = await self._statistics()
        if statistics is None:
            return 0
        snapshot = self._router.snapshot
        static = {r.model for r in self._base.routes} if self._base else set()
        for model, key in route_owners(self.routes.objects.values()).items():
            body = self.routes.objects.get(key)
            if body is None or model not in snapshot.routes or model in static:
                continue
            new = ab_status(self._readout(model, statistics), self._now())
            old = (body.get("status") or {}).get("ab")
            if _comparable(new) == _comparable(old or {}):
                continue
            if not any(v["requests"] for v in new["variants"]):
                continue  # nothing to say yet (nor erase a readout a restart forgot)
            try:
                updated = await self._api.patch_status(API_VERSION, "LLMRoute", key[0], key[1],
                                                       {"ab": new})
            except _NET_ERRORS as exc:
                log.warning("A/B readout for LLMRoute %s/%s not written: %s", *key, exc)
                continue
            if key in self.routes.objects:  # not deleted meanwhile
                self.routes.record(updated)  # until the watch shows our write
            self._router.metrics.ab_writes.inc()
            written += 1
        return written
