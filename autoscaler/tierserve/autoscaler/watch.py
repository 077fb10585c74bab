"""The autoscaler's discovery I/O: the shared reflector
(:class:`tierserve.core.kube.reflector.Reflector`) on LLMDeployments feeds the pure
:class:`tierserve.autoscaler.discovery.Discovery`.

The reflector lists first (a re-list after 410 Gone is diffed, so targets of objects
deleted while the watch was down are dropped), then watches from the list's
resourceVersion and resumes where it left off. Errors never end the loop: transient ones
back off, permanent ones (RBAC, CRD missing) are logged once and re-checked; meanwhile the
controller keeps autoscaling the targets it has.

For a direct scrape (no Prometheus) a second reflector watches EndpointSlices (those the
EndpointSlice controller labels with their Service), so targets of per-pod runtimes follow
their ready pods (:func:`tierserve.autoscaler.discovery.scrape_urls`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from tierserve.autoscaler.discovery import SERVICE_NAME_LABEL, Discovery
from tierserve.core.api.deployment import API_VERSION
from tierserve.core.kube.client import KubeApi
from tierserve.core.kube.reflector import (
    Backoff,
    Change,
    Reflector,
    Resource,
    Subscriber,
    run_all,
)

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


def feed_slices(discovery: Discovery) -> Subscriber:
    """A reflector subscriber that hands EndpointSlice changes to ``discovery``."""
    def on_change(change: Change) -> None:
        namespace, name = change.key
        discovery.set_slice(namespace, name, None if change.deleted else change.obj)
    return on_change


def slice_reflector(api: KubeApi, namespace: str | None, discovery: Discovery, *,
                    backoff: Backoff | None = None, timeout_s: int = 300) -> Reflector:
    return Reflector(api, Resource("discovery.k8s.io/v1", "EndpointSlice", namespace,
                                   label_selector=SERVICE_NAME_LABEL),
                     feed_slices(discovery), backoff=backoff, watch_timeout_s=timeout_s)


def reflectors(api: KubeApi, namespace: str | None, discovery: Discovery, *, slices: bool,
               backoff: Backoff | None = None, timeout_s: int = 300) -> list[Reflector]:
    """The deployments' reflector, after the slices' one when ``slices`` (direct scrape)."""
    out = [deployment_reflector(api, namespace, discovery, backoff=backoff,
                                timeout_s=timeout_s)]
    if slices:
        out.insert(0, slice_reflector(api, namespace, discovery, backoff=backoff,
                                      timeout_s=timeout_s))
    return out


def deployment_reflector(api: KubeApi, namespace: str | None, discovery: Discovery, *,
                         backoff: Backoff | None = None, timeout_s: int = 300) -> Reflector:
    return Reflector(api, Resource(API_VERSION, KIND, namespace), feed(discovery),
                     backoff=backoff, watch_timeout_s=timeout_s)


async def watch_deployments(api: KubeApi, namespace: str | None, discovery: Discovery,
                            stop: asyncio.Event, *, backoff: Backoff | None = None,
                            timeout_s: int = 300, slices: bool = False) -> None:
    """Keep ``discovery`` in step with the LLMDeployments of ``namespace`` (None: all),
    and with their EndpointSlices when ``slices``, until ``stop`` is set."""
    watcher = asyncio.create_task(run_all(
        reflectors(api, namespace, discovery, slices=slices, backoff=backoff,
                   timeout_s=timeout_s)))
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({watcher, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (watcher, stopped):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def initial_targets(api: KubeApi, namespace: str | None, discovery: Discovery, *,
                          slices: bool = False) -> None:
    """One list (the slices' first when ``slices``), for ``--once`` runs."""
    for reflector in reflectors(api, namespace, discovery, slices=slices):
        await reflector.list_once()
