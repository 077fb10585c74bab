"""Validation and token accounting of the engine's OpenAI dialect."""

from __future__ import annotations

from typing import Any

import pytest

from tierserve.engine.openai_api import (
    DEFAULT_MAX_TOKENS,
    OUTPUT_HEADER,
    ApiError,
    full_response,
    parse_request,
    stream_chunk,
)

M = "m"


def chat(**kw: Any) -> dict[str, Any]:
    return {"model": M, "messages": [{"role": "user", "content": "x" * 40}], **kw}


def test_chat_counts_tokens() -> None:
    req = parse_request("chat", chat(max_tokens=7), M, 1000)
    assert (req.prompt_tokens, req.output_tokens, req.finish_reason) == (14, 7, "length")
    body = full_response(req, "id", 7)
    assert body["usage"] == {"prompt_tokens": 14, "completion_tokens": 7, "total_tokens": 21}
    assert body["choices"][0]["message"]["role"] == "assistant"


def test_hints_from_body_and_headers() -> None:
    req = parse_request(
        "completion",
        {"model": M, "prompt": "hi", "max_tokens": 50, "tierserve": {"prompt_tokens": 300}},
        M, 1000, {OUTPUT_HEADER: "20"},
    )  # fmt: skip
    assert (req.prompt_tokens, req.output_tokens, req.finish_reason) == (300, 20, "stop")
    req = parse_request("completion", {"model": M, "prompt": [1, 2, 3]}, M, 1000)
    assert (req.prompt_tokens, req.output_tokens) == (3, DEFAULT_MAX_TOKENS)


def test_stream_chunks() -> None:
    req = parse_request("chat", chat(stream=True, stream_options={"include_usage": True}), M, 999)
    first = stream_chunk(req, "id", 0, 1, False, first=True)
    assert first["choices"][0]["delta"]["role"] == "assistant" and first["usage"] is None
    assert req.include_usage and req.stream


@pytest.mark.parametrize(
    ("kind", "body", "status", "param"),
    [
        ("chat", [1, 2], 422, None),
        ("chat", {"messages": []}, 422, "model"),
        ("chat", chat(model="other"), 404, "model"),
        ("chat", {"model": M, "messages": []}, 400, "messages"),
        ("chat", {"model": M, "messages": "hi"}, 422, "messages"),
        ("chat", {"model": M, "messages": [{"content": "x"}]}, 422, "messages[0]"),
        ("chat", chat(max_tokens=-1), 400, "max_tokens"),
        ("chat", chat(max_tokens=0), 400, "max_tokens"),
        ("chat", chat(max_tokens="5"), 422, "max_tokens"),
        ("chat", chat(max_tokens=True), 422, "max_tokens"),
        ("chat", chat(max_tokens=10**9), 400, "max_tokens"),
        ("chat", chat(stream="yes"), 422, "stream"),
        ("chat", chat(n=3), 400, "n"),
        ("chat", chat(tierserve=5), 422, "tierserve"),
        ("completion", {"model": M, "prompt": ""}, 400, "prompt"),
        ("completion", {"model": M, "prompt": {"a": 1}}, 422, "prompt"),
        ("completion", {"model": M, "prompt": "x" * 8000}, 400, "messages"),
    ],
)
def test_bad_requests(kind: Any, body: object, status: int, param: str | None) -> None:
    with pytest.raises(ApiError) as info:
        parse_request(kind, body, M, 1000)
    err = info.value
    assert err.status == status
    assert err.param == param
    assert set(err.body()["error"]) == {"message", "type", "param", "code"}
