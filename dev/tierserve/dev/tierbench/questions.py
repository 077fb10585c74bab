"""The labelled question set of the tiering benchmark, and one mechanical checker per item.

``tests/data/tier_questions.jsonl`` holds short questions written for this project
(arithmetic, unit conversions, capitals, spelling, yes/no facts, Python output), each with
a ``check``:

* ``{"kind": "number", "value": V, "tolerance": T}``: the last number in the answer that
  is not one of the question's own numbers (a model restating "7 times 8 is 56" is
  right, and working that ends on the result too) equals ``V`` within ``T``; the set
  never asks for a number the question states;
* ``{"kind": "word", "accept": [...], "reject": [...]}``: of the accepted and rejected
  words (whole words, case- and accent-insensitive), the first one the answer names is an
  accepted one ("Canberra, not Sydney" is right, "Sydney" is wrong);
* ``{"kind": "yesno", "value": "yes"|"no"}``: the first "yes" or "no" in the answer.

Only the part after the last ``Answer:`` (or "answer is") is checked when the model
writes one (a step-by-step answer ends with it), so the working before it does not count.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

DEFAULT_PATH = Path(__file__).resolve().parents[4] / "tests" / "data" / "tier_questions.jsonl"

_NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?")
_ANSWER = re.compile(r"\banswer\s*(?::|is\b)", re.IGNORECASE)
_YESNO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)


class _Check(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NumberCheck(_Check):
    kind: Literal["number"]
    value: float
    tolerance: Annotated[float, Field(ge=0)] = 0.0


class WordCheck(_Check):
    kind: Literal["word"]
    accept: Annotated[list[str], Field(min_length=1)]
    reject: list[str] = Field(default_factory=list)


class YesNoCheck(_Check):
    kind: Literal["yesno"]
    value: Literal["yes", "no"]


Check = Annotated[NumberCheck | WordCheck | YesNoCheck, Field(discriminator="kind")]


class Question(BaseModel):
    """One labelled item."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=r"^[a-z]+-\d+$")]
    category: str
    question: Annotated[str, Field(min_length=1, max_length=300)]
    check: Check

    def correct(self, answer: str) -> bool:
        return is_correct(self, answer)


_QUESTION = TypeAdapter(Question)


class QuestionSetError(ValueError):
    """A question file that cannot be used; the message names the line."""


def load_questions(path: Path = DEFAULT_PATH) -> list[Question]:
    """Every item of ``path`` (JSON Lines), validated; ids are unique."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise QuestionSetError(f"{path}: {exc}") from None
    out: list[Question] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(_QUESTION.validate_python(json.loads(line)))
        except (json.JSONDecodeError, ValidationError) as exc:
            raise QuestionSetError(f"{path}:{n}: {exc}") from None
    ids = [q.id for q in out]
    if len(set(ids)) != len(ids):
        raise QuestionSetError(f"{path}: duplicate ids")
    return out


def final_part(answer: str) -> str:
    """The text after the last ``Answer:`` marker, or all of it."""
    parts = _ANSWER.split(answer)
    return parts[-1] if len(parts) > 1 else answer


def numbers(text: str) -> list[float]:
    return [float(m.replace(",", "")) for m in _NUMBER.findall(text)]


def _fold(text: str) -> str:
    """Lower case without accents (Brasília = Brasilia)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _first_word(text: str, words: list[str]) -> str | None:
    folded = _fold(text)
    best: tuple[int, str] | None = None
    for w in words:
        m = re.search(rf"(?<!\w){re.escape(_fold(w))}(?!\w)", folded)
        if m and (best is None or m.start() < best[0]):
            best = (m.start(), w)
    return best[1] if best else None


def is_correct(item: Question, answer: str) -> bool:
    """Whether ``answer`` (a model's text) answers ``item`` correctly."""
    text = final_part(answer)
    check = item.check
    if isinstance(check, NumberCheck):
        given = set(numbers(item.question))
        found = [v for v in numbers(text) if v not in given]
        return bool(found) and abs(found[-1] - check.value) <= check.tolerance
    if isinstance(check, WordCheck):
        first = _first_word(text, check.accept + check.reject)
        return first is not None and first in check.accept
    m = _YESNO.search(text)
    return m is not None and m.group(1).lower() == check.value


def reference_answer(item: Question) -> str:
    """A correct answer in words, as a model would write it (for the checkers' test)."""
    check = item.check
    if isinstance(check, NumberCheck):
        value = int(check.value) if check.value.is_integer() else check.value
        return f"The answer is {value}."
    if isinstance(check, WordCheck):
        return f"{check.accept[0]}."
    return f"{check.value.capitalize()}, that is right."


def wrong_answer(item: Question) -> str:
    """A plausible wrong answer (for the checkers' test)."""
    check = item.check
    if isinstance(check, NumberCheck):
        return f"The answer is {check.value + check.tolerance + 1:g}."
    if isinstance(check, WordCheck):
        return f"{check.reject[0]}." if check.reject else "I do not know."
    return "No." if check.value == "yes" else "Yes."
