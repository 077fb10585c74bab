"""The one client and the one reflector against a scripted API server on 127.0.0.1.

The server speaks the wire protocol (JSON lists, newline-delimited watch streams, Status
error bodies, bearer tokens) so the real :class:`KubeApi` and :class:`Reflector` run;
the script decides what the API server says. Its resourceVersions are deliberately not
numbers: the client may only pass them back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from tierserve.core.kube.client import KubeApi
from tierserve.core.kube.credentials import Credentials
from tierserve.core.kube.errors import Unauthorized
from tierserve.core.kube.reflector import Backoff, Change, Reflector, Resource, State
from tierserve.dev.waiting import wait_until_async

PATH = "/api/v1/namespaces/ns/configmaps"


def cm(name: str, version: str, value: str = "") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "data": {"v": value},
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": version}}


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
            "reason": reason, "message": message, "details": {}}


class FakeApiServer:
    """Lists ``items``; each watch streams the events put on ``events`` until ``None``.
    ``list_errors`` answers the next lists with those statuses; ``tokens`` are accepted."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.list_version = "list/a"
        self.list_errors: list[dict[str, Any]] = []
        self.events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.tokens: set[str] = set()
        self.lists = 0
        self.watched_from: list[str] = []
        self.unauthorized = 0
        self.url = ""

    def _authorized(self, request: web.Request) -> bool:
        ok = request.headers.get("Authorization", "").removeprefix("Bearer ") in self.tokens
        self.unauthorized += not ok
        return ok

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return web.json_response(status(401, "Unauthorized", "Unauthorized"), status=401)
        if request.query.get("watch"):
            return await self._watch(request)
        self.lists += 1
        if self.list_errors:
            error = self.list_errors.pop(0)
            return web.json_response(error, status=error["code"])
        return web.json_response({"kind": "ConfigMapList", "items": self.items,
                                  "metadata": {"resourceVersion": self.list_version}})

    async def _watch(self, request: web.Request) -> web.StreamResponse:
        self.watched_from.append(request.query["resourceVersion"])
        resp = web.StreamResponse()
        await resp.prepare(request)
        while (event := await self.events.get()) is not None:
            line = b"{garbled" if event.get("type") == "GARBLED" else json.dumps(event).encode()
            await resp.write(line + b"\n")
        with contextlib.suppress(ConnectionResetError):  # the client went first
            await resp.write_eof()
        return resp


