"""Triton backend adapter: OpenAI to clients, Triton's generate extension to the server.

Requests go to ``POST /v2/models/{model}/generate`` (buffered) or ``generate_stream``
(SSE), with the prompt in the configured input (``text_input`` by default), ``max_tokens``
as an input and sampling settings (``temperature``, ``top_p``, ``seed``, ``stop``,
``logprobs``, ``top_logprobs``) under ``parameters``; answers come back in the
configured output (``text_output``).

Chat messages travel as JSON in the request parameter ``messages``, so Tierserve's
Triton model renders them with the model's own chat template
(``tierserve.engine.triton_model``); ``text_input`` then carries them flattened to
``role: content`` lines ending in ``assistant:``, for Triton models that read only text.
Token counts come from the outputs ``prompt_tokens`` / ``completion_tokens`` when the
model reports them (else an estimate: whitespace-separated words), and
``finish_reason`` is ``length`` when the count reaches ``max_tokens``. Log-probabilities
come from the output ``logprobs`` (OpenAI's JSON for the response's tokens) when the
model sends it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from tierserve.core.routerconfig import TritonConfig
from tierserve.routing.errors import error_body
from tierserve.routing.state import EndpointState
from tierserve.routing.tiering import prompt_text
from tierserve.routing.upstream import (
    Buffered,
    Drain,
    RawStream,
    Sink,
    Stream,
    UpstreamBroken,
    UpstreamClient,
    UpstreamConnectError,
    UpstreamRequest,
    relay_chunks,
)

# OpenAI settings sent as Triton request parameters (scalars; lists as JSON strings)
PARAMETERS = ("temperature", "top_p", "seed", "stop", "logprobs", "top_logprobs")


def _parameter(value: object) -> object:
    """Triton parameters are scalars: a list or an object travels as a JSON string."""
    return orjson.dumps(value).decode() if isinstance(value, list | dict) else value


def to_triton(body: dict[str, Any], cfg: TritonConfig, stream: bool) -> dict[str, Any]:
    params = {n: _parameter(body[n]) for n in PARAMETERS if body.get(n) is not None}
    if isinstance(body.get("messages"), list):
        params["messages"] = _parameter(body["messages"])
        lines = [f"{m.get('role')}: {_content(m.get('content'))}" for m in body["messages"]
                 if isinstance(m, dict)]
        prompt = "\n".join([*lines, "assistant:"])
    else:
        prompt, _turns = prompt_text(body)
    # ``stream`` is an input tensor (TensorRT-LLM's convention, which the simulated
    # engine's Triton model follows); sampling settings travel as request parameters.
    out: dict[str, Any] = {cfg.input_field: prompt, "stream": stream}
    if params:
        out["parameters"] = params
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit is not None:
        out[cfg.max_tokens_param] = limit
    return out


def _text(value: object) -> str:
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    return str(value)


def _content(content: object) -> str:
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def _logprobs(outputs: dict[str, Any]) -> Any:
    """The ``logprobs`` output (a JSON string, maybe in a one-element list), or None."""
    value = outputs.get("logprobs")
    if isinstance(value, list) and value:
        value = value[0]
    if not isinstance(value, str):
        return None
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def to_openai(text: str, body: dict[str, Any], chat: bool, rid: str,
              counts: dict[str, Any] | None = None) -> dict[str, Any]:
    """An OpenAI answer; token counts and log-probabilities from Triton's outputs when
    it reports them."""
    counts = counts or {}
    reported = counts.get("completion_tokens")
    tokens = _int(reported) if reported is not None else len(text.split())
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    finish = "length" if isinstance(limit, int) and tokens >= limit else "stop"
    lp = _logprobs(counts)
    choice: dict[str, Any] = ({"index": 0, "message": {"role": "assistant", "content": text},
                               "finish_reason": finish, "logprobs": lp} if chat else
                              {"index": 0, "text": text, "finish_reason": finish,
                               "logprobs": lp})
    reported_prompt = counts.get("prompt_tokens")
    prompt_tokens = (_int(reported_prompt) if reported_prompt is not None
                     else len(prompt_text(body)[0].split()))
    return {"id": ("chatcmpl-" if chat else "cmpl-") + rid, "created": int(time.time()),
            "object": "chat.completion" if chat else "text_completion",
            "model": body.get("model", ""), "choices": [choice],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": tokens,
                      "total_tokens": prompt_tokens + tokens}}


def _int(value: object) -> int:
    """Triton JSON outputs may come as scalars or one-element lists."""
    if isinstance(value, list) and value:
        value = value[0]
    return int(value) if isinstance(value, int | float) else 0


def _error_from_triton(status: int, raw: bytes) -> Buffered:
    try:
        message = str(orjson.loads(raw).get("error", "triton error"))
    except (orjson.JSONDecodeError, AttributeError):
        message = "triton error"
    kind = "invalid_request_error" if status < 500 else "api_error"
    return Buffered(status, error_body(message[:500], kind, None, None, ""), "application/json")


class _TritonStream:
    """Re-frames Triton SSE events as OpenAI chunk events, ending with ``[DONE]``."""

    def __init__(self, raw: RawStream, body: dict[str, Any], chat: bool,
                 output_field: str, first: bytes) -> None:
        self._raw, self._body, self._chat, self._field = raw, body, chat, output_field
        self._buffer = b""
        self._model = str(body.get("model", ""))
        self.first = self._convert(first) or b": ok\n\n"

    def _chunk(self, text: str | None, finish: str | None, logprobs: Any = None) -> bytes:
        choice: dict[str, Any] = ({"index": 0, "delta": {} if text is None else {"content": text},
                                   "finish_reason": finish} if self._chat else
                                  {"index": 0, "text": text or "", "finish_reason": finish})
        if logprobs is not None:
            choice["logprobs"] = logprobs
        event = {"id": "", "created": int(time.time()), "model": self._model,
                 "object": "chat.completion.chunk" if self._chat else "text_completion",
                 "choices": [choice]}
        return b"data: " + orjson.dumps(event) + b"\n\n"

    def _convert(self, data: bytes) -> bytes:
        self._buffer += data
        out = []
        while b"\n\n" in self._buffer:
            event, self._buffer = self._buffer.split(b"\n\n", 1)
            for line in event.splitlines():
                if not line.startswith(b"data:"):
                    continue
                parsed = orjson.loads(line[5:].strip())
                if "error" in parsed:
                    raise UpstreamBroken("triton stream error")
                out.append(self._chunk(_text(parsed.get(self._field, "")), None,
                                       _logprobs(parsed)))
        return b"".join(out)

    async def chunks(self) -> AsyncIterator[bytes]:
        async for data in self._raw.chunks():  # raises UpstreamBroken when it breaks
            try:
                converted = self._convert(data)
            except orjson.JSONDecodeError:
                raise UpstreamBroken("malformed Triton event") from None
            if converted:
                yield converted
        yield self._chunk(None, "stop") + b"data: [DONE]\n\n"

    async def relay(self, sink: Sink, drain: Drain) -> None:
        await relay_chunks(self.chunks(), sink, drain)

    def close(self) -> None:
        self._raw.close()


class TritonBackend:
    def __init__(self, client: UpstreamClient) -> None:
        self._client = client

    @staticmethod
    def _cfg(req: UpstreamRequest) -> TritonConfig:
        return req.triton or TritonConfig()

    def _path(self, req: UpstreamRequest, stream: bool) -> str:
        model = self._cfg(req).model or str(req.body.get("model", ""))
        return f"/v2/models/{model}/{'generate_stream' if stream else 'generate'}"

    async def buffered(self, ep: EndpointState, req: UpstreamRequest,
                       timeout_s: float) -> Buffered:
        payload = orjson.dumps(to_triton(req.body, self._cfg(req), False))
        got = await self._client.buffered(ep.base, self._path(req, False), payload,
                                          timeout_s=timeout_s,
                                          connect_timeout_s=req.connect_timeout_s)
        if got.status != 200:
            return _error_from_triton(got.status, got.body)
        try:
            parsed = orjson.loads(got.body)
            text = _text(parsed.get(self._cfg(req).output_field, ""))
        except (orjson.JSONDecodeError, AttributeError):
            return Buffered(502, error_body("malformed Triton answer", "api_error", None, None,
                                            ""), "application/json")
        chat = req.path.endswith("chat/completions")
        answer = to_openai(text, req.body, chat, str(id(req)), parsed)
        return Buffered(200, orjson.dumps(answer), "application/json")

    async def open_stream(self, ep: EndpointState, req: UpstreamRequest,
                          timeout_s: float) -> Stream | Buffered:
        payload = orjson.dumps(to_triton(req.body, self._cfg(req), True))
        got = await self._client.open(ep.base, self._path(req, True), payload,
                                      timeout_s=timeout_s,
                                      connect_timeout_s=req.connect_timeout_s,
                                      idle_timeout_s=req.idle_timeout_s, ok=201)
        if isinstance(got, Buffered):
            return _error_from_triton(got.status, got.body)
        chat = req.path.endswith("chat/completions")
        try:
            return _TritonStream(got, req.body, chat, self._cfg(req).output_field, got.first)
        except (UpstreamBroken, orjson.JSONDecodeError):
            got.close()
            raise UpstreamConnectError("triton stream error before first token") from None
