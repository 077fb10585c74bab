"""LLMRoute reconciliation: what CEL cannot check, reported as conditions.

A route names LLMDeployments (variants, tiers, fallback). The API server cannot know if
they exist; this reconciler does, from the operator's store, and sets ``Ready`` with a
reason a model owner can act on. It also writes where clients reach the route:
``status.endpoint``, the router Service's OpenAI base URL (``--router-url``, which the
chart sets to its router Service), and ``status.model``, the name they send. The router
itself (``tierserve router --kubernetes``) writes the A/B readout into ``status.ab``;
this module leaves that field alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry

from tierserve.core.api.deployment import API_VERSION, Condition
from tierserve.core.api.errors import InvalidObject, validate
from tierserve.core.api.route import LLMRouteSpec
from tierserve.core.kube.client import KubeApi
from tierserve.core.kube.errors import ApiError, Conflict, Transient
from tierserve.core.kube.events import post_event
from tierserve.operator.api_problems import error_reason
from tierserve.operator.metrics import OperatorMetrics
from tierserve.operator.status import Problem, cond, differs
from tierserve.operator.store import Key, Store
from tierserve.operator.workqueue import WorkQueue

log = logging.getLogger("tierserve.operator")
WAITING = ("DeploymentsNotReady",)  # not-ready reasons that are a wait, not an error


def referenced(spec: LLMRouteSpec) -> list[str]:
    names = [v.deployment for v in spec.variants or []]
    if spec.tiers is not None:
        names += [spec.tiers.fast, spec.tiers.slow]
    return list(dict.fromkeys([*names, *spec.fallback]))


def is_ready(body: dict[str, Any] | None) -> bool:
    """The object's (an LLMDeployment's or an LLMRoute's) Ready condition is True."""
    conditions = ((body or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def route_problem(spec: LLMRouteSpec, namespace: str, store: Store) -> Problem | None:
    names = referenced(spec)
    missing = [n for n in names if (namespace, n) not in store.deployments]
    if missing:
        quoted = ", ".join(f'"{n}"' for n in missing)
        return Problem("DeploymentNotFound",
                       f"LLMDeployment {quoted} not found in namespace {namespace}")
    waiting = [n for n in names if not is_ready(store.deployments.get((namespace, n)))]
    if waiting:
        return Problem("DeploymentsNotReady", f"waiting for LLMDeployment {', '.join(waiting)}")
    return None


def route_status(body: dict[str, Any], store: Store, now: str,
                 router_url: str | None = None) -> dict[str, Any]:
    """The operator-owned status: ``Ready``, and (for a valid spec) the model name and
    the router URL clients send it to (None values are not written)."""
    old = body.get("status") or {}
    generation = body["metadata"].get("generation")
    conditions = {c["type"]: Condition.model_validate(c) for c in old.get("conditions", [])}
    spec: LLMRouteSpec | None = None
    try:
        spec = validate(LLMRouteSpec, body.get("spec") or {})
        problem = route_problem(spec, body["metadata"]["namespace"], store)
    except InvalidObject as exc:
        problem = Problem("InvalidSpec", str(exc))
    ready = cond("Ready", problem is None,
                 problem.reason if problem else "DeploymentsReady",
                 problem.message if problem else "every referenced LLMDeployment is Ready",
                 generation, conditions, now)
    return {"observedGeneration": generation, "conditions": [ready.wire()],
            "endpoint": router_url if spec is not None else None,
            "model": spec.model if spec is not None else None}


def route_error(status: dict[str, Any]) -> str | None:
    """The Ready condition's reason when the route is wrong (a metrics label); waiting for
    deployments to become ready is not an error."""
    ready = status["conditions"][0]
    if ready["status"] == "True" or ready["reason"] in WAITING:
        return None
    return str(ready["reason"])


class RouteReconciler:
    def __init__(self, api: KubeApi, store: Store, queue: WorkQueue[Key],
                 clock: Callable[[], str], metrics: OperatorMetrics | None = None,
                 timer: Callable[[], float] = time.monotonic,
                 router_url: str | None = None) -> None:
        self.api, self.store, self.queue, self.clock = api, store, queue, clock
        self.router_url = router_url  # status.endpoint (None: the router is not installed)
        self.metrics = metrics if metrics is not None else OperatorMetrics(CollectorRegistry())
        self.timer = timer

    async def handle(self, key: Key) -> None:
        body = self.store.routes.get(key)
        if body is None or body["metadata"].get("deletionTimestamp"):
            self.queue.drop(key)
            return
        start = self.timer()
        error = await self._attempt(key, body)
        self.metrics.reconciled("route", self.timer() - start, error)

    async def _attempt(self, key: Key, body: dict[str, Any]) -> str | None:
        """Write the route's status if it changed; returns why the reconcile failed."""
        new = route_status(body, self.store, self.clock(), self.router_url)
        if not differs(new, body.get("status") or {}):
            self.queue.forget(key)
            return route_error(new)
        try:
            patch = {k: v for k, v in new.items() if v is not None}
            updated = await self.api.patch_status(API_VERSION, "LLMRoute", key[0], key[1],
                                                  patch)
            self.store.put_route(updated, deleted=False)
            ready = new["conditions"][0]
            await post_event(self.api, body, ready["reason"], ready["message"],
                             warning=ready["status"] != "True")
            self.queue.forget(key)
            return route_error(new)
        except Conflict as exc:  # re-read, no backoff
            self.queue.forget(key)
            self.queue.add_after(key, self.queue.base_delay)
            return error_reason(exc)
        except (Transient, OSError, TimeoutError) as exc:
            log.warning("route %s/%s status failed (%s); retry in %.1fs", *key, exc,
                        self.queue.retry(key))
            return error_reason(exc)
        except ApiError as exc:  # permanent (RBAC, gone, rejected): the same write fails again
            self.queue.forget(key)
            log.error("route %s/%s status not written (%s); not retrying until it changes",
                      *key, exc)
            return error_reason(exc)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
