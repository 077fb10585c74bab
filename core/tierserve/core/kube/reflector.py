"""The one list/watch loop ("reflector"): the operator's store, the router's cluster
mode and the autoscaler's discovery all keep their view of the cluster with it.

A :class:`Reflector` lists one kind (in one namespace or all, optionally by label or
field selector), then watches from the list's ``resourceVersion`` and keeps
:attr:`Reflector.objects` (a :class:`tierserve.core.kube.cache.Layered` cache) current.
Each change reaches the subscribers as a typed :class:`Change`. What it does with
failures, by their meaning (:mod:`tierserve.core.kube.errors`):

* a watch that ends (the server's timeout) is resumed from the last version seen
  (bookmarks move it too); ``resourceVersion`` is passed back as the opaque string it is;
* 410 Gone (as an HTTP status or an ``ERROR`` event): list again at once; the fresh
  list is diffed against the cache, so subscribers see ``DELETED`` for objects that went
  away meanwhile and nothing for unchanged ones;
* transient errors (network, 429, 5xx): back off exponentially, then resume;
* permanent ones (403, 401 after re-reading the credentials, 404 of the kind: a CRD that
  is not installed, 400/422): no backoff loop. The reflector records the state
  (:attr:`state`, :attr:`problem`), logs it once, counts as synced (an empty or last-known
  view, so nobody waits forever) and re-checks at a slow fixed interval, since RBAC or a
  CRD may be installed later; :meth:`Reflector.recheck` cuts that wait short (the
  operator calls it when it sees the missing CRD established).

Listed objects get the ``kind`` and ``apiVersion`` of the resource: the API server omits
both on the items of a list (a watch event's object carries them), and subscribers key
children by kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import aiohttp

from tierserve.core.kube.cache import Layered, version_of
from tierserve.core.kube.client import KubeApi
from tierserve.core.kube.errors import ApiError, Forbidden, Gone, NotFound, Transient

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace or "", name)
TRANSIENT = (Transient, aiohttp.ClientError, OSError, TimeoutError, ValueError)


def key_of(obj: Obj) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


@dataclass(frozen=True)
class Resource:
    """What one reflector lists and watches."""

    api_version: str
    kind: str
    namespace: str | None = None  # None: every namespace (or a cluster-scoped kind)
    label_selector: str | None = None
    field_selector: str | None = None

    def __str__(self) -> str:
        return f"{self.kind} in {self.namespace}" if self.namespace else self.kind


class ChangeType(StrEnum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


@dataclass(frozen=True)
class Change:
    """One object's change; ``relist`` when it comes from diffing a fresh list."""

    type: ChangeType
    key: Key
    obj: Obj
    relist: bool = False

    @property
    def deleted(self) -> bool:
        return self.type is ChangeType.DELETED


class State(StrEnum):
    STARTING = "starting"
    WATCHING = "watching"
    BACKING_OFF = "backing-off"  # transient errors
    ABSENT = "kind-not-served"  # 404 on the list: CRD or API group missing
    FORBIDDEN = "forbidden"
    REJECTED = "rejected"  # 401 after a credentials re-read, 400/422, other 4xx


PERMANENT = (State.ABSENT, State.FORBIDDEN, State.REJECTED)  # waiting for a slow re-check


Subscriber = Callable[[Change], None]


@dataclass(frozen=True)
class Backoff:
    base_s: float = 0.5
    max_s: float = 30.0
    recheck_s: float = 60.0  # permanent errors: re-check at this fixed interval

    def delay(self, failures: int) -> float:
        return float(min(self.max_s, self.base_s * 2.0 ** max(0, failures - 1)))


def _state_of(exc: ApiError) -> State:
    if isinstance(exc, NotFound):
        return State.ABSENT
    return State.FORBIDDEN if isinstance(exc, Forbidden) else State.REJECTED


