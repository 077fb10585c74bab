"""API server errors typed by what they mean for retrying.

Callers decide by type, not by status code:

* :class:`Transient` (429, 5xx): the server is busy or away; back off and try again.
* :class:`Conflict` (409): the object changed since it was read (or already exists);
  re-read and try again at once, never back off on it.
* :class:`NotFound` (404): ``kind_missing`` when the resource type itself is not served
  (a CRD that is not installed, an API group the server lacks), else the object is gone.
* :class:`Forbidden` (403), :class:`Unauthorized` (401, after the credentials were
  re-read once), :class:`Invalid` (400/422): retrying the same request cannot help; say so
  (a condition, an Event, one log line) and wait for a change.
* :class:`Gone` (410): a watch's resourceVersion is too old; list again.

``ApiError(status, body)`` itself returns the typed subclass, so code that raises the
base class (fakes in tests included) is classified the same way.
"""

from __future__ import annotations

import json
from typing import Any


def _status(body: str) -> dict[str, Any]:
    """The ``Status`` object of an error body, or ``{}`` for a plain-text body."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


class ApiError(Exception):
    """A non-success answer from the API server.

    ``ApiError(status, body)`` builds the typed subclass for the status (so
    ``ApiError(409, ...)`` is a :class:`Conflict`); ``retry_meaning`` is one of
    ``transient``, ``reread``, ``relist`` or ``permanent``.
    """

    retry_meaning = "permanent"

    def __new__(cls, status: int, body: str) -> ApiError:
        if cls is ApiError:
            cls = _BY_STATUS.get(status) or (Transient if status >= 500 else ApiError)
        return super().__new__(cls, status, body)

    def __init__(self, status: int, body: str) -> None:
        status_obj = _status(body)
        message = str(status_obj.get("message") or body)
        super().__init__(f"{status}: {message[:500]}")
        self.status = status
        self.body = body
        self.reason = str(status_obj.get("reason") or "")
        self.details: dict[str, Any] = status_obj.get("details") or {}

    @property
    def message(self) -> str:
        return str(_status(self.body).get("message") or self.body)[:1024]

    @property
    def retryable(self) -> bool:
        """True when the same request may succeed later (after a re-read for a conflict)."""
        return self.retry_meaning in ("transient", "reread")


class Transient(ApiError):
    retry_meaning = "transient"


class Conflict(ApiError):
    retry_meaning = "reread"


class NotFound(ApiError):
    @property
    def kind_missing(self) -> bool:
        """The resource type is not served: a missing object's Status names it."""
        return not self.details.get("name")


class Forbidden(ApiError):
    pass


class Unauthorized(ApiError):
    pass


class Invalid(ApiError):
    pass


class Gone(ApiError):
    retry_meaning = "relist"


_BY_STATUS: dict[int, type[ApiError]] = {
    400: Invalid, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict,
    410: Gone, 422: Invalid, 429: Transient,
}

