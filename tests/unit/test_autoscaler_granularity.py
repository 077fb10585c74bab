"""The burst headroom (``signals.granularity_safety``): demand lumps that slow decoding.

A batching engine decodes beside other requests' prefills, so lumpy arrivals slow its
TPOT; an engine that runs one sequence at a time (llama.cpp, ``max_concurrency`` 1)
never does, so it gets no headroom for it.
"""

from __future__ import annotations

import pytest

from tierserve.autoscaler.policy.signals import granularity_safety
from tierserve.core.capacity import ReplicaCapacity


def capacity(max_concurrency: float) -> ReplicaCapacity:
    return ReplicaCapacity(max_concurrency=max_concurrency, decode_tokens_per_s=1000,
                           prefill_tokens_per_s=10_000)


def test_batching_engine_gets_headroom_growing_with_load() -> None:
    low = granularity_safety(1.0, capacity(64), 1500, 13, 0.04)
    high = granularity_safety(4.0, capacity(64), 1500, 13, 0.04)
    assert 0 < low < high
    assert high == pytest.approx(2 * low)  # sqrt(load)


def test_one_sequence_engine_gets_none() -> None:
    assert granularity_safety(1.0, capacity(1), 1500, 13, 0.04) == 0.0


def test_no_load_no_headroom() -> None:
    assert granularity_safety(0.0, capacity(64), 1500, 13, 0.04) == 0.0
