"""Queue, scale-from-zero hold, retry budget, outlier ejection, rate limits, parsing."""

from __future__ import annotations

import asyncio
import random

import pytest
from pydantic import SecretStr

from tierserve.core.routerconfig import (
    ApiKey,
    AuthConfig,
    ConfigError,
    DeploymentConfig,
    OutlierConfig,
    RetryConfig,
)
from tierserve.dev.waiting import wait_until_async
from tierserve.routing.admission import Gate, Hold
from tierserve.routing.auth import KeyRing, KeyState, TokenBucket, load_keys, replica_share
from tierserve.routing.errors import RouterError
from tierserve.routing.scraper import parse_queue_metrics
from tierserve.routing.state import DeploymentRuntime, RetryBudget
from tierserve.routing.validate import parse_body, request_id


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Signal:
    def __init__(self) -> None:
        self.woken: list[str] = []

    async def wake(self, deployment: str) -> None:
        self.woken.append(deployment)


async def test_gate_queues_fifo_and_refuses_beyond_the_bound() -> None:
    gate = Gate()
    gate.configure(1, 2, 5.0)
    await gate.acquire()
    order: list[int] = []

    async def waiter(i: int) -> None:
        await gate.acquire()
        order.append(i)

    tasks = [asyncio.create_task(waiter(i)) for i in range(2)]
    await wait_until_async(lambda: gate.queued == 2, 5, "two waiters queued")
    with pytest.raises(RouterError) as info:
        await gate.acquire()
    assert info.value.status == 429 and info.value.retry_after_s
    gate.release()
    await wait_until_async(lambda: order == [0], 5, "the first waiter admitted")
    gate.release()
    await asyncio.gather(*tasks)
    assert order == [0, 1]


async def test_gate_times_out_with_429() -> None:
    gate = Gate()
    gate.configure(1, 5, 0.05)
    await gate.acquire()
    with pytest.raises(RouterError) as info:
        await gate.acquire()
    assert info.value.status == 429
    assert gate.queued == 0


async def test_hold_signals_once_and_releases_when_ready() -> None:
    signal = Signal()
    hold = Hold("d", signal)
    waiters = [asyncio.create_task(hold.wait(enabled=True, max_held=5, timeout_s=5))
               for _ in range(3)]
    await wait_until_async(lambda: hold.held == 3 and bool(signal.woken), 5,
                           "three requests held and the deployment woken")
    assert signal.woken == ["d"]
    hold.set_ready(True)
    await asyncio.gather(*waiters)
    assert hold.held == 0


async def test_hold_is_bounded_in_count_and_time() -> None:
    hold = Hold("d", Signal())
    first = asyncio.create_task(hold.wait(enabled=True, max_held=1, timeout_s=0.05))
    await wait_until_async(lambda: hold.held == 1, 5, "the first request held")
    with pytest.raises(RouterError) as full:
        await hold.wait(enabled=True, max_held=1, timeout_s=5)
    assert full.value.status == 503
    with pytest.raises(RouterError) as late:
        await first
    assert late.value.status == 503 and late.value.retry_after_s
    with pytest.raises(RouterError):
        await hold.wait(enabled=False, max_held=1, timeout_s=5)


def test_retry_budget_limits_retries_and_refills() -> None:
    clock = Clock()
    budget = RetryBudget(RetryConfig(budget_ratio=0.0, min_retries_per_s=1.0), clock)
    assert sum(budget.withdraw() for _ in range(50)) == 10  # the initial cap
    assert not budget.withdraw()
    clock.t += 3
    assert sum(budget.withdraw() for _ in range(50)) == 3


def _dep(n: int, clock: Clock, fraction: float = 0.5) -> DeploymentRuntime:
    cfg = DeploymentConfig(name="d", endpoints=[{"url": f"http://h{i}:1"} for i in range(n)],
                           outlier=OutlierConfig(consecutive_failures=2,
                                                 max_ejected_fraction=fraction))
    return DeploymentRuntime(cfg, clock=clock, rng=random.Random(0), signal=Signal(),
                             on_eject=lambda _d: None)


def test_ejection_after_consecutive_failures_with_a_cap() -> None:
    clock = Clock()
    dep = _dep(4, clock)
    for ep in dep.endpoints:
        dep.failure(ep)
        dep.failure(ep)
    assert dep.ejected_count(clock.t) == 2  # 50% cap of 4
    clock.t += 11
    assert dep.ejected_count(clock.t) == 0


def test_success_resets_the_failure_streak_and_reload_keeps_state() -> None:
    clock = Clock()
    dep = _dep(2, clock)
    ep = dep.endpoints[0]
    dep.failure(ep)
    dep.success(ep)
    dep.failure(ep)
    assert dep.ejected_count(clock.t) == 0
    ep.outstanding = 3
    dep.apply(dep.cfg.model_copy(update={"max_queue": 7}))
    assert dep.endpoints[0] is ep and ep.outstanding == 3


