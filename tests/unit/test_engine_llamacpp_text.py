"""The llama.cpp engine's text handling without a model: stop strings held back across
tokens and cut, multi-byte characters split over tokens, chat templates (file or text,
the sandbox, refusals)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")

from tierserve.engine.chat_template import (
    ChatTemplate,
    TemplateError,
    load_template,
)
from tierserve.engine.llamacpp_gen import TextStream


def feed_all(stream: TextStream, pieces: list[bytes]) -> tuple[list[str], bool]:
    out = []
    for piece in pieces:
        text, stopped = stream.feed(piece)
        out.append(text)
        if stopped:
            return out, True
    out.append(stream.flush())
    return out, False


def test_stop_split_over_tokens_is_cut_and_held_back() -> None:
    out, stopped = feed_all(TextStream(["\nQuestion:"]), [b" Paris", b"\n", b"Quest", b"ion:",
                                                          b" more"])
    assert stopped and "".join(out) == " Paris"
    assert out == [" Paris", "", "", ""]  # the newline waited: it might start the stop


def test_a_prefix_that_does_not_continue_is_released() -> None:
    out, stopped = feed_all(TextStream(["ab"]), [b"xa", b"c", b"a"])
    assert not stopped and out == ["x", "ac", "", "a"]


def test_multibyte_character_split_over_tokens() -> None:
    euro = "€".encode()
    out, stopped = feed_all(TextStream([]), [euro[:1], euro[1:] + b" 5", b"!"])
    assert not stopped and out == ["", "€ 5", "!", ""]


def test_earliest_stop_wins() -> None:
    out, stopped = feed_all(TextStream(["B", "A"]), [b"xxAyyB"])
    assert stopped and out == ["xx"]


def test_template_renders_messages_and_specials() -> None:
    t = ChatTemplate("{{ bos_token }}{% for m in messages %}Q: {{ m['content'] }}\n"
                     "{% endfor %}{% if add_generation_prompt %}A:{% endif %}", "<s>", "</s>")
    text = t.render([{"role": "user", "content": [{"type": "text", "text": "2+2?"}]}])
    assert text == "<s>Q: 2+2?\nA:"


def test_template_refusals_and_sandbox() -> None:
    t = ChatTemplate("{% if messages[0]['role'] != 'user' %}"
                     "{{ raise_exception('user first') }}{% endif %}ok")
    with pytest.raises(TemplateError, match="user first"):
        t.render([{"role": "system", "content": "x"}])
    with pytest.raises(TemplateError, match="does not parse"):
        ChatTemplate("{% for %}")
    with pytest.raises(TemplateError):  # the sandbox: no attribute walking to Python
        ChatTemplate("{{ messages.__class__.__mro__ }}").render([])


def test_load_template_from_file_or_text(tmp_path: Path) -> None:
    path = tmp_path / "t.jinja"
    path.write_text("{{ messages[0]['content'] }}")
    assert load_template(str(path)) == "{{ messages[0]['content'] }}"
    assert load_template("Q: {{ x }}") == "Q: {{ x }}"
    assert load_template(None) is None and load_template(" ") is None
    with pytest.raises(TemplateError, match="does not exist"):
        load_template(str(tmp_path / "missing.jinja"))
