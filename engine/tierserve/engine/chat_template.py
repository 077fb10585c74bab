"""Chat templates: OpenAI messages to one prompt string, as the model was trained to read.

A template is Jinja, in the format of Hugging Face's ``chat_template`` (and of a GGUF
file's ``tokenizer.chat_template`` metadata): it sees ``messages``, ``bos_token``,
``eos_token`` and ``add_generation_prompt``, and may call ``raise_exception(msg)``.
It renders in Jinja's sandbox, with the same whitespace settings as Transformers.
A model with no template of its own (a base model such as Gemma-3-270M) needs one given
(``--chat-template``, like vLLM's), often a completion-style prompt with a worked
example, e.g. ``Question: … Answer:``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment


class TemplateError(ValueError):
    """The template does not parse, or it refused the messages."""


def load_template(value: str | None) -> str | None:
    """``value`` as a template: the text of the file it names when there is one, else
    ``value`` itself (so options and parameters take a path or the template)."""
    if value is None or not value.strip():
        return None
    if "\n" not in value and "{" not in value and len(value) < 4096:
        path = Path(value).expanduser()
        if path.is_file():
            return path.read_text()
        raise TemplateError(f"chat template file {value!r} does not exist")
    return value


def _raise(message: str) -> NoReturn:
    raise TemplateError(message)


class ChatTemplate:
    """A compiled template for one model's special tokens."""

    def __init__(self, source: str, bos_token: str = "", eos_token: str = "") -> None:
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                            extensions=[jinja2.ext.loopcontrols])
        env.globals["raise_exception"] = _raise
        try:
            self._template = env.from_string(source)
        except jinja2.TemplateError as exc:
            raise TemplateError(f"the chat template does not parse: {exc}") from None
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token

    def render(self, messages: Sequence[Mapping[str, Any]],
               add_generation_prompt: bool = True) -> str:
        try:
            return self._template.render(
                messages=[_plain(m) for m in messages], bos_token=self.bos_token,
                eos_token=self.eos_token, add_generation_prompt=add_generation_prompt)
        except TemplateError:
            raise
        except jinja2.TemplateError as exc:
            raise TemplateError(f"the chat template failed: {exc}") from None


def _plain(message: Mapping[str, Any]) -> dict[str, Any]:
    """A message with list content (OpenAI's parts) joined to its text parts."""
    out = dict(message)
    content = out.get("content")
    if isinstance(content, list):
        out["content"] = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    elif content is None:
        out["content"] = ""
    return out
