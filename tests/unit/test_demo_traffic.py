"""The demo's traffic driver without a server: plans, the request mix, the phase schedule,
and one streamed request's record against a fake client (answers, failures, timeouts)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from tierserve.dev.demo.traffic import (
    USER_HEADER,
    DemoPlan,
    DemoRecord,
    Phase,
    _v1,
    request_for,
    run_phases,
    stream_one,
)

PROMPTS = ("a?", "b?", "c?")


def test_bad_phases_and_plans_are_refused_naming_the_value() -> None:
    with pytest.raises(ValueError, match="-5"):
        Phase("burst", -5, 1)
    with pytest.raises(ValueError, match=r"2\.5"):
        Phase("burst", 10, 2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="''"):
        Phase("", 10, 1)
    with pytest.raises(ValueError, match=r"routes=\(\)"):
        DemoPlan((Phase("steady", 1, 1),), ())
    with pytest.raises(ValueError, match="0"):
        DemoPlan((Phase("steady", 1, 1),), ("qa",), max_tokens=0)
    with pytest.raises(ValueError, match="-1"):
        DemoPlan((Phase("steady", 1, 1),), ("qa",), failure_pause_s=-1)
    DemoPlan((Phase("idle", 1, 0),), ())  # nothing to send: no route needed


@pytest.mark.parametrize("plan", [DemoPlan.default(), DemoPlan.short(),
                                  DemoPlan.default(scale_down_window_s=300)])
def test_plans_are_steady_then_burst_then_idle_and_fit_the_demo(plan: DemoPlan) -> None:
    steady, burst, idle = plan.phases
    assert (steady.name, burst.name, idle.name) == ("steady", "burst", "idle")
    assert burst.clients > steady.clients >= 1 and idle.clients == 0
    assert plan.duration_s < 600 and plan.routes == ("qa", "chat")


def test_default_idle_tail_outlasts_the_scale_down_window() -> None:
    assert DemoPlan.default(scale_down_window_s=120).phases[-1].duration_s > 120


def test_requests_mix_the_routes_with_every_prompt_and_many_users() -> None:
    reqs = [request_for(("qa", "chat"), PROMPTS, n) for n in range(60)]
    assert [r.model for r in reqs[:4]] == ["qa", "chat", "qa", "chat"]
    chat = [r for r in reqs if r.model == "chat"]
    assert {r.prompt for r in chat} == set(PROMPTS)
    assert len({r.user for r in chat}) >= 5


def test_v1_is_added_to_the_router_root_once() -> None:
    assert _v1("http://127.0.0.1:8080") == "http://127.0.0.1:8080/v1"
    assert _v1("http://127.0.0.1:8080/v1/") == "http://127.0.0.1:8080/v1"


def _record(phase: str, n: int) -> DemoRecord:
    return DemoRecord(phase, f"m{n}", 0.0, 0.1, 0.2, 3, True, None)


async def test_phases_run_their_clients_and_idle_sends_nothing() -> None:
    plan = DemoPlan((Phase("one", 0.15, 1), Phase("three", 0.15, 3), Phase("idle", 0.1, 0)),
                    ("m",))
    calls: list[tuple[str, int]] = []
    open_now: dict[str, int] = {"one": 0, "three": 0}
    most: dict[str, int] = {"one": 0, "three": 0}

    async def send(phase: str, n: int) -> DemoRecord:
        calls.append((phase, n))
        open_now[phase] += 1
        most[phase] = max(most[phase], open_now[phase])
        await asyncio.sleep(0.01)
        open_now[phase] -= 1
        return _record(phase, n)

    kept: list[DemoRecord] = []
    await run_phases(plan, send, kept.append)
    assert {p for p, _ in calls} == {"one", "three"}  # idle sent nothing
    assert most == {"one": 1, "three": 3}
    assert [n for _, n in calls] == list(range(len(calls)))  # one count over the run
    assert len(kept) == len(calls)  # every request that was sent is kept


async def test_a_request_in_flight_at_the_phase_end_finishes_and_counts() -> None:
    plan = DemoPlan((Phase("slow", 0.01, 1),), ("m",))
    release = asyncio.Event()

    async def send(phase: str, n: int) -> DemoRecord:
        asyncio.get_running_loop().call_later(0.05, release.set)
        await release.wait()
        return _record(phase, n)

    kept: list[DemoRecord] = []
    await run_phases(plan, send, kept.append)
    assert [r.phase for r in kept] == ["slow"]


async def test_a_client_pauses_after_a_failure_but_not_past_its_phase() -> None:
    plan = DemoPlan((Phase("steady", 0.1, 1),), ("m",), failure_pause_s=3600)
    calls: list[int] = []

    async def send(phase: str, n: int) -> DemoRecord:
        calls.append(n)
        return DemoRecord(phase, "m", 0, None, 0, 0, False, "APIConnectionError")

    await run_phases(plan, send, lambda _r: None)  # returns at the phase's end
    assert calls == [0]  # no tight loop of failures


class FakeStream:
    """What ``client.chat.completions.create(stream=True)`` returns: an async context
    manager iterating chunks; ``fail`` raises after them, ``hang`` never ends."""

    def __init__(self, chunks: list[Any], fail: Exception | None = None,
                 hang: bool = False) -> None:
        self.chunks, self.fail, self.hang, self.closed = chunks, fail, hang, False

    async def __aenter__(self) -> FakeStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.closed = True

    async def __aiter__(self) -> AsyncIterator[Any]:
        for c in self.chunks:
            yield c
        if self.fail is not None:
            raise self.fail
        if self.hang:
            await asyncio.Event().wait()


class FakeClient:
    def __init__(self, stream: FakeStream | None = None, error: Exception | None = None) -> None:
        self.stream, self.error = stream, error
        self.kwargs: dict[str, Any] = {}
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self._create))

    async def _create(self, **kwargs: Any) -> FakeStream:
        self.kwargs = kwargs
        if self.error is not None:
            raise self.error
        assert self.stream is not None
        return self.stream


def _chunk(content: str | None = None, finish: str | None = None,
           usage: int | None = None) -> Any:
    choices = [] if usage is not None else [SimpleNamespace(
        delta=SimpleNamespace(content=content), finish_reason=finish)]
    return SimpleNamespace(choices=choices, usage=None if usage is None else
                           SimpleNamespace(completion_tokens=usage))


PLAN = DemoPlan((Phase("steady", 1, 1),), ("qa",), max_tokens=16, timeout_s=5)
REQ = request_for(("qa",), PROMPTS, 7)


async def test_an_answer_records_first_token_and_the_usage_tokens() -> None:
    stream = FakeStream([_chunk(""), _chunk("Paris"), _chunk(" is"), _chunk(finish="stop"),
                         _chunk(usage=5)])
    client = FakeClient(stream)
    r = await stream_one(client, PLAN, "steady", REQ)
    assert (r.ok, r.error, r.tokens, r.model, r.phase) == (True, None, 5, "qa", "steady")
    assert r.first_token is not None and r.start <= r.first_token <= r.end
    assert r.timing() is not None and stream.closed
    kw = client.kwargs
    assert kw["stream"] is True and kw["max_tokens"] == 16
    assert kw["stream_options"] == {"include_usage": True}
    assert kw["extra_headers"] == {USER_HEADER: REQ.user}
    assert kw["messages"] == [{"role": "user", "content": REQ.prompt}]


async def test_without_usage_the_content_chunks_are_counted() -> None:
    r = await stream_one(FakeClient(FakeStream([_chunk("a"), _chunk("b", "stop")])),
                         PLAN, "steady", REQ)
    assert r.ok and r.tokens == 2


async def test_failures_are_records_with_their_error() -> None:
    refused = await stream_one(FakeClient(error=ConnectionError("refused")), PLAN, "burst",
                               REQ)
    assert not refused.ok and refused.error == "ConnectionError: refused"
    assert refused.first_token is None and refused.timing() is None
    broken = await stream_one(FakeClient(FakeStream([_chunk("a")], fail=RuntimeError("cut"))),
                              PLAN, "burst", REQ)
    assert not broken.ok and broken.error == "RuntimeError: cut"
    assert broken.first_token is not None and broken.tokens == 1
    truncated = await stream_one(FakeClient(FakeStream([_chunk("a")])), PLAN, "burst", REQ)
    assert not truncated.ok and "finish_reason" in (truncated.error or "")


async def test_a_request_that_outlives_its_timeout_fails_and_is_closed() -> None:
    stream = FakeStream([_chunk("a")], hang=True)
    plan = DemoPlan((Phase("steady", 1, 1),), ("qa",), timeout_s=0.05)
    r = await stream_one(FakeClient(stream), plan, "steady", REQ)
    assert not r.ok and (r.error or "").startswith("TimeoutError")
    assert stream.closed
