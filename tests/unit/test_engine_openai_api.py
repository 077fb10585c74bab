"""Validation and token accounting of the engine's OpenAI dialect."""

from __future__ import annotations

from typing import Any

import pytest

from tierserve.core.profiles import get_profile
from tierserve.engine.backend import Chunk, TokenOut
from tierserve.engine.openai_api import (
    DEFAULT_MAX_TOKENS,
    OUTPUT_HEADER,
    ApiError,
    Kind,
    Sampling,
    parse_request,
)
from tierserve.engine.openai_responses import full_response, stream_chunk
from tierserve.engine.sim_backend import SimBackend

M = "m"
PROFILE = get_profile("llama-3.1-8b-a100-40gb")


def chat(**kw: Any) -> dict[str, Any]:
    return {"model": M, "messages": [{"role": "user", "content": "x" * 40}], **kw}


def test_chat_counts_tokens() -> None:
    req = parse_request("chat", chat(max_tokens=7), M)
    assert (req.prompt_tokens, req.output_tokens, req.finish_reason) == (14, 7, "length")
    tokens = tuple(TokenOut(f" w{i}") for i in range(7))
    body = full_response(req, "id", 14, [Chunk("".join(t.token for t in tokens), tokens,
                                               "length")])
    assert body["usage"] == {"prompt_tokens": 14, "completion_tokens": 7, "total_tokens": 21}
    assert body["choices"][0]["message"] == {"role": "assistant",
                                             "content": " w0 w1 w2 w3 w4 w5 w6"}
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["choices"][0]["logprobs"] is None


def test_hints_from_body_and_headers() -> None:
    req = parse_request(
        "completion",
        {"model": M, "prompt": "hi", "max_tokens": 50, "tierserve": {"prompt_tokens": 300}},
        M, {OUTPUT_HEADER: "20"},
    )  # fmt: skip
    assert (req.prompt_tokens, req.output_tokens, req.finish_reason) == (300, 20, "stop")
    req = parse_request("completion", {"model": M, "prompt": [1, 2, 3]}, M)
    assert (req.prompt_tokens, req.output_tokens) == (3, DEFAULT_MAX_TOKENS)
    assert req.prompt == (1, 2, 3)


def test_stream_chunks() -> None:
    req = parse_request("chat", chat(stream=True, stream_options={"include_usage": True}), M)
    first = stream_chunk(req, "id", Chunk(" a", (TokenOut(" a"),)), first=True)
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": " a"}
    assert first["usage"] is None and first["choices"][0]["finish_reason"] is None
    assert req.include_usage and req.stream


def test_sampling_settings() -> None:
    req = parse_request("chat", chat(temperature=0, top_p=0.5, seed=7, stop="\n",
                                     logprobs=True, top_logprobs=3, ignore_eos=True), M)
    assert req.sampling == Sampling(0.0, 0.5, 7, ("\n",), True, 3, True)
    assert req.messages == ({"role": "user", "content": "x" * 40},)
    req = parse_request("completion", {"model": M, "prompt": "p", "logprobs": 2,
                                       "stop": ["a", "b"]}, M)
    assert (req.sampling.logprobs, req.sampling.top_logprobs, req.sampling.stop) == (
        True, 2, ("a", "b"))
    assert req.prompt == "p"


def test_logprobs_in_both_shapes() -> None:
    tokens = (TokenOut("Hi", -0.5, (("Hi", -0.5), ("Yo", -1.5))), TokenOut("!", -0.1, ()))
    chunks = [Chunk("Hi!", tokens, "stop")]
    req = parse_request("chat", chat(logprobs=True, top_logprobs=2), M)
    content = full_response(req, "id", 3, chunks)["choices"][0]["logprobs"]["content"]
    assert [c["logprob"] for c in content] == [-0.5, -0.1]
    assert content[0]["top_logprobs"][1] == {"token": "Yo", "logprob": -1.5,
                                             "bytes": list(b"Yo")}
    req = parse_request("completion", {"model": M, "prompt": "p", "logprobs": 2}, M)
    lp = full_response(req, "id", 1, chunks)["choices"][0]["logprobs"]
    assert lp == {"tokens": ["Hi", "!"], "token_logprobs": [-0.5, -0.1],
                  "top_logprobs": [{"Hi": -0.5, "Yo": -1.5}, {}], "text_offset": [0, 2]}


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
        ("chat", chat(stream="yes"), 422, "stream"),
        ("chat", chat(n=3), 400, "n"),
        ("chat", chat(tierserve=5), 422, "tierserve"),
        ("chat", chat(temperature="hot"), 422, "temperature"),
        ("chat", chat(temperature=3), 400, "temperature"),
        ("chat", chat(top_p=1.5), 400, "top_p"),
        ("chat", chat(seed=1.5), 422, "seed"),
        ("chat", chat(stop=[1]), 422, "stop"),
        ("chat", chat(stop=["a", "b", "c", "d", "e"]), 400, "stop"),
        ("chat", chat(stop=[""]), 400, "stop"),
        ("chat", chat(logprobs=3), 422, "logprobs"),
        ("chat", chat(logprobs=True, top_logprobs=21), 400, "top_logprobs"),
        ("chat", chat(top_logprobs=2), 400, "top_logprobs"),
        ("chat", chat(ignore_eos="no"), 422, "ignore_eos"),
        ("completion", {"model": M, "prompt": "p", "logprobs": 6}, 400, "logprobs"),
        ("completion", {"model": M, "prompt": "p", "logprobs": True}, 422, "logprobs"),
        ("completion", {"model": M, "prompt": ""}, 400, "prompt"),
        ("completion", {"model": M, "prompt": {"a": 1}}, 422, "prompt"),
    ],
)
def test_bad_requests(kind: Kind, body: object, status: int, param: str | None) -> None:
    with pytest.raises(ApiError) as info:
        parse_request(kind, body, M)
    err = info.value
    assert err.status == status
    assert err.param == param
    assert set(err.body()["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize(
    ("kind", "body", "param"),
    [
        ("chat", chat(max_tokens=10**9), "max_tokens"),
        ("completion", {"model": M, "prompt": "x" * 4 * PROFILE.max_model_len}, "messages"),
    ],
)
def test_context_overflow_is_the_engines_400(kind: Kind, body: object, param: str) -> None:
    backend = SimBackend(PROFILE)
    with pytest.raises(ApiError) as info:
        backend.prepare(parse_request(kind, body, M))
    assert (info.value.status, info.value.param, info.value.code) == (
        400, param, "context_length_exceeded")
