"""API keys, rate limits, and a sentinel key and prompt that must never leak."""

from __future__ import annotations

import logging
from pathlib import Path

import aiohttp
import orjson
import pytest

from tierserve.dev.testing import router, simple_config, stub

SENTINEL_KEY = "sk-SENTINEL-7f3a9c-never-log-me"
SENTINEL_PROMPT = "PROMPT-SENTINEL-4411-private-text"


def _cfg(backend: str, **auth: object) -> dict[str, object]:
    cfg = simple_config({"d": [backend]}, {"m": {"d": 1}})
    cfg["auth"] = auth
    return cfg


async def _post(url: str, key: str | None, content: str = "hi",
                model: str = "m") -> tuple[int, dict[str, str], bytes]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {"model": model, "max_tokens": 2, "messages": [{"role": "user", "content": content}]}
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/chat/completions", json=body,
                                                    headers=headers) as r:
        return r.status, dict(r.headers), await r.read()


async def test_keys_required_and_request_rate_limited(tmp_path: Path) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"- name: team-a\n  key: {SENTINEL_KEY}\n  requests_per_minute: 3\n")
    async with stub(name="x") as (_s, backend), \
            router(_cfg(backend, keys_file=str(keys))) as (_r, url):
        assert (await _post(url, None))[0] == 401
        assert (await _post(url, "sk-wrong"))[0] == 401
        statuses = [(await _post(url, SENTINEL_KEY))[0] for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        status, headers, body = await _post(url, SENTINEL_KEY)
        assert status == 429 and int(headers["Retry-After"]) >= 1
        assert orjson.loads(body)["error"]["type"] == "rate_limit_error"
        # refusals before routing are counted by reason (the key's name is never a label)
        async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as r:
            text = await r.text()
        assert 'tierserve_router_rejected_total{reason="invalid_api_key"} 2.0' in text
        assert 'tierserve_router_rejected_total{reason="rate_limit_exceeded"} 2.0' in text


async def test_token_rate_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MP_TEST_KEYS", "team-b=sk-b-123")
    async with stub(name="x") as (_s, backend), \
            router(_cfg(backend, keys_env="MP_TEST_KEYS", default_tokens_per_minute=10)
                   ) as (_r, url):
        # each answer costs 5 prompt + 2 completion tokens: the second overdraws
        statuses = [(await _post(url, "sk-b-123"))[0] for _ in range(3)]
        assert statuses == [200, 200, 429]


async def test_sentinels_never_in_logs_metrics_or_errors(tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    caplog.set_level(logging.DEBUG)
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"- name: team-a\n  key: {SENTINEL_KEY}\n")
    seen: list[bytes] = []
    async with stub(name="x", fail_status=503) as (bad, backend), \
            router(_cfg(backend, keys_file=str(keys))) as (_r, url):
        for model in ("m", "nope"):
            seen.append((await _post(url, SENTINEL_KEY, SENTINEL_PROMPT, model))[2])
        seen.append((await _post(url, SENTINEL_KEY + "x", SENTINEL_PROMPT))[2])
        bad.b.fail_status = None
        seen.append((await _post(url, SENTINEL_KEY, SENTINEL_PROMPT))[2])
        async with aiohttp.ClientSession() as s, s.get(url + "/metrics") as resp:
            metrics = await resp.text()
    text = caplog.text + metrics + b"".join(seen).decode(errors="replace")
    assert "team-a" not in metrics  # not even the key's name is a label
    for sentinel in (SENTINEL_KEY, SENTINEL_PROMPT, "SENTINEL"):
        assert sentinel not in text
