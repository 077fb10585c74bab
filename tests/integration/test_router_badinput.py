"""Bad input: always a 4xx OpenAI-style error with a request id, never a 500."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest

from tierserve.dev.testing import router, simple_config, stub

MSG = b'"messages": [{"role": "user", "content": "hi"}]'
CASES: list[tuple[str, str, bytes, dict[str, str], int]] = [
    ("truncated", "/v1/chat/completions", b'{"model": "m", "messages": [{"role": "us', {}, 400),
    ("not json", "/v1/chat/completions", b"model=m&messages=hi", {}, 400),
    ("empty", "/v1/chat/completions", b"", {}, 400),
    ("array body", "/v1/chat/completions", b"[]", {}, 400),
    ("null body", "/v1/chat/completions", b"null", {}, 400),
    ("model wrong type", "/v1/chat/completions", b'{"model": [1], ' + MSG + b"}", {}, 400),
    ("messages wrong type", "/v1/chat/completions", b'{"model": "m", "messages": {}}', {}, 400),
    ("stream wrong type", "/v1/chat/completions", b'{"model": "m", "stream": 1, ' + MSG + b"}",
     {}, 400),
    ("max_tokens negative", "/v1/chat/completions",
     b'{"model": "m", "max_tokens": -5, ' + MSG + b"}", {}, 400),
    ("prompt wrong type", "/v1/completions", b'{"model": "m", "prompt": 12.5}', {}, 400),
    ("unknown model", "/v1/chat/completions", b'{"model": "gpt-9", ' + MSG + b"}", {}, 404),
    ("deep nesting", "/v1/chat/completions",
     b'{"model": "m", "x": ' + b"[" * 100000 + b"]" * 100000 + b", " + MSG + b"}", {}, 400),
    ("huge body", "/v1/chat/completions",
     b'{"model": "m", "pad": "' + b"a" * 3_000_000 + b'", ' + MSG + b"}", {}, 413),
    ("invalid utf-8", "/v1/chat/completions", b'{"model": "\xff\xfe", ' + MSG + b"}", {}, 400),
    ("bad tier header", "/v1/chat/completions", b'{"model": "m", ' + MSG + b"}",
     {"x-tierserve-tier": "turbo"}, 400),
    ("unknown path", "/v1/engines", b"{}", {}, 404),
]


@pytest.fixture
async def url() -> object:
    async with stub(name="x") as (_s, backend):
        cfg = simple_config({"d": [backend]}, {"m": {"d": 1}})
        cfg["server"] = {"max_body_bytes": 2_000_000}
        async with router(cfg) as (_r, router_url):
            yield router_url


@pytest.mark.parametrize(("name", "path", "body", "headers", "status"), CASES,
                         ids=[c[0] for c in CASES])
async def test_bad_input_table(url: str, name: str, path: str, body: bytes,
                               headers: dict[str, str], status: int) -> None:
    async with aiohttp.ClientSession() as s, s.post(
            url + path, data=body, headers={"Content-Type": "application/json", **headers}) as r:
        raw = await r.read()
        assert r.status == status, raw[:200]
        err = orjson.loads(raw)["error"]
        assert err["message"] and err["type"] and err["request_id"]


async def test_chunked_huge_body_is_413(url: str) -> None:
    async def gen() -> object:
        yield b'{"model": "m", "pad": "'
        for _ in range(40):
            yield b"a" * 100_000
            await asyncio.sleep(0)
        yield b'"}'

    async with aiohttp.ClientSession() as s, s.post(url + "/v1/chat/completions",
                                                    data=gen()) as r:
        assert r.status == 413
