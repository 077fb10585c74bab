"""A/B statistics, tier classifier and calibration."""

from __future__ import annotations

import math
import random

import pytest

from tierserve.routing.abtest import (
    AbRecorder,
    SampleWire,
    VariantWire,
    mann_whitney_u,
    merge_samples,
    merged,
    percentile,
    sample_shares,
)
from tierserve.routing.plugins.classifier import (
    HeuristicClassifier,
    ThresholdCalibrator,
    quantile_threshold,
)
from tierserve.routing.tierdata import labelled_set


def test_mann_whitney_known_value() -> None:
    u, p = mann_whitney_u([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    assert u == 0
    # z = (12.5 - 0.5) / sqrt(25 * 11 / 12); two-sided p = erfc(z / sqrt 2)
    assert p == pytest.approx(math.erfc(12 / math.sqrt(25 * 11 / 12) / math.sqrt(2)), rel=1e-9)
    assert p == pytest.approx(0.0122, abs=5e-4)


def test_mann_whitney_ties_and_identical() -> None:
    _u, p = mann_whitney_u([1.0] * 30, [1.0] * 30)
    assert p == 1.0


def test_readout_detects_a_real_difference_and_not_a_fake_one() -> None:
    rng = random.Random(7)
    rec = AbRecorder()
    for _ in range(300):
        rec.record("control", ok=True, e2e=rng.expovariate(10), ttft=rng.gauss(0.10, 0.01),
                   tpot=0.01)
        rec.record("same", ok=True, e2e=rng.expovariate(10), ttft=rng.gauss(0.10, 0.01),
                   tpot=0.01)
        rec.record("slower", ok=rng.random() > 0.1, e2e=0.2, ttft=rng.gauss(0.12, 0.01),
                   tpot=0.02)
    out = rec.readout(["control", "same", "slower"])
    by_name = {c["variant"]: c for c in out["comparisons"]}
    assert by_name["slower"]["significant"] and by_name["slower"]["p_value"] < 1e-6
    assert by_name["slower"]["metric"] == "ttft_seconds"
    assert by_name["same"]["p_value"] > 0.01
    slower = next(v for v in out["variants"] if v["name"] == "slower")
    assert 0.03 < slower["error_rate"] < 0.2
    assert slower["ttft_p95_seconds"] > slower["ttft_p50_seconds"]
    assert "Mann-Whitney" in out["test"]


def test_readout_with_too_few_samples_says_so() -> None:
    rec = AbRecorder()
    rec.record("a", ok=True, e2e=0.1, ttft=None, tpot=None)
    rec.record("b", ok=True, e2e=0.1, ttft=None, tpot=None)
    cmp = rec.readout(["a", "b"])["comparisons"][0]
    assert cmp["p_value"] is None and cmp["significant"] is False


def test_percentile_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3, 1, 2], 50) == 2
    assert percentile(list(range(1, 101)), 95) == 95


def test_heuristic_separates_the_labelled_set() -> None:
    clf = HeuristicClassifier()
    data = labelled_set()
    slow = [clf.score_sync(t, 1) for t, lab in data if lab == "slow"]
    fast = [clf.score_sync(t, 1) for t, lab in data if lab == "fast"]
    pairs = [(s > f) + 0.5 * (s == f) for s in slow for f in fast]
    auc = sum(pairs) / len(pairs)
    assert auc > 0.9
    assert all(0 <= s <= 1 for s in slow + fast)


def test_conversation_depth_raises_the_score() -> None:
    clf = HeuristicClassifier()
    assert clf.score_sync("ok", 8) > clf.score_sync("ok", 1)


def test_threshold_calibrated_to_target_share() -> None:
    rng = random.Random(3)
    scores = [rng.random() for _ in range(10000)]
    t = quantile_threshold(scores, 0.3)
    share = sum(s >= t for s in scores) / len(scores)
    assert abs(share - 0.3) < 0.01


