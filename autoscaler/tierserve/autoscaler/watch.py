"""The autoscaler's discovery I/O: the shared reflector
(:class:`tierserve.core.kube.reflector.Reflector`) on LLMDeployments feeds the pure
:class:`tierserve.autoscaler.discovery.Discovery`.

The reflector lists first (a re-list after 410 Gone is diffed, so targets of objects
deleted while the watch was down are dropped), then watches from the list's
resourceVersion and resumes where it left off. Errors never end the loop: transient ones
back off, permanent ones (RBAC, CRD missing) are logged once and re-checked; meanwhile the
controller keeps autoscaling the targets it has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from tierserve.autoscaler.discovery import Discovery
from tierserve.core.api.deployment import API_VERSION
from tierserve.core.kube.client import KubeApi
from tierserve.core.kube.reflector import Backoff, Change, Reflector, Resource, Subscriber

log = logging.getLogger(__name__)
KIND = "LLMDeployment"


def feed(discovery: Discovery) -> Subscriber:
    """A reflector subscriber that keeps ``discovery`` in step with the changes."""
    def on_change(change: Change) -> None:
        if change.deleted:
            namespace, name = change.key
            discovery.delete(namespace or "default", name)
        else:
            discovery.upsert(change.obj)
    return on_change


def deployment_reflector(api: KubeApi, namespace: str | None, discovery: Discovery, *,
                         backoff: Backoff | None = None, timeout_s: int = 300) -> Reflector:
    return Reflector(api, Resource(API_VERSION, KIND, namespace), feed(discovery),
                     backoff=backoff, watch_timeout_s=timeout_s)


async def watch_deployments(api: KubeApi, namespace: str | None, discovery: Discovery,
                            stop: asyncio.Event, *, backoff: Backoff | None = None,
                            timeout_s: int = 300) -> None:
    """Keep ``discovery`` in step with the LLMDeployments of ``namespace`` (None: all)
    until ``stop`` is set."""
    watcher = asyncio.create_task(
        deployment_reflector(api, namespace, discovery, backoff=backoff,
                             timeout_s=timeout_s).run())
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({watcher, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (watcher, stopped):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def initial_targets(api: KubeApi, namespace: str | None, discovery: Discovery) -> None:
    """One list, for ``--once`` runs."""
    await deployment_reflector(api, namespace, discovery).list_once()
