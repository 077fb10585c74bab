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

from tierserve.engine.backend import Chunk, Prepared, finish_reason, merge
from tierserve.engine.engines import engine_args, make_backend
from tierserve.engine.openai_api import HINT_FIELD, ApiError, GenRequest, parse_request
from tierserve.engine.openai_responses import logprobs
from tierserve.engine.timing import RequestTimer
from tierserve.engine.triton_metrics import TritonEngineMetrics

STATE_PERIOD_S = 1.0  # how often the queue and KV gauges are refreshed
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


class _Reply:
    """A request's response sender that remembers whether the final response went out."""

    def __init__(self, sender: Any) -> None:
        self.sender, self.done = sender, False

    def send(self, response: Any, *, final: bool) -> None:
        flags = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL if final else 0
        self.sender.send(response, flags)
        self.done = self.done or final

    def close(self) -> None:
        """End the response stream if nothing final went out (a stream whose last chunk
        carried no finish reason, or a request cancelled by its client)."""
        if not self.done:
            self.done = True
            # a cancelled request may refuse even the final flag; nothing waits for it then
            with contextlib.suppress(pb_utils.TritonModelException):
                self.sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)

    def error(self, message: str) -> None:
        if not self.done:
            self.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(message)),
                      final=True)


class TritonPythonModel:
    """Triton's Python-backend entry point (the class name is Triton's contract)."""

    def initialize(self, args: dict[str, str]) -> None:
        params = json.loads(args["model_config"]).get("parameters", {})
        raw = {k: v.get("string_value") for k, v in params.items()}
        raw = {k: _json_value(v) for k, v in raw.items() if v not in (None, "")}
        eargs = engine_args(raw)
        self.served_name = str(raw.get("served_name") or eargs.default_served_name())
        self.backend = make_backend(eargs)
        self.metrics = TritonEngineMetrics(pb_utils, self.served_name,
                                           args.get("model_instance_name", "0"))
        self.backend.load()  # Triton reports the model not ready until this returns
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.backend.start(), self.loop).result()
        self._state_task = asyncio.run_coroutine_threadsafe(self._publish_state(), self.loop)

    async def _publish_state(self) -> None:
        """Triton's gauges are set, not read at scrape time: refresh them periodically
        (and around every request, in :meth:`_serve`)."""
        while True:
            self._set_state()
            await asyncio.sleep(STATE_PERIOD_S)

    def _set_state(self) -> None:
        st = self.backend.state()
        self.metrics.set_state(st.running, st.waiting, st.kv_usage)

    def execute(self, requests: list[Any]) -> None:
        for request in requests:
            asyncio.run_coroutine_threadsafe(self._serve(request), self.loop)
        return None

    def _prepare(self, request: Any) -> tuple[Prepared, bool]:
        kind, body, stream = request_body(request, self.served_name)
        req = parse_request(kind, body, self.served_name)  # type: ignore[arg-type]
        return self.backend.prepare(req), stream

    async def _serve(self, request: Any) -> None:
        reply = _Reply(request.get_response_sender())
        try:
            prep, stream = self._prepare(request)
        except (ApiError, ValueError, TypeError) as exc:
            reply.error(str(exc))
            return
        try:
            await self._generate(reply, prep, stream)
        except RuntimeError as exc:  # not ready, or engine stopped
            reply.error(str(exc))
        except Exception as exc:
            # Whatever failed, the request must still get its final response: without
            # one the client waits forever (this coroutine's future is never read).
            pb_utils.Logger.log_error(f"tierserve engine: request failed: {exc!r}")
            reply.error(f"engine error: {exc}")
        finally:
            reply.close()

    async def _generate(self, reply: _Reply, prep: Prepared, stream: bool) -> None:
        generated, offset, done_chunks = 0, 0, []
        timer = RequestTimer(self.metrics)
        async with contextlib.aclosing(self.backend.generate(prep)) as chunks:
            self._set_state()
            async for chunk in chunks:
                if reply.sender.is_cancelled():
                    return
                generated += len(chunk.tokens)
                timer.tokens(len(chunk.tokens), prompt_tokens=prep.prompt_tokens)
                done_chunks.append(chunk)
                last = chunk.finish_reason is not None
                if last:  # recorded before the client can see the end (and scrape)
                    timer.finished(chunk.finish_reason or "stop", prep.prompt_tokens)
                if stream:
                    resp = _response(prep.req, chunk, generated, prep.prompt_tokens, offset)
                    reply.send(resp, final=last)
                    offset += len(chunk.text)
        if not (done_chunks and done_chunks[-1].finish_reason):
            timer.finished(finish_reason(done_chunks), prep.prompt_tokens)
        if not stream:
            reply.send(_response(prep.req, merge(done_chunks), generated, prep.prompt_tokens),
                       final=True)

    def finalize(self) -> None:
        self._state_task.cancel()
        asyncio.run_coroutine_threadsafe(self.backend.stop(), self.loop).result(timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