@pytest.fixture
async def server() -> AsyncIterator[FakeApiServer]:
    fake = FakeApiServer()
    app = web.Application()
    app.router.add_get(PATH, fake.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    fake.url = f"http://{host}:{port}"
    yield fake
    for _ in range(4):
        fake.events.put_nowait(None)  # end open watches so cleanup does not wait
    await runner.cleanup()


def token_file(tmp_path: Path, token: str) -> Path:
    """Write like the kubelet: a new file swapped in (new inode), never edited in place."""
    path, staged = tmp_path / "token", tmp_path / ".token.new"
    staged.write_text(token)
    os.replace(staged, path)
    return path


class Recorder:
    """A reflector subscriber, and a ``sleep`` that records the delays it was asked for
    (permanent errors must ask for the slow re-check, never a tight loop)."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, str, bool]] = []
        self.sleeps: list[float] = []
        self.gate = asyncio.Event()  # sleeps end once the test opens it
        self.gate.set()

    def __call__(self, change: Change) -> None:
        self.changes.append((change.type.value, change.key[1], change.relist))

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        await self.gate.wait()


async def _client(server: FakeApiServer, tmp_path: Path, token: str = "t-1") -> KubeApi:
    server.tokens.add(token)
    creds = Credentials(server=server.url, token_file=token_file(tmp_path, token))
    return await KubeApi.connect(credentials=creds)


def _reflector(api: KubeApi, rec: Recorder, recheck_s: float = 60.0) -> Reflector:
    return Reflector(api, Resource("v1", "ConfigMap", "ns"), rec, sleep=rec.sleep,
                     backoff=Backoff(base_s=0.25, max_s=2.0, recheck_s=recheck_s))


async def test_watch_resumes_from_opaque_versions_and_relists_on_gone(
        server: FakeApiServer, tmp_path: Path) -> None:
    server.items = [cm("a", "v/a1"), cm("b", "v/b1")]
    api, rec = await _client(server, tmp_path), Recorder()
    reflector = _reflector(api, rec)
    task = asyncio.create_task(reflector.run())
    try:
        await wait_until_async(reflector.synced.is_set, 5, "first list")
        for event in ({"type": "MODIFIED", "object": cm("a", "v/a2", "x")},
                      {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "bm/1"}}},
                      None):  # the server ends the watch: resume from the bookmark
            server.events.put_nowait(event)
        await wait_until_async(lambda: len(server.watched_from) == 2, 5, "resumed watch")
        assert server.watched_from == ["list/a", "bm/1"] and server.lists == 1
        assert reflector.objects[("ns", "a")]["data"] == {"v": "x"}
        server.items, server.list_version = [cm("a", "v/a2", "x"), cm("c", "v/c1")], "list/b"
        server.events.put_nowait({"type": "ERROR", "object": status(410, "Expired", "too old")})
        await wait_until_async(lambda: server.watched_from[-1:] == ["list/b"], 5, "relist")
        assert server.lists == 2
        assert rec.changes == [("ADDED", "a", True), ("ADDED", "b", True),
                               ("MODIFIED", "a", False),
                               ("DELETED", "b", True), ("ADDED", "c", True)]
        assert set(reflector.objects) == {("ns", "a"), ("ns", "c")}
        assert reflector.state is State.WATCHING
    finally:
        task.cancel()
        await api.close()


async def test_transient_errors_back_off_then_recover(server: FakeApiServer,
                                                      tmp_path: Path) -> None:
    server.items = [cm("a", "v1")]
    server.list_errors = [status(503, "ServiceUnavailable", "etcd is away")] * 3
    api, rec = await _client(server, tmp_path), Recorder()
    reflector = _reflector(api, rec)
    task = asyncio.create_task(reflector.run())
    try:
        await wait_until_async(reflector.synced.is_set, 5, "list after the outage")
        assert rec.sleeps[:3] == [0.25, 0.5, 1.0] and server.lists == 4
        assert rec.changes == [("ADDED", "a", True)]
    finally:
        task.cancel()
        await api.close()


async def test_a_broken_watch_resumes_from_the_last_event_not_the_list(
        server: FakeApiServer, tmp_path: Path) -> None:
    server.items = [cm("a", "v/a1")]
    api, rec = await _client(server, tmp_path), Recorder()
    reflector = _reflector(api, rec)
    task = asyncio.create_task(reflector.run())
    try:
        await wait_until_async(reflector.synced.is_set, 5, "first list")
        server.events.put_nowait({"type": "MODIFIED", "object": cm("a", "v/a2", "x")})
        server.events.put_nowait({"type": "GARBLED"})  # the stream breaks mid-way
        await wait_until_async(lambda: len(server.watched_from) == 2, 5, "resumed watch")
        assert server.watched_from == ["list/a", "v/a2"] and server.lists == 1
        assert rec.sleeps == [0.25] and rec.changes[-1] == ("MODIFIED", "a", False)
    finally:
        task.cancel()
        await api.close()


@pytest.mark.parametrize(("error", "state"), [
    (status(403, "Forbidden", 'configmaps is forbidden: User "x" cannot list'),
     State.FORBIDDEN),
    (status(404, "NotFound", "the server could not find the requested resource"),
     State.ABSENT),
])
async def test_permanent_errors_are_a_state_and_a_slow_recheck(
        server: FakeApiServer, tmp_path: Path, error: dict[str, Any], state: State) -> None:
    server.list_errors = [error, error]
    server.items = [cm("a", "v1")]
    api, rec = await _client(server, tmp_path), Recorder()
    rec.gate.clear()
    reflector = _reflector(api, rec, recheck_s=45.0)
    task = asyncio.create_task(reflector.run())
    try:
        await wait_until_async(lambda: rec.sleeps == [45.0], 5, "the re-check wait")
        assert reflector.synced.is_set()  # nobody waits on a refused kind forever
        assert reflector.state is state and reflector.problem is not None
        assert server.lists == 1
        rec.gate.set()
        await wait_until_async(lambda: reflector.state is State.WATCHING, 5, "recheck")
        assert rec.sleeps == [45.0, 45.0]  # the fixed re-check, no exponential loop
        assert rec.changes == [("ADDED", "a", True)]
    finally:
        task.cancel()
        await api.close()


async def test_recheck_cuts_the_slow_wait_short(server: FakeApiServer,
                                                tmp_path: Path) -> None:
    """A missing CRD installed later: ``recheck()`` lists again without waiting out the
    re-check interval (the fake sleep never ends: only the recheck can wake it)."""
    server.list_errors = [status(404, "NotFound", "the server could not find the "
                                                   "requested resource")]
    server.items = [cm("a", "v1")]
    api, rec = await _client(server, tmp_path), Recorder()
    rec.gate.clear()
    reflector = _reflector(api, rec, recheck_s=3600.0)
    task = asyncio.create_task(reflector.run())
    try:
        await wait_until_async(lambda: rec.sleeps == [3600.0], 5, "the re-check wait")
        assert reflector.state is State.ABSENT
        reflector.recheck()
        await wait_until_async(lambda: reflector.state is State.WATCHING, 5, "re-listed")
        assert server.lists == 2 and rec.changes == [("ADDED", "a", True)]
        reflector.recheck()  # while watching: nothing to cut short, no extra list
        server.events.put_nowait(None)  # the watch ends: resumed, not re-listed
        await wait_until_async(lambda: len(server.watched_from) == 2, 5, "resumed watch")
        assert server.lists == 2
    finally:
        task.cancel()
        await api.close()


async def test_listed_items_carry_their_kind(server: FakeApiServer, tmp_path: Path) -> None:
    """The API server leaves ``kind`` and ``apiVersion`` off a list's items; subscribers
    (the operator's store keys children by kind) get them from the resource."""
    bare = cm("a", "v1")
    del bare["kind"], bare["apiVersion"]
    server.items = [bare]
    api, rec = await _client(server, tmp_path), Recorder()
    reflector = _reflector(api, rec)
    seen: list[Change] = []
    reflector.subscribe(seen.append)
    task = asyncio.create_task(reflector.run())
    try:
        await wait_until_async(reflector.synced.is_set, 5, "first list")
        (change,) = seen
        assert (change.obj["kind"], change.obj["apiVersion"]) == ("ConfigMap", "v1")
        assert reflector.objects[("ns", "a")]["kind"] == "ConfigMap"
    finally:
        task.cancel()
        await api.close()


async def test_rotated_token_file_is_read_again(server: FakeApiServer,
                                                tmp_path: Path) -> None:
    api = await _client(server, tmp_path, "old")
    try:
        assert (await api.list_versioned("v1", "ConfigMap", "ns"))[1] == "list/a"
        server.tokens = {"new"}  # the old token is no longer accepted
        token_file(tmp_path, "new")  # the kubelet rotated the file
        assert (await api.list_versioned("v1", "ConfigMap", "ns"))[1] == "list/a"
        assert server.unauthorized == 0  # read on change, before any 401
    finally:
        await api.close()


async def test_a_401_reloads_the_kubeconfig_and_retries_once(server: FakeApiServer,
                                                             tmp_path: Path) -> None:
    def kubeconfig(token: str) -> Path:
        path = tmp_path / "kubeconfig"
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "k", "cluster": {"server": server.url}}],
            "users": [{"name": "u", "user": {"token": token}}],
            "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}]}))
        return path

    server.tokens = {"first"}
    api = await KubeApi.connect(str(kubeconfig("first")))
    try:
        await api.list_versioned("v1", "ConfigMap", "ns")
        server.tokens = {"second"}
        kubeconfig("second")  # e.g. an exec plugin's refreshed token
        await api.list_versioned("v1", "ConfigMap", "ns")
        assert server.unauthorized == 1  # one 401, then the re-read token worked
        server.tokens = set()
        with pytest.raises(Unauthorized):
            await api.list_versioned("v1", "ConfigMap", "ns")
    finally:
        await api.close()
