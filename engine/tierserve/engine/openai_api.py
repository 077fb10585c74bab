"""The OpenAI wire format of the simulated engine: request validation and responses.

Pure functions over decoded JSON, shared by the aiohttp server and the Ray Serve
ingress, so both speak exactly the same dialect.

Token counts (no real tokenizer is loaded):

* prompt tokens are estimated as ``ceil(chars / 4)`` of each text (OpenAI's rule of
  thumb for English) plus 4 tokens of chat formatting per message; a completions
  prompt given as a list of token ids counts one token per id;
* a replayed trace can state exact counts, either in the body
  (``"tierserve": {"prompt_tokens": N, "output_tokens": M}``) or in the headers
  ``X-Tierserve-Prompt-Tokens`` / ``X-Tierserve-Output-Tokens``;
* the output length is the hinted ``output_tokens`` capped by ``max_tokens``, else
  ``max_tokens`` (``max_completion_tokens`` for chat), else :data:`DEFAULT_MAX_TOKENS`.

Errors follow OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``:
400 for invalid values (including context-length overflow), 404 for an unknown model,
413 for an oversized body, 422 for a body of the wrong shape or types.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

MAX_BODY_BYTES = 4 * 1024 * 1024  # request bodies above this get 413

DEFAULT_MAX_TOKENS = 128
CHAT_TOKENS_PER_MESSAGE = 4
HINT_FIELD = "tierserve"
PROMPT_HEADER = "X-Tierserve-Prompt-Tokens"
OUTPUT_HEADER = "X-Tierserve-Output-Tokens"
WORDS = (
    " the", " model", " plane", " serves", " tokens", " quickly", " and", " every",
    " request", " gets", " a", " fair", " share", " of", " the", " batch",
)  # fmt: skip

Kind = Literal["chat", "completion"]


class ApiError(Exception):
    """An error answered to the client as OpenAI-style JSON."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        type_: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type_

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


@dataclass(frozen=True)
class GenRequest:
    """A validated generation request, reduced to what the engine needs."""

    kind: Kind
    model: str
    prompt_tokens: int
    output_tokens: int
    stream: bool
    include_usage: bool
    finish_reason: str  # "length" when max_tokens ends the output, else "stop"


def _int_field(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(422, f"'{name}' must be an integer", name, "invalid_type")
    if value < 1:
        raise ApiError(400, f"'{name}' must be at least 1, got {value}", name, "invalid_value")
    return value


def _text_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def _message_tokens(messages: object) -> int:
    if not isinstance(messages, list):
        raise ApiError(422, "'messages' must be a list", "messages", "invalid_type")
    if not messages:
        raise ApiError(400, "'messages' must not be empty", "messages", "invalid_value")
    total = 0
    for i, msg in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
            raise ApiError(422, f"{param} must be an object with a 'role'", param, "invalid_type")
        content = msg.get("content")
        if isinstance(content, str):
            total += _text_tokens(content)
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, dict) or not isinstance(part.get("text", ""), str):
                    raise ApiError(
                        422, f"{param}.content has an invalid part", param, "invalid_type"
                    )
                total += _text_tokens(part.get("text", ""))
        elif content is not None:
            raise ApiError(
                422, f"{param}.content must be a string or a list", param, "invalid_type"
            )
        total += CHAT_TOKENS_PER_MESSAGE
    return total


def _prompt_tokens(prompt: object) -> int:
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if isinstance(prompt, str):
        if not prompt:
            raise ApiError(400, "'prompt' must not be empty", "prompt", "invalid_value")
        return _text_tokens(prompt)
    if (
        isinstance(prompt, list)
        and prompt
        and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt)
    ):
        return len(prompt)
    raise ApiError(
        422, "'prompt' must be a string or a list of token ids", "prompt", "invalid_type"
    )


def _hints(body: Mapping[str, Any], headers: Mapping[str, str]) -> tuple[int | None, int | None]:
    raw = body.get(HINT_FIELD)
    hint: dict[str, Any] = {}
    if raw is not None:
        if not isinstance(raw, dict):
            raise ApiError(422, f"'{HINT_FIELD}' must be an object", HINT_FIELD, "invalid_type")
        hint.update(raw)
    for key, header in (("prompt_tokens", PROMPT_HEADER), ("output_tokens", OUTPUT_HEADER)):
        value = headers.get(header)
        if value is not None and key not in hint:
            try:
                hint[key] = int(value)
            except ValueError:
                raise ApiError(400, f"header {header} must be an integer", header) from None
    return _int_field(hint, "prompt_tokens"), _int_field(hint, "output_tokens")


