"""The app factory: builds every dependency once and wires them together.

:class:`Router` owns the runtime (deployments, routes, keys, metrics) and the one
:meth:`Router.apply_config` entry point used by the file watcher and the cluster
watcher alike. Applying swaps an immutable :class:`Snapshot`; requests already running
keep the snapshot they started with, and per-deployment state (in-flight counts, queue,
held requests, ejections) lives in objects that carry over, so no request is dropped.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from tierserve.core.routerconfig import RouterConfig, TierConfig
from tierserve.routing.abtest import AbRecorder
from tierserve.routing.admission import NoScaleSignal, ScaleSignal
from tierserve.routing.auth import KeyRing, load_keys
from tierserve.routing.dispatch import Dispatcher
from tierserve.routing.handlers import Handlers
from tierserve.routing.metrics import RouterMetrics
from tierserve.routing.plugins.base import TierClassifier
from tierserve.routing.plugins.classifier import HeuristicClassifier, ThresholdCalibrator
from tierserve.routing.respond import Responder
from tierserve.routing.routes import RouteRuntime, TierRuntime, VariantRuntime
from tierserve.routing.scraper import Scraper
from tierserve.routing.server import HttpServer
from tierserve.routing.state import Clock, DeploymentRuntime
from tierserve.routing.tierdata import labelled_set
from tierserve.routing.triton import TritonBackend
from tierserve.routing.upstream import Backend, OpenAIBackend, UpstreamClient

if TYPE_CHECKING:  # imported when first used: numpy and the model are the embeddings extra
    from tierserve.routing.plugins.embedding import EmbeddingClassifier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """One applied configuration, immutable once built."""

    config: RouterConfig
    routes: Mapping[str, RouteRuntime]
    deployments: Mapping[str, DeploymentRuntime]
    models_body: bytes


class Router:
    """The router's runtime; create with a config, serve with :func:`create_app`."""

    def __init__(self, config: RouterConfig, *, scale_signal: ScaleSignal | None = None,
                 clock: Clock = time.monotonic, rng: random.Random | None = None,
                 metrics: RouterMetrics | None = None,
                 embedding_classifier: EmbeddingClassifier | None = None,
                 upstream_ssl: ssl.SSLContext | None = None) -> None:
        self.clock = clock
        self.rng = rng or random.Random()
        self.metrics = metrics or RouterMetrics()
        self.keys = KeyRing(clock)
        self._signal = scale_signal or NoScaleSignal()
        self._deployments: dict[str, DeploymentRuntime] = {}
        self._ab: dict[str, AbRecorder] = {}
        self._tiers: dict[tuple[str, str], TierRuntime] = {}
        self._heuristic = HeuristicClassifier()
        self._embedding = embedding_classifier
        self._embedding_failed = False
        self.metrics.add_gauges(self._gauges)
        self.keys.apply(config.auth, load_keys(config.auth))
        # The one client for forwarded requests; ``upstream_ssl`` verifies https
        # endpoints (default: the system's CAs).
        self.upstream = UpstreamClient(ssl_context=upstream_ssl)
        self.snapshot = self._build(config)

    def apply_config(self, config: RouterConfig) -> None:
        """Swap in ``config``; raises ``ConfigError`` (old config stays) on bad API keys."""
        keys = load_keys(config.auth)
        snapshot = self._build(config)
        self.keys.apply(config.auth, keys)
        self.snapshot = snapshot
        # Endpoints that left (an EndpointSlice shrank): their pools go; streams still
        # on them finish and their connections close when released.
        self.upstream.retain(e.base for d in config.deployments for e in d.endpoints)
        log.info("applied router config: %d routes, %d deployments",
                 len(snapshot.routes), len(snapshot.deployments))

    def ab_readout(self, model: str) -> dict[str, Any]:
        """The A/B readout for one route (what the operator writes to LLMRoute status)."""
        route = self.snapshot.routes[model]
        return route.ab.readout([v.name for v in route.variants])

    def ab_statistics(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Every served route's A/B statistics as JSON (``AbRecorder.wire``), by model: what
        ``GET /internal/ab`` answers, for the replica that writes the merged readout."""
        return {model: route.ab.wire() for model, route in self.snapshot.routes.items()}

    def _build(self, config: RouterConfig) -> Snapshot:
        for dcfg in config.deployments:
            dep = self._deployments.get(dcfg.name)
            if dep is None:
                self._deployments[dcfg.name] = DeploymentRuntime(
                    dcfg, clock=self.clock, rng=self.rng, signal=self._signal,
                    on_eject=self._ejected)
            else:
                dep.apply(dcfg)
        deployments = {d.name: self._deployments[d.name] for d in config.deployments}
        routes = {r.model: RouteRuntime(
            r, [VariantRuntime(v, self._tier(r.model, v.name, v.tiers)) for v in r.variants],
            self._ab.setdefault(r.model, AbRecorder()), self.rng) for r in config.routes}
        models = {"object": "list", "data": [
            {"id": m, "object": "model", "created": 0, "owned_by": "tierserve"} for m in routes]}
        return Snapshot(config, routes, deployments, orjson.dumps(models))

    def _tier(self, model: str, variant: str, cfg: TierConfig | None) -> TierRuntime | None:
        if cfg is None:
            return None
        old = self._tiers.get((model, variant))
        if old is not None and old.cfg == cfg:
            return old  # keep the calibration window across reloads
        classifier: TierClassifier = self._heuristic
        seeds = [self._heuristic.score_sync(text, 1) for text, _label in labelled_set()]
        embedding = self._embedding_classifier() if cfg.classifier == "embedding" else None
        if embedding is not None:
            classifier, seeds = embedding, embedding.seed_scores()
        elif cfg.classifier == "embedding":
            log.warning("embedding classifier unavailable; %s/%s uses heuristics",
                        model, variant)
        calibrator = ThresholdCalibrator(fixed=cfg.threshold, target_share=cfg.target_slow_share,
                                         seed_scores=seeds)
        tier = self._tiers[(model, variant)] = TierRuntime(cfg, classifier, calibrator)
        return tier

    def _embedding_classifier(self) -> EmbeddingClassifier | None:
        """Built once, on first use: loading the model takes seconds."""
        if self._embedding is None and not self._embedding_failed:
            try:
                from tierserve.routing.plugins.embedding import from_package

                self._embedding = from_package(labelled_set())
            except ImportError:  # numpy or the model package (the embeddings extra)
                self._embedding_failed = True
        return self._embedding

    def _ejected(self, deployment: str) -> None:
        self.metrics.count(self.metrics.ejections, deployment).inc()

    def _gauges(self) -> dict[str, tuple[int, int, int, int]]:
        now = self.clock()
        return {d.name: (d.gate.queued, d.hold.held, d.ready_count(), d.ejected_count(now))
                for d in self.snapshot.deployments.values()}


GC_GROWTH_LIMIT = 50_000  # net new GC-tracked objects that trigger a collection
GC_CHECK_S = 1.0


def tune_gc() -> None:
    """No cyclic-GC pauses on the serving path; call once, after startup.

    Under 1,000 open streams the collector's automatic runs stalled every stream's next
    chunk and every new stream's first one: young collections of 2.7 ms median (12.5 ms
    max) about three times a second and older ones of 60 ms and more (docs/router.md,
    profile), which is where the streams' added-TTFT tail came from. The request and
    stream paths create no reference cycles (``tests/integration/test_router_gc.py`` holds them
    to that), so their objects are freed by reference counting and the automatic
    collector only burns time. Startup's objects are frozen out of every scan, automatic
    collection is off, and :func:`collect_on_growth` runs a full collection when the
    tracked objects grew by :data:`GC_GROWTH_LIMIT` (error paths do create cycles:
    exceptions and their tracebacks), which bounds cyclic garbage as the thresholds did.
    """
    gc.collect()
    gc.freeze()
    gc.disable()


async def collect_on_growth(limit: int = GC_GROWTH_LIMIT, every_s: float = GC_CHECK_S) -> None:
    """Collect when the young generation's count (allocations less frees of tracked
    objects since the last collection) passed ``limit``; checked every ``every_s``."""
    while True:
        await asyncio.sleep(every_s)
        if gc.get_count()[0] > limit:
            gc.collect()


class RouterApp:
    """The router served: its HTTP server (:mod:`~tierserve.routing.server`), the
    backends and the metrics scraper; :meth:`start` listens, :meth:`stop` drains."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.handlers = Handlers(router)
        self.server = HttpServer(self.handlers.handle, body_limit=self.handlers.body_limit,
                                 new_id=self.handlers.new_id)
        self._session: aiohttp.ClientSession | None = None
        self._scraper: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return self.server.port

    async def start(self, host: str, port: int, *, backlog: int = 4096) -> None:
        router = self.router
        # For the metrics scraper only (GETs off the request path); forwarded requests
        # go through router.upstream.
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                              skip_auto_headers=("User-Agent",))
        backends: dict[str, Backend] = {"openai": OpenAIBackend(router.upstream),
                                        "triton": TritonBackend(router.upstream)}
        self.handlers.attach(
            Dispatcher(metrics=router.metrics, clock=router.clock, backends=backends),
            Responder(metrics=router.metrics, clock=router.clock,
                      id_header=router.snapshot.config.server.request_id_header))
        self._scraper = asyncio.create_task(
            Scraper(self._session, lambda: router.snapshot.deployments.values()).run())
        await self.server.start(host, port, backlog=backlog)

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Stop listening, let requests in flight finish (at most ``timeout_s``), close."""
        await self.server.stop(timeout_s)
        if self._scraper is not None:
            self._scraper.cancel()
            await asyncio.gather(self._scraper, return_exceptions=True)
        self.router.upstream.close()
        if self._session is not None:
            await self._session.close()


def create_app(router: Router) -> RouterApp:
    """The served router; ``await app.start(host, port)``, ``await app.stop()``."""
    return RouterApp(router)