def test_token_bucket_and_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    bucket = TokenBucket(60, clock)
    bucket.take(60)
    assert bucket.retry_after(1) == pytest.approx(1.0)
    monkeypatch.setenv("MP_KEYS", "team-a=sk-a-1,team-b=sk-b-2")
    cfg = AuthConfig(keys_env="MP_KEYS", default_requests_per_minute=2)
    ring = KeyRing(clock)
    ring.apply(cfg, load_keys(cfg))
    state = ring.authenticate("Bearer sk-a-1")
    assert state is not None and state.name == "team-a"
    state.admit()
    state.admit()
    with pytest.raises(RouterError) as info:
        state.admit()
    assert info.value.status == 429
    with pytest.raises(RouterError) as bad:
        ring.authenticate("Bearer sk-wrong")
    assert bad.value.status == 401 and "sk-wrong" not in bad.value.message


def test_bad_key_file_error_names_no_secret(tmp_path: object) -> None:
    from pathlib import Path
    path = Path(str(tmp_path)) / "keys.yaml"
    path.write_text("- name: x\n  key: sk-sentinel-file\n  bogus: [\n")
    with pytest.raises(ConfigError) as info:
        load_keys(AuthConfig(keys_file=path))
    assert "sk-sentinel-file" not in str(info.value)


def test_parse_vllm_queue_metrics() -> None:
    text = ('# HELP vllm:num_requests_waiting x\n'
            'vllm:num_requests_waiting{model_name="a"} 3.0\n'
            'vllm:num_requests_running{model_name="a"} 5\n'
            'vllm:num_requests_running{model_name="b"} 2\n'
            'vllm:num_requests_swapped 9\n')
    assert parse_queue_metrics(text) == (3.0, 7.0)
    assert parse_queue_metrics("other 1\n") is None


@pytest.mark.parametrize(("raw", "chat", "param"), [
    (b"", True, None),
    (b'{"model": "m", "messages": [', True, None),
    (b"[1, 2]", True, None),
    (b'{"messages": [{"role": "user", "content": "x"}]}', True, "model"),
    (b'{"model": 5, "messages": []}', True, "model"),
    (b'{"model": "m", "messages": "hi"}', True, "messages"),
    (b'{"model": "m", "messages": [{"content": "x"}]}', True, "messages[0]"),
    (b'{"model": "m", "messages": [{"role": "user", "content": 3}]}', True, "messages[0].content"),
    (b'{"model": "m", "messages": [{"role": "u"}], "stream": "yes"}', True, "stream"),
    (b'{"model": "m", "messages": [{"role": "u"}], "max_tokens": "9"}', True, "max_tokens"),
    (b'{"model": "m", "messages": [{"role": "u"}], "temperature": true}', True, "temperature"),
    (b'{"model": "m", "prompt": {"a": 1}}', False, "prompt"),
    (b"[" * 5000 + b"]" * 5000, True, None),
])
def test_bad_bodies_are_400(raw: bytes, chat: bool, param: str | None) -> None:
    with pytest.raises(RouterError) as info:
        parse_body(raw, chat)
    assert info.value.status == 400 and info.value.param == param


def test_request_id_echo_is_sanitised() -> None:
    assert request_id("abc-123", "fresh") == "abc-123"
    assert request_id("bad\r\nheader", "fresh") == "fresh"
    assert request_id("x" * 500, "fresh") == "fresh"


def _admitted(state: KeyState, tries: int) -> int:
    ok = 0
    for _ in range(tries):
        try:
            state.admit()
            ok += 1
        except RouterError as exc:
            assert exc.status == 429
    return ok


def test_replica_share_divides_a_key_limit() -> None:
    assert replica_share(600, 2) == 300
    assert replica_share(None, 3) is None
    with pytest.raises(ValueError, match="got 0"):
        replica_share(600, 0)


def test_keyring_enforces_this_replicas_share_and_resizes_without_a_fresh_burst() -> None:
    clock = Clock()
    keys = [ApiKey(name="team-a", key=SecretStr("sk-a"), requests_per_minute=4)]
    ring = KeyRing(clock)
    ring.apply(AuthConfig(keys=keys), keys)
    state = ring.authenticate("Bearer sk-a")
    assert state is not None
    assert _admitted(state, 1) == 1  # 3 of 4 left
    ring.apply(AuthConfig(keys=keys, replicas=2), keys)  # a second replica became ready
    assert ring.authenticate("Bearer sk-a") is state
    assert _admitted(state, 5) == 2  # this replica's share: 2, and no refill of it
    ring.apply(AuthConfig(keys=keys, replicas=1), keys)  # back to one: the whole limit
    assert _admitted(state, 1) == 0  # ... refilling at the whole rate, not granted at once
    clock.t += 15  # 4 per minute: one request
    assert _admitted(state, 2) == 1
    fresh = [ApiKey(name="team-a", key=SecretStr("sk-a"), requests_per_minute=8)]
    ring.apply(AuthConfig(keys=fresh, replicas=2), fresh)  # a new configured limit
    renewed = ring.authenticate("Bearer sk-a")
    assert renewed is not None and renewed is not state and _admitted(renewed, 9) == 4