class Reflector:
    """One kind's objects, kept current by list-then-watch, fanned out to subscribers."""

    def __init__(self, api: KubeApi, resource: Resource, *subscribers: Subscriber,
                 backoff: Backoff | None = None, watch_timeout_s: int = 300,
                 cache: Layered[Key] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.api, self.resource = api, resource
        self.backoff = backoff or Backoff()
        self.objects: Layered[Key] = cache if cache is not None else Layered()
        self.synced = asyncio.Event()
        self.state: State = State.STARTING
        self.problem: ApiError | None = None
        self.lists = 0  # how many times it listed (start and every re-list)
        self._subscribers = list(subscribers)
        self._version = ""  # opaque: only passed back to the server
        self._timeout, self._sleep = watch_timeout_s, sleep
        self._wake = asyncio.Event()  # set by recheck(): end the permanent-error wait

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def recheck(self) -> None:
        """List again now if a permanent error (a missing CRD, RBAC) is being waited out;
        a no-op while watching or backing off."""
        if self.state in PERMANENT:
            self._wake.set()

    def record(self, obj: Obj) -> None:
        """Our own write's answer: shown by :attr:`objects` until the watch catches up."""
        self.objects.record(key_of(obj), obj)

    async def run(self) -> None:
        """Forever (until cancelled): list, watch, resume or re-list, by error meaning."""
        failures = 0
        while True:
            try:
                if not self._version:
                    self._version = await self.list_once()
                seen = await self._watch()
            except Gone:
                self._version, seen = "", 0  # too old: list again
            except TRANSIENT as exc:
                failures += 1
                self._set(State.BACKING_OFF, None)
                delay = self.backoff.delay(failures)
                log.warning("%s watch failed (%s); retrying in %.1fs", self.resource, exc, delay)
                await self._sleep(delay)  # then resume from the last version seen
                continue
            except ApiError as exc:  # permanent: no backoff loop, a slow re-check
                self._version = ""
                self._permanent(exc)
                await self._recheck_wait()
                continue
            failures = 0 if seen else failures + 1
            if failures > 1:  # watches that end at once (or 410 again): do not spin
                await self._sleep(self.backoff.delay(failures - 1))

    async def _recheck_wait(self) -> None:
        """The slow fixed re-check interval, or less when :meth:`recheck` is called."""
        if not self._wake.is_set():
            waits = [asyncio.ensure_future(self._sleep(self.backoff.recheck_s)),
                     asyncio.ensure_future(self._wake.wait())]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
        self._wake.clear()

    async def list_once(self) -> str:
        """List (diffed against the cache, changes to subscribers); returns the version
        to watch from. ``run`` calls it; one-shot users (``--once``) may too."""
        r = self.resource
        items, version = await self.api.list_versioned(
            r.api_version, r.kind, r.namespace, r.label_selector, field_selector=r.field_selector)
        self._replace(items)
        self._set(State.WATCHING, None)
        self._wake.clear()  # a recheck() asked for during this list is answered by it
        return version

    def _replace(self, items: Iterable[Obj]) -> None:
        """A fresh list: diff it against the cache and tell subscribers what changed."""
        self.lists += 1
        r = self.resource
        fresh = {key_of(o): {"apiVersion": r.api_version, "kind": r.kind, **o} for o in items}
        for key in [k for k in self.objects.base if k not in fresh]:
            gone = self.objects.base[key]
            self.objects.remove(key)
            self._emit(Change(ChangeType.DELETED, key, gone, relist=True))
        for key, obj in fresh.items():
            old = self.objects.base.get(key)
            self.objects.observe(key, obj)
            if old is None or version_of(old) != version_of(obj):
                kind = ChangeType.ADDED if old is None else ChangeType.MODIFIED
                self._emit(Change(kind, key, obj, relist=True))
        self.synced.set()

    async def _watch(self) -> int:
        """Apply events from the last version seen (kept as each event arrives, so a
        broken watch resumes where it broke); returns how many events (bookmarks
        included) arrived."""
        r, seen = self.resource, 0
        async for event in self.api.watch(r.api_version, r.kind, r.namespace, self._version,
                                          label_selector=r.label_selector,
                                          timeout_s=self._timeout,
                                          field_selector=r.field_selector):
            kind, obj = str(event.get("type")), event.get("object") or {}
            if kind == "ERROR":
                raise ApiError(int(obj.get("code") or 500), json.dumps(obj))
            seen += 1
            self._version = version_of(obj) or self._version
            if kind == "BOOKMARK":
                continue
            key = key_of(obj)
            if kind == "DELETED":
                self.objects.remove(key)
            else:
                self.objects.observe(key, obj)
            self._emit(Change(ChangeType(kind), key, obj))
        return seen

    def _emit(self, change: Change) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(change)
            except Exception:  # one subscriber's bug must not stop the watch
                log.exception("subscriber of %s failed on %s %s/%s", self.resource,
                              change.type.value, *change.key)

    def _permanent(self, exc: ApiError) -> None:
        state = _state_of(exc)
        if state is State.ABSENT and isinstance(exc, NotFound) and exc.kind_missing:
            self._replace([])  # the kind is not served (any more): nothing of it exists
        if (state, str(exc)) != (self.state, str(self.problem)):
            level = logging.INFO if state is State.ABSENT else logging.ERROR
            log.log(level, "%s: %s (%s); re-checking every %.0fs", self.resource,
                    state.value, exc, self.backoff.recheck_s)
        self._set(state, exc)
        self.synced.set()  # nothing to wait for: the state says why it is empty or old

    def _set(self, state: State, problem: ApiError | None) -> None:
        self.state, self.problem = state, problem


async def run_all(reflectors: Iterable[Reflector]) -> None:
    """Run reflectors together until cancelled (then cancel every one of them)."""
    tasks = [asyncio.create_task(r.run()) for r in reflectors]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t


async def wait_synced(reflectors: Iterable[Reflector]) -> None:
    for r in reflectors:
        await r.synced.wait()
