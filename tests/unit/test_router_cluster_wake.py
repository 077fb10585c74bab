"""Cluster mode's scale-from-zero wake: the router scales an LLMDeployment from 0 to 1."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import pytest

from tierserve.core.kube.client import ApiError, KubeApi
from tierserve.core.routerconfig import parse_config
from tierserve.dev.testing import router, simple_config, stub
from tierserve.dev.waiting import wait_until_async
from tierserve.routing.cluster import KubeScaleSignal


class FakeScaleApi(KubeApi):
    """``get_scale``/``patch_scale`` of KubeApi over one replica count per object.

    A subclass so the type checker holds the fake to KubeApi's signatures; it never
    connects, so the base initialiser (a session, a host) is deliberately not called.
    """

    def __init__(self, replicas: dict[tuple[str, str], int]) -> None:
        self.replicas = replicas
        self.version = 7
        self.patches: list[tuple[str, str, int, str | None]] = []
        self.conflict = False

    async def get_scale(self, api_version: str, kind: str, namespace: str,
                        name: str) -> dict[str, Any]:
        assert kind == "LLMDeployment"
        return {"metadata": {"resourceVersion": str(self.version)},
                "spec": {"replicas": self.replicas[(namespace, name)]}}

    async def patch_scale(self, api_version: str, kind: str, namespace: str, name: str,
                          replicas: int, resource_version: str | None = None) -> None:
        self.patches.append((namespace, name, replicas, resource_version))
        if self.conflict or resource_version != str(self.version):
            raise ApiError(409, "the object has been modified")
        self.replicas[(namespace, name)] = replicas
        self.version += 1


async def test_wakes_only_from_zero_with_a_precondition() -> None:
    api = FakeScaleApi({("team", "zero"): 0, ("team", "two"): 2})
    wake = KubeScaleSignal(api)
    await wake.wake("team/zero")
    assert api.replicas[("team", "zero")] == 1
    assert api.patches == [("team", "zero", 1, "7")]
    await wake.wake("team/zero")  # idempotent: already 1, nothing patched
    await wake.wake("team/two")  # never touches a deployment that is not at zero
    await wake.wake("static")  # not a cluster deployment
    assert len(api.patches) == 1 and api.replicas[("team", "two")] == 2


async def test_a_concurrent_change_wins() -> None:
    api = FakeScaleApi({("team", "zero"): 0})
    api.conflict = True
    await KubeScaleSignal(api).wake("team/zero")
    assert api.replicas[("team", "zero")] == 0 and len(api.patches) == 1


async def test_other_api_errors_propagate() -> None:
    class Forbidden(FakeScaleApi):
        async def get_scale(self, api_version: str, kind: str, namespace: str,
                            name: str) -> dict[str, Any]:
            raise ApiError(403, "forbidden")

    with pytest.raises(ApiError):
        await KubeScaleSignal(Forbidden({})).wake("team/zero")


async def test_not_connected_only_logs(caplog: pytest.LogCaptureFixture) -> None:
    wake = KubeScaleSignal()  # the cluster source has not connected yet
    with caplog.at_level(logging.INFO, logger="tierserve.routing.cluster"):
        await wake.wake("team/zero")
    assert [r.getMessage() for r in caplog.records] == [
        "deployment team/zero has no ready replica; holding requests"]
    api = FakeScaleApi({("team", "zero"): 0})
    wake.api = api  # once connected, the next hold episode does scale
    await wake.wake("team/zero")
    assert api.patches == [("team", "zero", 1, "7")]


async def test_held_requests_wake_the_deployment_once_and_are_released() -> None:
    api = FakeScaleApi({("team", "d"): 0})
    wake = KubeScaleSignal(api)
    body = {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}
    async with stub(name="woke") as (_s, backend), \
            router(simple_config({"team/d": []}, {"m": {"team/d": 1}}),
                   scale_signal=wake) as (r, url), aiohttp.ClientSession() as s:
        async def post() -> int:
            async with s.post(url + "/v1/chat/completions", json=body) as resp:
                return resp.status

        held = [asyncio.create_task(post()) for _ in range(3)]
        await wait_until_async(lambda: r.snapshot.deployments["team/d"].hold.held == 3, 5, "3 held")
        await wait_until_async(lambda: api.replicas[("team", "d")] == 1, 5, "scaled to 1")
        assert len(api.patches) == 1  # once per hold episode
        r.apply_config(parse_config(simple_config({"team/d": [backend]},
                                                  {"m": {"team/d": 1}})))
        assert await asyncio.gather(*held) == [200, 200, 200]
