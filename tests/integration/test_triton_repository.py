"""The model repository the operator ships in a cluster's ConfigMap, loaded by a real
tritonserver (nvidia-pytriton's binary, CPU): the rendered ``config.pbtxt`` and
``model.py`` as they are, laid out by the Deployment's volume items.

In an image Tierserve is installed for the Python the backend stub embeds. The stub runs
isolated (no ``PYTHONPATH``, no ``.pth`` of this virtualenv), so the test installs the
way it can: links to this checkout's ``tierserve.core`` / ``tierserve.engine`` and to
numpy in the backend directory, which is on the stub's ``sys.path``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy
import pytest

import tierserve.core
import tierserve.engine
from tierserve.core.builders import BuildSettings, build_children
from tierserve.core.builders.context import from_object
from tierserve.core.runtimes import runtime_for
from tierserve.dev.cluster.procs import free_ports
from tierserve.engine.triton import TritonServer, TritonSpec

pytestmark = pytest.mark.triton
PROFILE = "llama-3.1-8b-a100-40gb"
DOC = {"apiVersion": "tierserve.io/v1alpha1", "kind": "LLMDeployment",
       "metadata": {"name": "chat", "namespace": "team", "uid": "u-1"},
       "spec": {"model": {"name": "org/chat-8b", "uri": "hf://org/chat-8b",
                          "parametersBillions": 8},
                "runtime": "triton", "engine": "simulated", "engineProfile": PROFILE,
                "accelerator": {"type": "L4"}, "slo": {"ttftP95Ms": 2000, "tpotP95Ms": 80}}}


def mounted_files(children: list[dict[str, Any]]) -> dict[str, str]:
    """What the pod finds under /models/<model>: ConfigMap data by the volume's items."""
    cm = next(m for m in children if m["kind"] == "ConfigMap")
    dep = next(m for m in children if m["kind"] == "Deployment")
    (volume,) = dep["spec"]["template"]["spec"]["volumes"]
    return {i["path"]: cm["data"][i["key"]] for i in volume["configMap"]["items"]}


def install_for_the_stub(workdir: Path) -> None:
    """What ``pip install tierserve`` does in the image, as links on the stub's path."""
    target = workdir / "backends" / "python"
    (target / "tierserve").mkdir(parents=True)
    for pkg in (tierserve.core, tierserve.engine):
        (target / "tierserve" / pkg.__name__.split(".")[-1]).symlink_to(
            Path(next(iter(pkg.__path__))))
    numpy_dir = Path(next(iter(numpy.__path__)))
    for name in ("numpy", "numpy.libs"):
        if (numpy_dir.parent / name).exists():
            (target / name).symlink_to(numpy_dir.parent / name)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    ctx = from_object(DOC, BuildSettings())
    files = mounted_files(build_children(ctx))
    http, grpc, metrics = free_ports(3)
    spec = TritonSpec(PROFILE, ctx.spec.model.name, tmp_path_factory.mktemp("repo"),
                      http, grpc, metrics)
    install_for_the_stub(spec.workdir)
    triton = TritonServer(spec, model_files=files)
    triton.start()
    try:
        asyncio.run(triton.wait_ready(90))
        yield triton
    finally:
        triton.stop()


async def test_rendered_repository_loads_and_generates(server: TritonServer) -> None:
    ctx = from_object(DOC, BuildSettings())
    target = runtime_for("triton").router_endpoint(ctx.name, ctx.spec)
    model_dir = server.spec.workdir / "models" / target.upstream_model
    assert sorted(p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts) == ["1/model.py",
                                                                        "config.pbtxt"]
    base = f"{server.spec.http_url}/v2/models/{target.upstream_model}"
    async with aiohttp.ClientSession() as s:
        async with s.get(base) as r:  # the model the router names is the one loaded
            assert r.status == 200
            assert (await r.json())["name"] == target.upstream_model
        async with s.post(f"{base}/generate", json={"text_input": "hi", "max_tokens": 6}) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["completion_tokens"] == 6
        async with s.post(f"{base}/generate_stream",
                          json={"text_input": "hi", "max_tokens": 5, "stream": True}) as r:
            assert r.status == 200
            events = [json.loads(line[6:]) async for line in r.content
                      if line.startswith(b"data: ")]
        assert events and events[-1]["completion_tokens"] == 5


def test_model_files_stay_inside_the_model_directory(tmp_path: Path) -> None:
    http, grpc, metrics = free_ports(3)
    spec = TritonSpec(PROFILE, "m", tmp_path, http, grpc, metrics)
    with pytest.raises(ValueError, match=r"model file '\.\./x' must be a path inside"):
        TritonServer(spec, model_files={"../x": ""}).start()
