"""LocalRuntimes' Ray lifecycle: a Ray it started is shut down by close(), also after
failures (Serve not starting, an app that cannot be deleted); a Ray started by someone
else is left running. Fake ``ray`` modules record the calls; the real path is covered by
tests/integration/test_engine_local.py."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from tierserve.engine.local import LocalRuntimes, LocalSpec

PROFILE = "llama-3.1-8b-a100-40gb"


class FakeModule(types.ModuleType):
    """A stand-in module that takes any attribute, as a real module's namespace does
    (typeshed's ModuleType only declares reads of unknown attributes)."""

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)


class FakeRay:
    """The parts of ``ray``/``ray.serve`` LocalRuntimes calls, as recorded calls."""

    def __init__(self, *, initialized: bool = False, serve_start_error: bool = False,
                 delete_error: bool = False) -> None:  # fmt: skip
        self.initialized = initialized
        self.serve_start_error = serve_start_error
        self.delete_error = delete_error
        self.calls: list[str] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        ray = FakeModule("ray")
        serve = FakeModule("ray.serve")
        app = FakeModule("tierserve.engine.serve_app")
        ray.is_initialized = lambda: self.initialized
        ray.init = lambda **kw: self._record("ray.init")
        ray.shutdown = lambda: self._record("ray.shutdown")
        serve.start = lambda **kw: self._record("serve.start")
        serve.run = lambda *a, **kw: self._record("serve.run")
        serve.delete = lambda name: self._record("serve.delete")
        serve.shutdown = lambda: self._record("serve.shutdown")
        ray.serve = serve
        app.build_app = lambda args: object()
        monkeypatch.setitem(sys.modules, "ray", ray)
        monkeypatch.setitem(sys.modules, "ray.serve", serve)
        monkeypatch.setitem(sys.modules, "tierserve.engine.serve_app", app)

    def _record(self, name: str) -> None:
        self.calls.append(name)
        if name == "ray.init":
            self.initialized = True
        if name == "serve.start" and self.serve_start_error:
            raise RuntimeError("serve did not start")
        if name == "serve.delete" and self.delete_error:
            raise RuntimeError("GCS unavailable")


def spec() -> LocalSpec:
    return LocalSpec("team-a/chat", "rayServe", PROFILE, "chat")


def runtimes(fake: FakeRay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalRuntimes:
    fake.install(monkeypatch)
    return LocalRuntimes(tmp_path)


async def test_close_shuts_down_the_ray_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeRay()
    local = runtimes(fake, tmp_path, monkeypatch)
    await local.apply(spec())
    await local.close()
    assert fake.calls[-3:] == ["serve.delete", "serve.shutdown", "ray.shutdown"]


async def test_ray_is_shut_down_when_serve_fails_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeRay(serve_start_error=True)
    local = runtimes(fake, tmp_path, monkeypatch)
    with pytest.raises(RuntimeError, match="serve did not start"):
        await local.apply(spec())
    await local.close()
    assert fake.calls[0] == "ray.init"
    assert fake.calls[-1] == "ray.shutdown"


async def test_ray_is_shut_down_when_a_delete_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeRay(delete_error=True)
    local = runtimes(fake, tmp_path, monkeypatch)
    await local.apply(spec())
    with pytest.raises(RuntimeError, match="GCS unavailable"):
        await local.close()
    assert fake.calls[-2:] == ["serve.shutdown", "ray.shutdown"]
    assert local.keys() == []


async def test_a_ray_started_elsewhere_is_left_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeRay(initialized=True)
    local = runtimes(fake, tmp_path, monkeypatch)
    await local.apply(spec())
    await local.close()
    assert "ray.init" not in fake.calls and "ray.shutdown" not in fake.calls
    assert fake.calls[-1] == "serve.shutdown"