def test_calibrator_follows_traffic_drift() -> None:
    cal = ThresholdCalibrator(fixed=None, target_share=0.2, seed_scores=[0.1] * 10, window=500,
                              every=50)
    rng = random.Random(4)
    for _ in range(1000):
        cal.observe(0.5 + 0.5 * rng.random())
    recent = [0.5 + 0.5 * rng.random() for _ in range(5000)]
    assert abs(cal.share_above(recent) - 0.2) < 0.05


def test_fixed_threshold_never_moves() -> None:
    cal = ThresholdCalibrator(fixed=0.4, target_share=0.9)
    for _ in range(500):
        cal.observe(0.99)
    assert cal.threshold == 0.4


def _split_records(n: int, seed: int) -> tuple[AbRecorder, AbRecorder, AbRecorder]:
    """The same traffic recorded by two replicas (split at random) and by one."""
    rng = random.Random(seed)
    one, a, b = AbRecorder(), AbRecorder(), AbRecorder()
    for i in range(n):
        variant = "control" if i % 2 else "candidate"
        slow = 0.02 if variant == "candidate" else 0.0
        ok, e2e = rng.random() > 0.05, round(rng.uniform(0.1, 0.3), 6)
        ttft = round(rng.uniform(0.01, 0.05) + slow, 6)
        tpot = round(rng.uniform(0.001, 0.01), 6)
        for rec in (one, a if rng.random() < 0.3 else b):
            rec.record(variant, ok=ok, e2e=e2e, ttft=ttft, tpot=tpot)
    return one, a, b


def _wire(rec: AbRecorder) -> dict[str, VariantWire]:
    return {n: VariantWire.model_validate(v) for n, v in rec.wire().items()}


def test_merged_readout_of_two_replicas_equals_one_that_saw_everything() -> None:
    one, a, b = _split_records(400, seed=3)
    order = ["control", "candidate"]
    both = merged([_wire(a), _wire(b)]).readout(order)
    assert both == one.readout(order)
    assert [v["requests"] for v in both["variants"]] == [
        a.variants[n].requests + b.variants[n].requests for n in order]
    assert both["comparisons"][0]["significant"] is True


def test_merged_variant_seen_by_one_replica_only() -> None:
    a, b = AbRecorder(), AbRecorder()
    a.record("x", ok=False, e2e=0.1, ttft=None, tpot=None)
    b.record("y", ok=True, e2e=0.2, ttft=0.05, tpot=0.01)
    out = merged([_wire(a), _wire(b)]).readout(["x", "y"])
    assert [(v["requests"], v["error_rate"]) for v in out["variants"]] == [(1, 1.0), (1, 0.0)]


def test_sample_shares_follow_what_each_replica_saw() -> None:
    assert sample_shares([300, 100], [300, 100], 2000) == [300, 100]  # fits: all of it
    assert sample_shares([6000, 2000], [2000, 2000], 2000) == [1500, 500]
    assert sum(sample_shares([1, 1, 1], [1, 1, 1], 2)) == 2
    # a part that holds fewer than its share gives the rest to the others
    assert sample_shares([9000, 3000], [1000, 2000], 2000) == [1000, 1000]


def test_merge_samples_keeps_the_size_and_counts_every_value() -> None:
    rng = random.Random(0)
    big = SampleWire(seen=6000, values=[1.0] * 2000)
    small = SampleWire(seen=2000, values=[2.0] * 2000)
    out = merge_samples([big, small], 2000, rng)
    assert out.seen == 8000 and len(out.values) == 2000
    assert out.values.count(1.0) == 1500 and out.values.count(2.0) == 500


@pytest.mark.parametrize(("bad", "says"), [
    ({"seen": 1, "values": [0.1, 0.2]}, "2 values but seen is 1"),
    ({"seen": 1, "values": [-0.1]}, "greater than or equal to 0"),
    ({"seen": 1, "values": [float("nan")]}, "finite number"),
    ({"seen": -1, "values": []}, "greater than or equal to 0"),
])
def test_peer_samples_are_validated(bad: dict[str, object], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        SampleWire.model_validate(bad)
