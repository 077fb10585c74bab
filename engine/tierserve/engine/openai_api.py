"""The OpenAI wire format of the engines: request validation.

Pure functions over decoded JSON, shared by the aiohttp server and the Ray Serve
ingress, so both speak exactly the same dialect; the response shapes are in
:mod:`tierserve.engine.openai_responses`. A request keeps its messages or prompt and its
sampling settings (``temperature``, ``top_p``, ``seed``, ``stop``, ``logprobs`` /
``top_logprobs``, vLLM's ``ignore_eos``) for engines that generate real text.

Estimated token counts (the simulated engine has no tokenizer; real engines count the
prompt with their own in ``Backend.prepare``):

* prompt tokens are estimated as ``ceil(chars / 4)`` of each text (OpenAI's rule of
  thumb for English) plus 4 tokens of chat formatting per message; a completions
  prompt given as a list of token ids counts one token per id;
* a replayed trace can state exact counts, either in the body
  (``"tierserve": {"prompt_tokens": N, "output_tokens": M}``) or in the headers
  ``X-Tierserve-Prompt-Tokens`` / ``X-Tierserve-Output-Tokens``;
* the output length is the hinted ``output_tokens`` capped by ``max_tokens``, else
  ``max_tokens`` (``max_completion_tokens`` for chat), else :data:`DEFAULT_MAX_TOKENS`.

Errors follow OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``:
400 for invalid values (context-length overflow: :func:`check_context`, called by the
engine with its own count), 404 for an unknown model, 413 for an oversized body, 422 for
a body of the wrong shape or types.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

MAX_BODY_BYTES = 4 * 1024 * 1024  # request bodies above this get 413

DEFAULT_MAX_TOKENS = 128
CHAT_TOKENS_PER_MESSAGE = 4
HINT_FIELD = "tierserve"
PROMPT_HEADER = "X-Tierserve-Prompt-Tokens"
OUTPUT_HEADER = "X-Tierserve-Output-Tokens"

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


MAX_TOP_LOGPROBS = 20  # OpenAI's limit for chat; completions allow 5
MAX_STOP = 4


@dataclass(frozen=True)
class Sampling:
    """Sampling settings as the client gave them (None: the engine's default)."""

    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: bool = False
    top_logprobs: int = 0
    ignore_eos: bool = False  # vLLM's extension: run to max_tokens (benchmarks)


@dataclass(frozen=True)
class GenRequest:
    """A validated generation request, reduced to what the engines need."""

    kind: Kind
    model: str
    prompt_tokens: int  # estimate (or hint): the simulated engine's count
    output_tokens: int  # the simulated engine's output length (hint capped by the limit)
    stream: bool
    include_usage: bool
    finish_reason: str  # simulated: "length" when max_tokens ends the output, else "stop"
    max_tokens: int | None = None  # as given (max_completion_tokens for chat)
    messages: tuple[dict[str, Any], ...] = field(default=(), repr=False)
    prompt: str | tuple[int, ...] = field(default="", repr=False)
    sampling: Sampling = Sampling()

    @property
    def limit(self) -> int:
        return self.max_tokens or DEFAULT_MAX_TOKENS


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
    headers: Mapping[str, str] | None = None,
) -> GenRequest:
    """Validate a decoded request body; raise :class:`ApiError` when it is bad.

    The context length is the engine's to check (:func:`check_context`), with its count.
    """
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
    return GenRequest(
        kind=kind,
        model=model,
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
        stream=bool(body.get("stream")),
        include_usage=bool((opts or {}).get("include_usage", False)),
        finish_reason="length" if output_tokens == limit else "stop",
        max_tokens=max_tokens,
        messages=tuple(body["messages"]) if kind == "chat" else (),
        prompt=_prompt_value(body.get("prompt")) if kind == "completion" else "",
        sampling=parse_sampling(kind, body),
    )


def check_context(prompt_tokens: int, output_tokens: int, max_model_len: int,
                  explicit_max: bool) -> None:
    """Raise the OpenAI 400 ``context_length_exceeded`` when the request cannot fit."""
    if prompt_tokens + output_tokens > max_model_len:
        raise ApiError(
            400,
            f"This model's maximum context length is {max_model_len} tokens. However, you "
            f"requested {prompt_tokens + output_tokens} tokens ({prompt_tokens} in the "
            f"messages, {output_tokens} in the completion).",
            "max_tokens" if explicit_max else "messages",
            "context_length_exceeded",
        )


def _prompt_value(prompt: object) -> str | tuple[int, ...]:
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        return prompt[0]
    return prompt if isinstance(prompt, str) else tuple(prompt) if isinstance(prompt, list) else ""


def _number(body: Mapping[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError(422, f"'{name}' must be a number", name, "invalid_type")
    if not low <= value <= high:
        raise ApiError(400, f"'{name}' must be between {low} and {high}, got {value}", name,
                       "invalid_value")
    return float(value)


def _stop(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise ApiError(422, "'stop' must be a string or a list of strings", "stop",
                       "invalid_type")
    if len(stops) > MAX_STOP or any(not s for s in stops):
        raise ApiError(400, f"'stop' takes up to {MAX_STOP} non-empty strings", "stop",
                       "invalid_value")
    return tuple(stops)


def _logprobs(kind: Kind, body: Mapping[str, Any]) -> tuple[bool, int]:
    """Chat: ``logprobs`` (bool) and ``top_logprobs`` (0-20); completions: ``logprobs``
    (the number of alternatives, 0-5)."""
    raw = body.get("logprobs")
    if kind == "completion":
        if raw is None:
            return False, 0
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ApiError(422, "'logprobs' must be an integer", "logprobs", "invalid_type")
        if not 0 <= raw <= 5:
            raise ApiError(400, "'logprobs' must be between 0 and 5", "logprobs",
                           "invalid_value")
        return True, raw
    if raw is not None and not isinstance(raw, bool):
        raise ApiError(422, "'logprobs' must be a boolean", "logprobs", "invalid_type")
    top = body.get("top_logprobs")
    if top is None:
        return bool(raw), 0
    if isinstance(top, bool) or not isinstance(top, int):
        raise ApiError(422, "'top_logprobs' must be an integer", "top_logprobs", "invalid_type")
    if not 0 <= top <= MAX_TOP_LOGPROBS or (top and not raw):
        raise ApiError(400, f"'top_logprobs' must be 0-{MAX_TOP_LOGPROBS}, with logprobs true",
                       "top_logprobs", "invalid_value")
    return bool(raw), top


def parse_sampling(kind: Kind, body: Mapping[str, Any]) -> Sampling:
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ApiError(422, "'seed' must be an integer", "seed", "invalid_type")
    ignore_eos = body.get("ignore_eos", False)
    if not isinstance(ignore_eos, bool):
        raise ApiError(422, "'ignore_eos' must be a boolean", "ignore_eos", "invalid_type")
    logprobs, top = _logprobs(kind, body)
    return Sampling(
        temperature=_number(body, "temperature", 0.0, 2.0),
        top_p=_number(body, "top_p", 0.0, 1.0),
        seed=seed, stop=_stop(body.get("stop")), logprobs=logprobs, top_logprobs=top,
        ignore_eos=ignore_eos,
    )  # fmt: skip


def new_id(kind: Kind) -> str:
    return ("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex[:24]
