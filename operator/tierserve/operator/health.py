"""The operator's liveness and readiness endpoints, served by its own event loop.

* ``/healthz`` (liveness) is answered by the event loop that runs the watches and the
  workers. A loop that is stuck (a blocking call that never returns, a busy loop) cannot
  answer, so the kubelet's probe times out and the pod is restarted. A server thread
  (prometheus_client's, kopf's is in the loop but starts only once leading) would keep
  answering while the loop is stuck, or not answer on a follower at all.
* ``/readyz`` (readiness) is 200 once every reflector has listed (the caches are synced),
  503 before; the body names each watch's state. Followers keep their caches warm too
  (a takeover starts from a synced store), so a follower becomes ready as well and a
  rolling update of two replicas does not wait forever on the one that is not leading.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from tierserve.core.kube.reflector import Reflector


class Health:
    """What the probes report: the reflectors' sync state, leadership, queue depth."""

    def __init__(self, reflectors: Sequence[Reflector], leading: Callable[[], bool],
                 queue_depth: Callable[[], int]) -> None:
        self.reflectors, self.leading, self.queue_depth = reflectors, leading, queue_depth

    def ready(self) -> bool:
        return all(r.synced.is_set() for r in self.reflectors)

    def report(self) -> dict[str, Any]:
        return {"ready": self.ready(), "leader": self.leading(),
                "queue_depth": self.queue_depth(),
                "watches": {str(r.resource): r.state.value for r in self.reflectors}}


def app(health: Health) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"alive": True, "leader": health.leading()})

    async def readyz(_: web.Request) -> web.Response:
        return web.json_response(health.report(), status=200 if health.ready() else 503)

    application = web.Application()
    application.router.add_get("/healthz", healthz)
    application.router.add_get("/readyz", readyz)
    return application


async def serve(health: Health, host: str, port: int) -> web.AppRunner:
    """Serve the probes in the running loop; the caller cleans the runner up."""
    runner = web.AppRunner(app(health), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
