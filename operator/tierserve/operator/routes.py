"""LLMRoute reconciliation: what CEL cannot check, reported as conditions.

A route names LLMDeployments (variants, tiers, fallback). The API server cannot know if
they exist; this reconciler does, from the operator's store, and sets ``Ready`` with a
reason a model owner can act on. The router itself (``tierserve router --kubernetes``)
writes the A/B readout into ``status.ab``; this module leaves that field alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tierserve.core.api.deployment import API_VERSION, Condition
from tierserve.core.api.errors import InvalidObject, validate
from tierserve.core.api.route import LLMRouteSpec
from tierserve.core.kube.client import KubeApi
from tierserve.core.kube.errors import ApiError, Conflict, Transient
from tierserve.core.kube.events import post_event
from tierserve.operator.status import Problem, cond, differs
from tierserve.operator.store import Key, Store
from tierserve.operator.workqueue import WorkQueue

log = logging.getLogger("tierserve.operator")


def referenced(spec: LLMRouteSpec) -> list[str]:
    names = [v.deployment for v in spec.variants or []]
    if spec.tiers is not None:
        names += [spec.tiers.fast, spec.tiers.slow]
    return list(dict.fromkeys([*names, *spec.fallback]))


def _ready_of(body: dict[str, Any] | None) -> bool:
    conditions = ((body or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def route_problem(spec: LLMRouteSpec, namespace: str, store: Store) -> Problem | None:
    names = referenced(spec)
    missing = [n for n in names if (namespace, n) not in store.deployments]
    if missing:
        quoted = ", ".join(f'"{n}"' for n in missing)
        return Problem("DeploymentNotFound",
                       f"LLMDeployment {quoted} not found in namespace {namespace}")
    waiting = [n for n in names if not _ready_of(store.deployments.get((namespace, n)))]
    if waiting:
        return Problem("DeploymentsNotReady", f"waiting for LLMDeployment {', '.join(waiting)}")
    return None


def route_status(body: dict[str, Any], store: Store, now: str) -> dict[str, Any]:
    old = body.get("status") or {}
    generation = body["metadata"].get("generation")
    conditions = {c["type"]: Condition.model_validate(c) for c in old.get("conditions", [])}
    try:
        spec: LLMRouteSpec = validate(LLMRouteSpec, body.get("spec") or {})
        problem = route_problem(spec, body["metadata"]["namespace"], store)
    except InvalidObject as exc:
        problem = Problem("InvalidSpec", str(exc))
    ready = cond("Ready", problem is None,
                 problem.reason if problem else "DeploymentsReady",
                 problem.message if problem else "every referenced LLMDeployment is Ready",
                 generation, conditions, now)
    return {"observedGeneration": generation, "conditions": [ready.wire()]}


class RouteReconciler:
    def __init__(self, api: KubeApi, store: Store, queue: WorkQueue[Key],
                 clock: Callable[[], str]) -> None:
        self.api, self.store, self.queue, self.clock = api, store, queue, clock

    async def handle(self, key: Key) -> None:
        body = self.store.routes.get(key)
        if body is None or body["metadata"].get("deletionTimestamp"):
            self.queue.drop(key)
            return
        new = route_status(body, self.store, self.clock())
        if not differs(new, body.get("status") or {}):
            self.queue.forget(key)
            return
        try:
            updated = await self.api.patch_status(API_VERSION, "LLMRoute", key[0], key[1], new)
            self.store.put_route(updated, deleted=False)
            ready = new["conditions"][0]
            await post_event(self.api, body, ready["reason"], ready["message"],
                             warning=ready["status"] != "True")
            self.queue.forget(key)
        except Conflict:  # re-read, no backoff
            self.queue.forget(key)
            self.queue.add_after(key, self.queue.base_delay)
        except (Transient, OSError, TimeoutError) as exc:
            log.warning("route %s/%s status failed (%s); retry in %.1fs", *key, exc,
                        self.queue.retry(key))
        except ApiError as exc:  # permanent (RBAC, gone, rejected): the same write fails again
            self.queue.forget(key)
            log.error("route %s/%s status not written (%s); not retrying until it changes",
                      *key, exc)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
