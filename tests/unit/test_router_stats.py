"""A/B statistics, tier classifier and calibration."""

from __future__ import annotations

import math
import random

import pytest

from tierserve.routing.abtest import AbRecorder, mann_whitney_u, percentile
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
