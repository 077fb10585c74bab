"""Level-triggered reconciliation of one LLMDeployment.

For a key: read the object from the store; validate and size it; let the realizer bring
the runtime to the desired state; compute the status; write the status and post an
Event only if something changed. Errors are sorted by what they mean for retrying:
invalid specs and impossible sizing become conditions and are not retried (a new
generation re-queues them); so do permanent API errors (403, 404 of a kind, 422:
:mod:`.api_problems`); a conflict re-reads without backoff; transient API and network
errors back off per key. Each reconcile is counted, timed (on the injected monotonic
``timer``) and, when it fails, its reason recorded (:mod:`.metrics`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry

from tierserve.core.api.deployment import API_VERSION
from tierserve.core.api.errors import InvalidObject
from tierserve.core.builders import BuildContext, BuildSettings
from tierserve.core.builders.common import DEPLOYMENT_LABEL, MANAGED_BY
from tierserve.core.builders.context import from_object
from tierserve.core.kube.client import KubeApi
from tierserve.core.kube.errors import ApiError, Conflict, Transient
from tierserve.core.kube.events import post_event
from tierserve.core.sizing import SizingError
from tierserve.operator.api_problems import error_reason, problem_of
from tierserve.operator.crds import RuntimeNotInstalled
from tierserve.operator.metrics import OperatorMetrics
from tierserve.operator.realizers import Realizer
from tierserve.operator.status import (
    Observed,
    Problem,
    cannot_plan,
    compute,
    compute_problem,
    differs,
)
from tierserve.operator.store import Key, Store
from tierserve.operator.workqueue import WorkQueue

log = logging.getLogger("tierserve.operator")
Desired = BuildContext | InvalidObject | SizingError


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ready(status: dict[str, Any]) -> tuple[str, str] | None:
    for c in status.get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status", ""), c.get("reason", "")
    return None


def _problem(error: InvalidObject | SizingError) -> Problem:
    """Why the spec cannot be realized at all (invalid, or impossible to size)."""
    if isinstance(error, InvalidObject):
        return Problem("InvalidSpec", str(error))
    return Problem(error.reason, str(error))


class Reconciler:
    def __init__(self, api: KubeApi, store: Store, realizer: Realizer,
                 queue: WorkQueue[Key], settings: BuildSettings,
                 clock: Callable[[], str] = _now, metrics: OperatorMetrics | None = None,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self.api, self.store, self.realizer, self.queue = api, store, realizer, queue
        self.settings, self.clock, self.timer = settings, clock, timer
        # without the caller's registry the counts go to a private one nobody scrapes
        self.metrics = metrics if metrics is not None else OperatorMetrics(CollectorRegistry())
        # key -> ((uid, generation), context or the error it raised). Validation, sizing
        # and building depend only on the spec, which only changes with the generation, so
        # a reconcile triggered by a child or status event skips all three.
        self._desired: dict[Key, tuple[tuple[str, int], Desired]] = {}

    async def handle(self, key: Key) -> None:
        body = self.store.deployments.get(key)
        if body is None:
            self.queue.drop(key)
            await self.realizer.forget(key)
            self._desired.pop(key, None)
            return
        if body["metadata"].get("deletionTimestamp"):
            return
        start = self.timer()
        error = await self._attempt(key, body)
        self.metrics.reconciled("deployment", self.timer() - start, error)

    async def _attempt(self, key: Key, body: dict[str, Any]) -> str | None:
        """Reconcile once and sort the failure; returns why it failed (a metrics label:
        the problem's or the typed error's reason), None when it succeeded."""
        try:
            problem = await self.reconcile(key, body)
            self.queue.forget(key)
            return None if problem is None else problem.reason
        except Conflict as exc:  # re-read: the watch brings the newer object; no backoff
            self.queue.forget(key)
            self.queue.add_after(key, self.queue.base_delay)
            log.info("reconcile %s/%s: conflict (%s); re-reading", *key, exc)
            return error_reason(exc)
        except (Transient, OSError, TimeoutError) as exc:
            delay = self.queue.retry(key)
            log.warning("reconcile %s/%s failed (%s); retry in %.1fs", *key, exc, delay)
            return error_reason(exc)
        except ApiError as exc:  # permanent: a condition and an Event, not a backoff loop
            self.queue.forget(key)
            await self._report(key, body, exc)
            return error_reason(exc)
        except Exception as exc:
            delay = self.queue.retry(key)
            log.exception("reconcile %s/%s crashed; retry in %.1fs", *key, delay)
            return error_reason(exc)

    async def _report(self, key: Key, body: dict[str, Any], exc: ApiError) -> None:
        problem = problem_of(exc)
        if problem is None:
            return
        old = body.get("status") or {}
        new = compute_problem(problem, body["metadata"].get("generation"), old, self.clock())
        if not differs(new, old):
            return  # already reported: the resync's repeat writes nothing
        log.error("reconcile %s/%s: %s (%s); not retrying until it changes", *key,
                  problem.reason, exc)
        try:
            await self._write_status(key, body, old, new)
        except (ApiError, OSError, TimeoutError) as write_exc:
            log.error("reconcile %s/%s: could not report %s: %s", *key, problem.reason,
                      write_exc)

    async def reconcile(self, key: Key, body: dict[str, Any]) -> Problem | None:
        """Bring the runtime to the spec and write the status; returns the problem that
        keeps the deployment from being realized (invalid spec, impossible sizing)."""
        old = body.get("status") or {}
        generation = body["metadata"].get("generation")
        now = self.clock()
        ctx = self._context(key, body)
        problem = None
        if isinstance(ctx, BuildContext):
            observed = await self._realize(key, ctx)
            if isinstance(observed, Problem):
                problem = observed
                new = compute_problem(problem, generation, old, now)
            else:
                selector = (f"{DEPLOYMENT_LABEL}={ctx.name},"
                            f"app.kubernetes.io/managed-by={MANAGED_BY}")
                new = compute(ctx.spec, ctx.plan, observed, selector, generation, old, now)
        else:  # this generation cannot be planned; the children of an older one stay
            problem = cannot_plan(_problem(ctx), generation, old)
            new = compute_problem(problem, generation, old, now)
        if differs(new, old):
            await self._write_status(key, body, old, new)
        return problem

    async def _realize(self, key: Key, ctx: BuildContext) -> Observed | Problem:
        try:
            return await self.realizer.realize(key, ctx)
        except RuntimeNotInstalled as exc:  # not retried: the CRD's watch re-queues the key
            return Problem("RuntimeNotInstalled", str(exc))

    def _context(self, key: Key, body: dict[str, Any]) -> Desired:
        meta = body["metadata"]
        stamp = (meta.get("uid", ""), int(meta.get("generation") or 0))
        cached = self._desired.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        result: Desired
        try:
            result = from_object(body, self.settings)
        except (InvalidObject, SizingError) as exc:
            result = exc
        self._desired[key] = (stamp, result)
        return result

    async def _write_status(self, key: Key, body: dict[str, Any], old: dict[str, Any],
                            new: dict[str, Any]) -> None:
        patch = {k: v for k, v in new.items() if v is not None}
        log.debug("status %s/%s: %s", *key, {k: v for k, v in patch.items() if old.get(k) != v})
        updated = await self.api.patch_status(API_VERSION, "LLMDeployment", key[0], key[1], patch)
        # Keep the newer resourceVersion so a late watch event of an older version cannot
        # roll the cached status back (which would cause a duplicate write).
        self.store.put_deployment(updated, deleted=False)
        before, after = _ready(old), _ready(new)
        if after is not None and before != after:
            message = next(c["message"] for c in new["conditions"] if c["type"] == "Ready")
            await post_event(self.api, body, after[1], message, warning=after[0] != "True")
