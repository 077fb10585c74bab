"""The OpenAI response shapes of the engines: full answers, SSE chunks, log-probabilities.

Pure functions from a :class:`~tierserve.engine.openai_api.GenRequest` and the
:class:`~tierserve.engine.backend.Chunk` s an engine produced, shared by the aiohttp
server and the Ray Serve ingress. Log-probabilities take OpenAI's two shapes: chat's
``{"content": [{"token", "logprob", "bytes", "top_logprobs"}]}`` and the completions
API's ``{"tokens", "token_logprobs", "top_logprobs", "text_offset"}``; they are ``null``
unless the request asked for them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from tierserve.engine.backend import Chunk, TokenOut, finish_reason
from tierserve.engine.openai_api import GenRequest


def usage(prompt_tokens: int, generated: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": generated,
        "total_tokens": prompt_tokens + generated,
    }


def _chat_entry(tok: TokenOut) -> dict[str, Any]:
    return {
        "token": tok.token,
        "logprob": tok.logprob,
        "bytes": list(tok.token.encode()),
        "top_logprobs": [
            {"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in tok.top
        ],
    }


def logprobs(req: GenRequest, tokens: Sequence[TokenOut], offset: int = 0) -> Any:
    """The ``logprobs`` field of a choice (``offset``: text length before these tokens)."""
    if not req.sampling.logprobs or any(t.logprob is None for t in tokens):
        return None
    if req.kind == "chat":
        return {"content": [_chat_entry(t) for t in tokens]}
    offsets = []
    for tok in tokens:
        offsets.append(offset)
        offset += len(tok.token)
    return {
        "tokens": [t.token for t in tokens],
        "token_logprobs": [t.logprob for t in tokens],
        "top_logprobs": [dict(t.top) for t in tokens],
        "text_offset": offsets,
    }


def full_response(req: GenRequest, rid: str, prompt_tokens: int,
                  chunks: Sequence[Chunk]) -> dict[str, Any]:
    """Non-streamed response body from all the chunks of a request."""
    text = "".join(c.text for c in chunks)
    tokens = [t for c in chunks for t in c.tokens]
    choice: dict[str, Any] = {"index": 0, "finish_reason": finish_reason(list(chunks)),
                              "logprobs": logprobs(req, tokens)}
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
        "usage": usage(prompt_tokens, len(tokens)),
    }


def stream_chunk(req: GenRequest, rid: str, chunk: Chunk, first: bool = False,
                 offset: int = 0) -> dict[str, Any]:
    """One SSE event for ``chunk`` (``offset``: output text length before it)."""
    choice: dict[str, Any] = {
        "index": 0,
        "finish_reason": chunk.finish_reason,
        "logprobs": logprobs(req, chunk.tokens, offset),
    }
    if req.kind == "chat":
        text = chunk.text
        choice["delta"] = {"role": "assistant", "content": text} if first else {"content": text}
        obj = "chat.completion.chunk"
    else:
        choice["text"] = chunk.text
        obj = "text_completion"
    event: dict[str, Any] = {
        "id": rid,
        "object": obj,
        "created": int(time.time()),
        "model": req.model,
        "choices": [choice],
    }
    if req.include_usage:
        event["usage"] = None
    return event


def usage_chunk(req: GenRequest, rid: str, prompt_tokens: int, generated: int) -> dict[str, Any]:
    """The final chunk sent when ``stream_options.include_usage`` is set."""
    return {
        "id": rid,
        "object": "chat.completion.chunk" if req.kind == "chat" else "text_completion",
        "created": int(time.time()),
        "model": req.model,
        "choices": [],
        "usage": usage(prompt_tokens, generated),
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
