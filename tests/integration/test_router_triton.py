"""The Triton adapter: OpenAI to the client, Triton's generate extension to the server."""

from __future__ import annotations

from typing import Any

import openai
import orjson
from aiohttp import web

from tierserve.dev.testing import router, serve


class FakeTriton:
    """Triton's generate / generate_stream JSON+SSE protocol, as documented."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v2/models/{model}/generate", self.generate)
        app.router.add_post("/v2/models/{model}/generate_stream", self.stream)
        return app

    async def generate(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({"model": request.match_info["model"], **body})
        if body["text_input"] == "":
            return web.json_response({"error": "text_input is required"}, status=400)
        n = int(body.get("max_tokens", 3))
        return web.json_response({"model_name": request.match_info["model"],
                                  "text_output": " ".join(["tok"] * n),
                                  "completion_tokens": n, "prompt_tokens": 4})

    async def stream(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append({"model": request.match_info["model"], **body})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(int(body.get("max_tokens", 3))):
            event = {"text_output": "tok ", "completion_tokens": i + 1}
            await resp.write(b"data: " + orjson.dumps(event) + b"\n\n")
        await resp.write_eof()
        return resp


async def test_openai_client_through_triton_adapter() -> None:
    fake = FakeTriton()
    async with serve(fake.app()) as triton_url:
        cfg = {"deployments": [{"name": "t", "protocol": "triton", "endpoints": [
                   {"url": triton_url}], "triton": {"model": "sim"},
                   "balancing": {"scrape_metrics": False}}],
               "routes": [{"model": "m", "variants": [{"name": "v", "deployment": "t"}]}]}
        async with router(cfg) as (_r, url):
            client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
            chat = await client.chat.completions.create(
                model="m", max_tokens=3, messages=[{"role": "system", "content": "be brief"},
                                                   {"role": "user", "content": "hi"}])
            assert chat.choices[0].message.content == "tok tok tok"
            assert chat.choices[0].finish_reason == "length"
            assert chat.usage is not None and chat.usage.prompt_tokens == 4
            sent = fake.requests[-1]
            assert sent["model"] == "sim" and sent["max_tokens"] == 3
            assert sent["stream"] is False
            assert sent["text_input"] == "system: be brief\nuser: hi\nassistant:"
            stream = await client.chat.completions.create(
                model="m", max_tokens=2, stream=True,
                messages=[{"role": "user", "content": "hi"}])
            chunks = [c async for c in stream]
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert text == "tok tok " and chunks[-1].choices[0].finish_reason == "stop"
            comp = await client.completions.create(model="m", prompt="x", max_tokens=1)
            assert comp.choices[0].text == "tok"
            try:
                await client.completions.create(model="m", prompt="", max_tokens=1)
            except openai.BadRequestError as exc:
                assert "text_input is required" in str(exc.body)
            else:
                raise AssertionError("expected a 400")
            await client.close()
