"""The tiering benchmark's question set, its checkers, and the calibration rule."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tierserve.dev.tierbench import calibrate as cal
from tierserve.dev.tierbench.questions import (
    NumberCheck,
    Question,
    QuestionSetError,
    is_correct,
    load_questions,
    numbers,
    reference_answer,
    wrong_answer,
)

QUESTIONS = load_questions()


def _q(question: str, check: dict[str, object]) -> Question:
    return Question.model_validate({"id": "t-1", "category": "t", "question": question,
                                    "check": check})


def test_the_set_is_large_varied_and_unique() -> None:
    assert len(QUESTIONS) >= 150
    kinds = Counter(q.category for q in QUESTIONS)
    assert set(kinds) == {"arithmetic", "units", "capitals", "spelling", "yesno", "code"}
    assert min(kinds.values()) >= 20
    assert len({q.question for q in QUESTIONS}) == len(QUESTIONS)


@pytest.mark.parametrize("item", QUESTIONS, ids=[q.id for q in QUESTIONS])
def test_every_checker_accepts_its_reference_and_rejects_a_wrong_answer(item: Question) -> None:
    assert item.correct(reference_answer(item))
    assert not item.correct(wrong_answer(item))
    assert not item.correct("")


def test_no_number_answer_is_stated_in_its_question() -> None:
    # the number checker skips the question's own numbers, so such an item could not pass
    stated = [q.id for q in QUESTIONS
              if isinstance(q.check, NumberCheck) and q.check.value in numbers(q.question)]
    assert stated == []


def test_number_checker_reads_the_result_not_the_operands() -> None:
    q = _q("What is 7 times 8?", {"kind": "number", "value": 56})
    assert is_correct(q, "7 times 8 is 56.")
    assert is_correct(q, "56")
    assert is_correct(q, "7 x 8 = 7 + 7 + ... so the product is 56")
    assert not is_correct(q, "7 times 8 is 54.")
    assert not is_correct(q, "7 times 8 is 56, no wait, 54.")
    assert is_correct(q, "Let me think: 7 x 8 = 54? No.\nAnswer: 56")
    assert not is_correct(q, "First 56... Answer: 54")
    big = _q("How many metres are in 5 kilometres?", {"kind": "number", "value": 5000})
    assert is_correct(big, "There are 5,000 metres in 5 kilometres.")
    half = _q("What is 1.5 plus 2.5?", {"kind": "number", "value": 4})
    assert is_correct(half, "4.0") and not is_correct(half, "3.5")


def test_word_checker_takes_the_first_named_candidate() -> None:
    q = _q("What is the capital of Australia?",
           {"kind": "word", "accept": ["Canberra"], "reject": ["Sydney"]})
    assert is_correct(q, "Canberra, not Sydney.")
    assert not is_correct(q, "Sydney is the capital (Canberra is smaller).")
    assert not is_correct(q, "It is Canberras.")  # whole words only
    accent = _q("What is the capital of Brazil?",
                {"kind": "word", "accept": ["Brasilia", "Brasília"], "reject": ["Rio"]})
    assert is_correct(accent, "BRASÍLIA") and not is_correct(accent, "Rio de Janeiro")


def test_yes_no_checker_takes_the_first_yes_or_no() -> None:
    q = _q("Can penguins fly?", {"kind": "yesno", "value": "no"})
    assert is_correct(q, "No, penguins cannot fly; yes, they swim.")
    assert not is_correct(q, "Yes.") and not is_correct(q, "Nobody knows.")


def test_a_bad_question_file_names_its_line(tmp_path: Path) -> None:
    f = tmp_path / "q.jsonl"
    f.write_text('{"id": "a-1", "category": "a", "question": "q?", '
                 '"check": {"kind": "yesno", "value": "yes"}}\n'
                 '{"id": "a-2", "category": "a", "question": "q?", '
                 '"check": {"kind": "yesno", "value": "maybe"}}\n')
    with pytest.raises(QuestionSetError, match=r"q.jsonl:2:"):
        load_questions(f)
    f.write_text('{"id": "a-1", "category": "a", "question": "q?", '
                 '"check": {"kind": "word", "accept": []}}\n')
    with pytest.raises(QuestionSetError, match=r"q.jsonl:1:"):
        load_questions(f)
    with pytest.raises(QuestionSetError, match="No such file"):
        load_questions(tmp_path / "missing.jsonl")


def _items(spec: str, cost: float, lps: list[float] | None = None) -> list[cal.Item]:
    lps = lps or [-0.5] * len(spec)
    return [cal.Item(c == "1", cost, lp) for c, lp in zip(spec, lps, strict=True)]


def test_simulate_charges_escalations_both_answers() -> None:
    fast = _items("1100", 1.0, [-0.1, -0.2, -2.0, -3.0])
    slow = _items("0111", 5.0)
    p = cal.simulate(fast, slow, [0.1] * 4, t_cls=cal.NEVER_SLOW, t_lp=-1.0)
    assert (p.correct, p.escalated, p.slow, p.cost) == (4, 2, 0, 4 * 1.0 + 2 * 5.0)
    p = cal.simulate(fast, slow, [0.1, 0.1, 0.9, 0.9], t_cls=0.5, t_lp=cal.NEVER_ESCALATE)
    assert (p.correct, p.slow, p.escalated, p.cost) == (4, 2, 0, 2 * 1.0 + 2 * 5.0)


def test_choose_is_the_cheapest_within_the_tolerance_of_the_best() -> None:
    pts = [cal.Point(0, 0, correct=c, cost=cost, slow=0, escalated=0)
           for c, cost in [(90, 100.0), (89, 40.0), (85, 10.0), (89, 60.0)]]
    assert cal.choose(pts, n=100, tolerance=0.02).cost == 40.0
    assert cal.choose(pts, n=100, tolerance=0.0).cost == 100.0


def test_calibrating_a_pair_escalates_exactly_the_unsure_wrong_answers() -> None:
    # the fast tier is wrong exactly where it is unsure; the slow tier is always right
    fast = _items("110011", 1.0, [-0.1, -0.2, -1.5, -1.8, -0.3, -0.1])
    slow = _items("111111", 4.0)
    pair = cal.calibrate_pair("f", "s", {"f": fast, "s": slow}, [0.2] * 6, tolerance=0.0)
    b = pair.confidence
    assert b.correct == 6 and b.escalated == 2 and -1.5 < b.t_lp <= -0.3
    assert pair.classifier.correct == 6 and pair.classifier.slow == 6  # no prompt signal
    assert pair.both.cost == b.cost
    assert cal.pick_pair([pair], {"f": fast, "s": slow}, 6) is pair


def test_pick_pair_prefers_a_weak_strong_pair_that_gets_near_the_best_cheaply() -> None:
    cheap = _items("1100", 1.0, [-0.1, -0.1, -2.0, -2.0])  # sure when right
    strong = _items("1111", 5.0)
    rival = _items("1110", 0.5, [-0.1, -0.1, -0.1, -2.0])  # cheaper and better than cheap
    items = {"cheap": cheap, "strong": strong, "rival": rival}
    pairs = [cal.calibrate_pair(f, s, items, [0.1] * 4, tolerance=0.0)
             for f in items for s in items if f != s]
    chosen = cal.pick_pair(pairs, items, 4, tolerance=0.0)
    assert (chosen.fast, chosen.slow) == ("rival", "strong")  # 4/4 at 0.5 x 4 + 5 = 7
    assert chosen.confidence.correct == 4 and chosen.confidence.escalated == 1
    assert cal.weak_strong(cheap, strong) and not cal.weak_strong(strong, cheap)


def test_confidence_auc_measures_how_well_logprobs_rank_right_over_wrong() -> None:
    ranked = _items("1100", 1.0, [-0.1, -0.2, -1.0, -2.0])
    assert cal.confidence_auc(ranked) == 1.0
    assert cal.confidence_auc(_items("0011", 1.0, [-0.1, -0.2, -1.0, -2.0])) == 0.0
    assert cal.confidence_auc(_items("1010", 1.0, [-0.5] * 4)) == 0.5
    assert cal.confidence_auc(_items("11", 1.0)) is None


def test_halves_are_disjoint_and_a_limit_keeps_every_category() -> None:
    from tierserve.dev.bench.tiers import _halves

    calib, report = _halves(QUESTIONS, None)
    assert not {q.id for q in calib} & {q.id for q in report}
    assert len(calib) + len(report) == len(QUESTIONS)
    small, _ = _halves(QUESTIONS, 30)
    assert len(small) == 30
    assert {q.category for q in small} == {q.category for q in QUESTIONS}
