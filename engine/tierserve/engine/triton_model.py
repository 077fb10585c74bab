"""The simulated engine as a decoupled (streaming) Triton Python-backend model.

Loaded by Triton's Python backend stub through the ``model.py`` shim that
:mod:`tierserve.engine.triton` writes; importable only inside the stub (it needs
``triton_python_backend_utils``). It uses TensorRT-LLM's tensor names so Triton's
``generate`` / ``generate_stream`` endpoints and LLM clients work unchanged:

inputs
    ``text_input`` (string), optional ``max_tokens`` (int32), ``stream`` (bool),
    ``prompt_tokens`` / ``output_tokens`` (int32 hints for replaying traces)
outputs (one response per engine step when streaming, else one at the end)
    ``text_output`` (string: the new text), ``completion_tokens`` (int32: cumulative),
    ``prompt_tokens`` (int32)

Timing comes from the same :class:`~tierserve.engine.runner.EngineRunner` as the HTTP
server, running on an asyncio loop in a background thread of the stub process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import threading
import time
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]

from tierserve.core.profiles import get_profile
from tierserve.engine.openai_api import DEFAULT_MAX_TOKENS, filler
from tierserve.engine.runner import EngineRunner


def _scalar(request: Any, name: str) -> Any:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return None
    return tensor.as_numpy().reshape(-1)[0]


def _response(text: str, generated: int, prompt: int) -> Any:
    return pb_utils.InferenceResponse(
        output_tensors=[
            pb_utils.Tensor("text_output", np.array([text.encode()], dtype=np.object_)),
            pb_utils.Tensor("completion_tokens", np.array([generated], dtype=np.int32)),
            pb_utils.Tensor("prompt_tokens", np.array([prompt], dtype=np.int32)),
        ]
    )


class TritonPythonModel:
    """Triton's Python-backend entry point (the class name is Triton's contract)."""

    def initialize(self, args: dict[str, str]) -> None:
        params = json.loads(args["model_config"]).get("parameters", {})
        profile = get_profile(params["profile"]["string_value"])
        cold = float(params.get("cold_start_s", {}).get("string_value", "0") or 0)
        self.max_model_len = profile.max_model_len
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        # Cold start: Triton reports the model (and the server) not ready until
        # initialize() returns.
        time.sleep(cold)
        self.runner = EngineRunner(profile, None, 0.0)
        asyncio.run_coroutine_threadsafe(self.runner.start(), self.loop).result()

    def execute(self, requests: list[Any]) -> None:
        for request in requests:
            asyncio.run_coroutine_threadsafe(self._serve(request), self.loop)
        return None

    async def _serve(self, request: Any) -> None:
        sender = request.get_response_sender()
        final = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
        try:
            prompt, output, stream = self._parse(request)
            self.runner.check(prompt, output)
        except (ValueError, TypeError) as exc:
            sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))), final)
            return
        generated = 0
        try:
            gen = self.runner.generate(prompt, output)
            async with contextlib.aclosing(gen) as tokens:
                async for n in tokens:
                    if sender.is_cancelled():
                        return
                    done = generated + n >= output
                    if stream:
                        resp = _response(filler(generated, n), generated + n, prompt)
                        sender.send(resp, final if done else 0)
                    generated += n
            if not stream:
                sender.send(_response(filler(0, generated), generated, prompt), final)
        except RuntimeError as exc:  # not ready, or engine stopped
            sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))), final)

    def _parse(self, request: Any) -> tuple[int, int, bool]:
        text = _scalar(request, "text_input")
        if text is None:
            raise ValueError("text_input is required")
        text = text.decode() if isinstance(text, bytes) else str(text)
        hint_prompt = _scalar(request, "prompt_tokens")
        prompt = int(hint_prompt) if hint_prompt else max(1, math.ceil(len(text) / 4))
        max_tokens = _scalar(request, "max_tokens")
        limit = int(max_tokens) if max_tokens is not None else DEFAULT_MAX_TOKENS
        hint_output = _scalar(request, "output_tokens")
        output = min(int(hint_output), limit) if hint_output else limit
        if limit < 1 or prompt < 1:
            raise ValueError(f"max_tokens and prompt_tokens must be >= 1 (got {limit}, {prompt})")
        stream = _scalar(request, "stream")
        return prompt, output, bool(stream) if stream is not None else False

    def finalize(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.stop(), self.loop).result(timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
