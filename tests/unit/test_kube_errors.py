"""API errors typed by their retry meaning, from the API server's Status bodies."""

from __future__ import annotations

import json

import pytest

from tierserve.core.kube.errors import (
    ApiError,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    NotFound,
    Transient,
    Unauthorized,
)


def status(code: int, reason: str, message: str, **details: str) -> str:
    return json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                       "code": code, "reason": reason, "message": message,
                       "details": details})


@pytest.mark.parametrize(("code", "cls", "meaning"), [
    (500, Transient, "transient"), (503, Transient, "transient"), (429, Transient, "transient"),
    (409, Conflict, "reread"), (410, Gone, "relist"), (403, Forbidden, "permanent"),
    (401, Unauthorized, "permanent"), (422, Invalid, "permanent"), (400, Invalid, "permanent"),
    (404, NotFound, "permanent"), (418, ApiError, "permanent")])
def test_status_code_gives_the_type_and_retry_meaning(code: int, cls: type[ApiError],
                                                      meaning: str) -> None:
    exc = ApiError(code, "")
    assert type(exc) is cls and exc.retry_meaning == meaning and exc.status == code
    assert exc.retryable is (meaning in ("transient", "reread"))


def test_missing_object_and_missing_kind_are_told_apart() -> None:
    gone = ApiError(404, status(404, "NotFound", 'llmdeployments.tierserve.io "x" not found',
                                name="x", group="tierserve.io", kind="llmdeployments"))
    assert isinstance(gone, NotFound) and not gone.kind_missing
    no_crd = ApiError(404, status(404, "NotFound",
                                  "the server could not find the requested resource"))
    assert isinstance(no_crd, NotFound) and no_crd.kind_missing
    no_group = ApiError(404, "404 page not found")  # unknown API group: plain text
    assert isinstance(no_group, NotFound) and no_group.kind_missing


def test_message_comes_from_the_status_body() -> None:
    exc = ApiError(422, status(422, "Invalid", "spec.replicas: Invalid value: -1"))
    assert exc.reason == "Invalid" and exc.message == "spec.replicas: Invalid value: -1"
    assert "spec.replicas" in str(exc) and "Status" not in str(exc)
