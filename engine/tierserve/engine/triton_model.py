"""The engines as a decoupled (streaming) Triton Python-backend model.

Loaded by Triton's Python backend stub through the ``model.py`` shim that
:mod:`tierserve.engine.triton` writes; importable only inside the stub (it needs
``triton_python_backend_utils``). The model's ``config.pbtxt`` parameters are the
engine's (:class:`~tierserve.engine.engines.EngineArgs`: ``engine``, ``profile`` or
``model``, ``threads``, ``context``, ``chat_template`` (a file or the template),
``stop``, ``cold_start_s``) plus ``served_name``; one
:class:`~tierserve.engine.backend.Backend` per model instance, loaded in
``initialize`` (Triton reports the model not ready until then). It uses TensorRT-LLM's
tensor names so Triton's ``generate`` / ``generate_stream`` endpoints, LLM clients and
the router's Triton adapter work unchanged:

inputs
    ``text_input`` (string), optional ``max_tokens`` (int32), ``stream`` (bool),
    ``prompt_tokens`` / ``output_tokens`` (int32 hints, for the simulated engine)
request parameters (optional)
    ``temperature``, ``top_p``, ``seed``, ``stop`` (a string, or a JSON list),
    ``ignore_eos`` (run to ``max_tokens``: benchmarks), ``logprobs`` and
    ``top_logprobs`` (as in OpenAI's API: chat takes a bool and 0-20 alternatives,
    completions an int), and ``messages``: the chat messages as a JSON list, which then
    go through the model's chat template instead of ``text_input`` (which is ignored
    then; clients that send only text get a completion)
outputs (one response per chunk when streaming, else one at the end)
    ``text_output`` (the new text), ``completion_tokens`` (cumulative),
    ``prompt_tokens`` (the engine's count: the real tokenizer's for llama.cpp), and,
    only when the request asked for log-probabilities, ``logprobs``: the response's
    tokens as OpenAI's ``logprobs`` field of a choice, JSON (chat's ``{"content": [...]}``
    or the completions shape, whose ``text_offset`` counts from the start of the output)

Requests are validated by the same code as the HTTP server
(:func:`~tierserve.engine.openai_api.parse_request`). The backend runs on an asyncio
loop in a background thread of the stub process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]

from tierserve.engine.backend import Chunk, Prepared, merge
from tierserve.engine.engines import engine_args, make_backend
from tierserve.engine.openai_api import HINT_FIELD, ApiError, GenRequest, parse_request
from tierserve.engine.openai_responses import logprobs

SAMPLING_PARAMETERS = ("temperature", "top_p", "seed", "stop", "ignore_eos", "logprobs",
                       "top_logprobs")


def _scalar(request: Any, name: str) -> Any:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return None
    value = tensor.as_numpy().reshape(-1)[0]
    return value.decode() if isinstance(value, bytes) else value


def _string(name: str, text: str) -> Any:
    return pb_utils.Tensor(name, np.array([text.encode()], dtype=np.object_))


def _response(req: GenRequest, chunk: Chunk, generated: int, prompt: int,
              offset: int = 0) -> Any:
    """One response: ``chunk``'s text and tokens (``offset``: output text before it)."""
    tensors = [
        _string("text_output", chunk.text),
        pb_utils.Tensor("completion_tokens", np.array([generated], dtype=np.int32)),
        pb_utils.Tensor("prompt_tokens", np.array([prompt], dtype=np.int32)),
    ]
    if req.sampling.logprobs:
        tensors.append(_string("logprobs", json.dumps(logprobs(req, chunk.tokens, offset))))
    return pb_utils.InferenceResponse(output_tensors=tensors)


def _json_value(value: Any) -> Any:
    """A parameter that may carry JSON (lists travel as strings in Triton parameters)."""
    if isinstance(value, str) and value[:1] in "[{":
        with contextlib.suppress(ValueError):
            return json.loads(value)
    return value


def request_body(request: Any, served_name: str) -> tuple[str, dict[str, Any], bool]:
    """The request as an OpenAI body: (kind, body, stream)."""
    params = json.loads(request.parameters() or "{}")
    text = _scalar(request, "text_input")
    body: dict[str, Any] = {"model": served_name}
    messages = _json_value(params.get("messages"))
    kind = "chat" if messages is not None else "completion"
    if kind == "chat":
        body["messages"] = messages
    elif text is None:
        raise ApiError(400, "text_input is required", "text_input")
    else:
        body["prompt"] = str(text)
    for key in SAMPLING_PARAMETERS:
        if params.get(key) is not None:
            body[key] = _json_value(params[key])
    max_tokens = _scalar(request, "max_tokens")
    if max_tokens is not None:
        body["max_tokens"] = int(max_tokens)
    hints = {k: int(v) for k in ("prompt_tokens", "output_tokens")
             if (v := _scalar(request, k)) is not None and int(v) > 0}
    if hints:
        body[HINT_FIELD] = hints
    stream = _scalar(request, "stream")
    return kind, body, bool(stream) if stream is not None else False


class TritonPythonModel:
    """Triton's Python-backend entry point (the class name is Triton's contract)."""

    def initialize(self, args: dict[str, str]) -> None:
        params = json.loads(args["model_config"]).get("parameters", {})
        raw = {k: v.get("string_value") for k, v in params.items()}
        raw = {k: _json_value(v) for k, v in raw.items() if v not in (None, "")}
        eargs = engine_args(raw)
        self.served_name = str(raw.get("served_name") or eargs.default_served_name())
        self.backend = make_backend(eargs)
        self.backend.load()  # Triton reports the model not ready until this returns
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.backend.start(), self.loop).result()

    def execute(self, requests: list[Any]) -> None:
        for request in requests:
            asyncio.run_coroutine_threadsafe(self._serve(request), self.loop)
        return None

    def _prepare(self, request: Any) -> tuple[Prepared, bool]:
        kind, body, stream = request_body(request, self.served_name)
        req = parse_request(kind, body, self.served_name)  # type: ignore[arg-type]
        return self.backend.prepare(req), stream

    async def _serve(self, request: Any) -> None:
        sender = request.get_response_sender()
        final = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
        try:
            prep, stream = self._prepare(request)
        except (ApiError, ValueError, TypeError) as exc:
            sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))), final)
            return
        generated, offset, done_chunks = 0, 0, []
        try:
            async with contextlib.aclosing(self.backend.generate(prep)) as chunks:
                async for chunk in chunks:
                    if sender.is_cancelled():
                        return
                    generated += len(chunk.tokens)
                    done_chunks.append(chunk)
                    if stream:
                        done = chunk.finish_reason is not None
                        resp = _response(prep.req, chunk, generated, prep.prompt_tokens,
                                         offset)
                        sender.send(resp, final if done else 0)
                        offset += len(chunk.text)
            if not stream:
                sender.send(_response(prep.req, merge(done_chunks), generated,
                                      prep.prompt_tokens), final)
        except RuntimeError as exc:  # not ready, or engine stopped
            sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))), final)

    def finalize(self) -> None:
        asyncio.run_coroutine_threadsafe(self.backend.stop(), self.loop).result(timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