def parse_request(
    kind: Kind,
    body: object,
    served_name: str,
    max_model_len: int,
    headers: Mapping[str, str] | None = None,
) -> GenRequest:
    """Validate a decoded request body; raise :class:`ApiError` when it is bad."""
    if not isinstance(body, dict):
        raise ApiError(422, "the request body must be a JSON object", None, "invalid_type")
    model = body.get("model")
    if not isinstance(model, str):
        raise ApiError(422, "'model' must be a string", "model", "invalid_type")
    if model != served_name:
        raise ApiError(
            404, f"The model `{model}` does not exist.", "model", "model_not_found"
        )
    for flag in ("stream",):
        if flag in body and not isinstance(body[flag], bool | None):
            raise ApiError(422, f"'{flag}' must be a boolean", flag, "invalid_type")
    n = _int_field(body, "n")
    if n not in (None, 1):
        raise ApiError(400, "only n=1 is supported", "n", "invalid_value")
    opts = body.get("stream_options")
    if opts is not None and (
        not isinstance(opts, dict) or not isinstance(opts.get("include_usage", False), bool)
    ):
        raise ApiError(422, "'stream_options' must be an object", "stream_options", "invalid_type")
    hint_prompt, hint_output = _hints(body, headers or {})
    if kind == "chat":
        counted = _message_tokens(body.get("messages"))
        max_tokens = _int_field(body, "max_completion_tokens") or _int_field(body, "max_tokens")
    else:
        counted = _prompt_tokens(body.get("prompt"))
        max_tokens = _int_field(body, "max_tokens")
    prompt_tokens = hint_prompt or counted
    limit = max_tokens or DEFAULT_MAX_TOKENS
    output_tokens = min(hint_output, limit) if hint_output else limit
    if prompt_tokens + output_tokens > max_model_len:
        raise ApiError(
            400,
            f"This model's maximum context length is {max_model_len} tokens. However, you "
            f"requested {prompt_tokens + output_tokens} tokens ({prompt_tokens} in the "
            f"messages, {output_tokens} in the completion).",
            "max_tokens" if max_tokens else "messages",
            "context_length_exceeded",
        )
    return GenRequest(
        kind=kind,
        model=model,
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
        stream=bool(body.get("stream")),
        include_usage=bool((opts or {}).get("include_usage", False)),
        finish_reason="length" if output_tokens == limit else "stop",
    )


def filler(start: int, count: int) -> str:
    """Deterministic text for output tokens ``start .. start+count-1``."""
    return "".join(WORDS[(start + i) % len(WORDS)] for i in range(count))


def new_id(kind: Kind) -> str:
    return ("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex[:24]


def usage(req: GenRequest, generated: int) -> dict[str, int]:
    return {
        "prompt_tokens": req.prompt_tokens,
        "completion_tokens": generated,
        "total_tokens": req.prompt_tokens + generated,
    }


def full_response(req: GenRequest, rid: str, generated: int) -> dict[str, Any]:
    """Non-streamed response body."""
    text = filler(0, generated)
    choice: dict[str, Any] = {"index": 0, "finish_reason": req.finish_reason, "logprobs": None}
    if req.kind == "chat":
        choice["message"] = {"role": "assistant", "content": text}
        obj = "chat.completion"
    else:
        choice["text"] = text
        obj = "text_completion"
    return {
        "id": rid,
        "object": obj,
        "created": int(time.time()),
        "model": req.model,
        "choices": [choice],
        "usage": usage(req, generated),
    }


def stream_chunk(
    req: GenRequest, rid: str, start: int, count: int, finish: bool, first: bool = False
) -> dict[str, Any]:
    """One SSE chunk carrying output tokens ``start .. start+count-1``."""
    text = filler(start, count)
    choice: dict[str, Any] = {
        "index": 0,
        "finish_reason": req.finish_reason if finish else None,
        "logprobs": None,
    }
    if req.kind == "chat":
        choice["delta"] = {"role": "assistant", "content": text} if first else {"content": text}
        obj = "chat.completion.chunk"
    else:
        choice["text"] = text
        obj = "text_completion"
    chunk: dict[str, Any] = {
        "id": rid,
        "object": obj,
        "created": int(time.time()),
        "model": req.model,
        "choices": [choice],
    }
    if req.include_usage:
        chunk["usage"] = None
    return chunk


def usage_chunk(req: GenRequest, rid: str, generated: int) -> dict[str, Any]:
    """The final chunk sent when ``stream_options.include_usage`` is set."""
    return {
        "id": rid,
        "object": "chat.completion.chunk" if req.kind == "chat" else "text_completion",
        "created": int(time.time()),
        "model": req.model,
        "choices": [],
        "usage": usage(req, generated),
    }


def models_response(served_name: str, max_model_len: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {
                "id": served_name,
                "object": "model",
                "created": 0,
                "owned_by": "tierserve",
                "max_model_len": max_model_len,
            }
        ],
    }
