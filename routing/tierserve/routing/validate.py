"""Checking the few request fields the router uses; the engine validates the rest.

Bodies are parsed once with orjson (which rejects nesting deeper than 1024 levels with
an error instead of exhausting the stack) and never re-validated field by field: the
router checks types of what it reads and forwards the original bytes.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from tierserve.routing.errors import bad_request

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_INTS = ("max_tokens", "max_completion_tokens", "n")
_NUMBERS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")


def request_id(header: str | None, fresh: str) -> str:
    """The client's id when it is safe to echo (no injection into headers or logs)."""
    return header if header is not None and _REQUEST_ID.match(header) else fresh


def parse_body(raw: bytes, chat: bool) -> dict[str, Any]:
    if not raw:
        raise bad_request("request body is empty; expected a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad_request("request body is not valid JSON (or is nested too deeply)") from None
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise bad_request("'model' is required and must be a non-empty string", "model")
    if "stream" in body and not isinstance(body["stream"], bool) and body["stream"] is not None:
        raise bad_request("'stream' must be a boolean", "stream")
    _check_numbers(body)
    if chat:
        _check_messages(body.get("messages"))
    else:
        _check_prompt(body.get("prompt"))
    return body


def _check_numbers(body: dict[str, Any]) -> None:
    for name in _INTS:
        v = body.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise bad_request(f"'{name}' must be a non-negative integer", name)
    for name in _NUMBERS:
        v = body.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise bad_request(f"'{name}' must be a number", name)


def _check_messages(messages: object) -> None:
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty array", "messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise bad_request(f"'messages[{i}]' must be an object with a string 'role'",
                              f"messages[{i}]")
        content = m.get("content")
        if content is not None and not isinstance(content, str | list):
            raise bad_request(f"'messages[{i}].content' must be a string or an array",
                              f"messages[{i}].content")


def _check_prompt(prompt: object) -> None:
    if isinstance(prompt, str):
        return
    if isinstance(prompt, list) and prompt and all(
            isinstance(p, str) or (isinstance(p, int) and not isinstance(p, bool))
            or (isinstance(p, list) and all(isinstance(t, int) for t in p)) for p in prompt):
        return
    raise bad_request("'prompt' must be a string, an array of strings or token arrays",
                      "prompt")
