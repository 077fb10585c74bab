"""OpenAI-style error responses.

Every failure the router produces, from bad JSON to a dead backend, is answered with the
body shape the OpenAI API uses (``{"error": {"message", "type", "param", "code"}}``) plus
the request id, so clients' existing error handling works and support can find the
request. Messages never echo request content: prompts and keys stay out of errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson


@dataclass
class RouterError(Exception):
    """An error the router answers itself; ``status`` is the HTTP status."""

    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    retry_after_s: float | None = None
    elsewhere: bool = False  # another deployment may answer (no replica, queue full, 5xx)

    def body(self, request_id: str) -> bytes:
        return error_body(self.message, self.type, self.code, self.param, request_id)


def error_body(message: str, type_: str, code: str | None, param: str | None,
               request_id: str) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type_, "param": param,
                                   "code": code, "request_id": request_id}})


def bad_request(message: str, param: str | None = None) -> RouterError:
    return RouterError(400, message, "invalid_request_error", "invalid_request", param)


def unknown_model(model: str) -> RouterError:
    # The model name is the client's own routing key, not prompt content; cap its length
    # so a huge value cannot bloat the error.
    shown = model if len(model) <= 128 else model[:128] + "..."
    return RouterError(404, f"The model '{shown}' does not exist", "invalid_request_error",
                       "model_not_found", "model")


def bad_gateway(message: str = "upstream connection failed") -> RouterError:
    return RouterError(502, message, "api_error", "bad_gateway", elsewhere=True)


def unavailable(message: str, retry_after_s: float | None = 1.0) -> RouterError:
    return RouterError(503, message, "api_error", "service_unavailable",
                       retry_after_s=retry_after_s, elsewhere=True)


def gateway_timeout(message: str = "upstream timed out") -> RouterError:
    return RouterError(504, message, "api_error", "gateway_timeout", elsewhere=True)


def too_many(message: str, retry_after_s: float) -> RouterError:
    return RouterError(429, message, "rate_limit_error", "rate_limit_exceeded",
                       retry_after_s=retry_after_s)


def queue_full(message: str, retry_after_s: float) -> RouterError:
    """A deployment's own queue is full: 429, but another deployment may have room."""
    err = too_many(message, retry_after_s)
    err.elsewhere = True
    return err


def looks_like_openai_error(body: bytes) -> bool:
    """True when an engine's error body already has OpenAI's shape (pass it through)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return (isinstance(parsed, dict) and isinstance(parsed.get("error"), dict)
            and isinstance(parsed["error"].get("message"), str))
