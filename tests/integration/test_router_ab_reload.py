"""A/B proportions and stickiness; hot reload under load with zero failed requests."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

from tierserve.core.routerconfig import parse_config
from tierserve.dev.testing import router, simple_config, stub
from tierserve.dev.waiting import wait_until_async
from tierserve.routing.reload import FileWatcher


async def _who(session: aiohttp.ClientSession, url: str, *, stream: bool = False,
               headers: dict[str, str] | None = None) -> tuple[int, str]:
    body = {"model": "m", "max_tokens": 1, "stream": stream,
            "messages": [{"role": "user", "content": "hi"}]}
    async with session.post(url + "/v1/chat/completions", json=body,
                            headers=headers or {}) as r:
        raw = await r.read()
        if r.status != 200:
            return r.status, raw.decode()
        if stream:
            ok = raw.endswith(b"data: [DONE]\n\n") and b'"error"' not in raw
            first = orjson.loads(raw.split(b"\n\n")[0][6:])
            return (200 if ok else 599), first["choices"][0]["delta"]["content"].strip()
        return 200, orjson.loads(raw)["choices"][0]["message"]["content"]


async def test_ab_weights_stickiness_and_readout() -> None:
    async with stub(name="a") as (_a, au), stub(name="b") as (_b, bu):
        cfg = simple_config({"a": [au], "b": [bu]}, {"m": {"a": 80, "b": 20}},
                            sticky_header="x-user")
        async with router(cfg) as (r, url), aiohttp.ClientSession() as s:
            counts = Counter([(await _who(s, url))[1] for _ in range(600)])
            assert 0.72 < counts["a"] / 600 < 0.88
            for user in ("u1", "u2", "u3", "u4", "u5"):
                seen = {(await _who(s, url, headers={"x-user": user}))[1] for _ in range(10)}
                assert len(seen) == 1
            readout = r.ab_readout("m")
            names = [v["name"] for v in readout["variants"]]
            assert names == ["a", "b"] and readout["control"] == "a"
            assert sum(v["requests"] for v in readout["variants"]) == 650
            assert readout["comparisons"][0]["p_value"] is not None


async def test_hot_reload_under_load_drops_nothing() -> None:
    async with stub(name="a", itl_s=0.005) as (_a, au), stub(name="b") as (_b, bu), \
            stub(name="c", itl_s=0.005) as (_c, cu):
        cfg = simple_config({"a": [au], "b": [bu]}, {"m": {"a": 1, "b": 1}})
        async with router(cfg) as (r, url), aiohttp.ClientSession() as s:
            results: list[int] = []
            stop = asyncio.Event()

            async def client(i: int) -> None:
                while not stop.is_set():
                    results.append((await _who(s, url, stream=i % 2 == 0))[0])

            workers = [asyncio.create_task(client(i)) for i in range(16)]
            plans: list[dict[str, Any]] = [
                simple_config({"a": [au], "b": [bu]}, {"m": {"a": 9, "b": 1}}),
                simple_config({"a": [au, cu], "b": [bu]}, {"m": {"a": 1, "b": 1}}),
                simple_config({"a": [cu], "b": [bu]}, {"m": {"a": 1, "b": 3}}),
                simple_config({"a": [cu], "b": [bu, au]}, {"m": {"b": 1}}),
                simple_config({"a": [au], "b": [bu]}, {"m": {"a": 1, "b": 1}}),
            ]

            async def answered_under(label: str) -> None:
                """Each config serves real traffic before the next reload replaces it."""
                target = len(results) + 10
                await wait_until_async(lambda: len(results) >= target, 30,
                                       f"10 more answers under {label}")

            await answered_under("the initial config")
            for round_ in range(3):
                for i, plan in enumerate(plans):
                    r.apply_config(parse_config(plan, f"plan-{round_}"))
                    await answered_under(f"plan {i} of round {round_}")
            stop.set()
            await asyncio.gather(*workers)
            assert Counter(results) == Counter({200: len(results)})


async def test_file_watcher_applies_valid_and_rejects_invalid(tmp_path: Path) -> None:
    async with stub(name="a") as (_a, au), stub(name="b") as (_b, bu):
        path = tmp_path / "router.yaml"
        path.write_text(yaml.safe_dump(simple_config({"a": [au]}, {"m": {"a": 1}})))
        async with router(simple_config({"a": [au]}, {"m": {"a": 1}})) as (r, url), \
                aiohttp.ClientSession() as s:
            watcher = FileWatcher(path, r)
            path.write_text(yaml.safe_dump(simple_config({"b": [bu]}, {"m": {"b": 1}})))
            assert watcher.apply()
            assert (await _who(s, url))[1] == "b"
            path.write_text("routes: [{model: m, variants: []}]\n")
            assert not watcher.apply()
            assert (await _who(s, url))[1] == "b"
