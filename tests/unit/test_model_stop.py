"""``spec.model.stop``: a deployment's default stop strings reach the engine on every
target: the Ray Serve application's args, the Triton model's ``config.pbtxt`` parameter
(a JSON list, read back through Triton's own protobuf parser) and the local target's
:class:`~tierserve.core.local.LocalSpec`; each becomes the engine's ``EngineArgs.stop``."""

from __future__ import annotations

import json

import pytest

from tierserve.engine.engines import engine_args

from .test_builders_llamacpp import GEMMA, SMOLLM, build, serve_args, triton_config
from .test_operator_local import example, realize

# quotes, backslashes, tabs and newlines survive the text format and the JSON list
STOPS = ["\n", "Question:", '"quoted"\t\\']


def _engine_stop(runtime: str, stop: list[str] | None) -> tuple[str, ...] | None:
    """The stop strings the engine of ``GEMMA`` on ``runtime`` is built with (None: no
    ``stop`` argument at all)."""
    children = build(GEMMA, runtime=runtime, stop=stop)
    if runtime == "rayServe":
        args = serve_args(children)
        return engine_args(args).stop if "stop" in args else None
    params = triton_config(children).parameters
    if "stop" not in params:
        return None
    # what the Triton model does with its parameters: JSON lists are decoded first
    return engine_args({"engine": "llamacpp", "model": "m",
                        "stop": json.loads(params["stop"].string_value)}).stop


@pytest.mark.parametrize("runtime", ["rayServe", "triton"])
def test_same_cr_carries_its_stop_strings_on_either_runtime(runtime: str) -> None:
    assert GEMMA["spec"]["model"]["stop"] == ["\n"]
    assert _engine_stop(runtime, ["\n"]) == ("\n",)
    assert _engine_stop(runtime, STOPS) == tuple(STOPS)
    assert _engine_stop(runtime, None) is None
    smollm = build(SMOLLM, runtime=runtime)
    assert "stop" not in (serve_args(smollm) if runtime == "rayServe"
                          else triton_config(smollm).parameters)


@pytest.mark.parametrize("runtime", ["rayServe", "triton"])
async def test_local_target_passes_the_stop_strings(runtime: str) -> None:
    recorded, _ = await realize(example("triton-gemma3-cpu.yaml", runtime=runtime))
    assert recorded.applied[0].stop == ("\n",)
    recorded, _ = await realize(example("ray-smollm2-cpu.yaml", runtime=runtime))
    assert recorded.applied[0].stop == ()
