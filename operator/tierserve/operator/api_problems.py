"""API errors the reconcilers cannot retry away, as the condition a user can act on.

Transient errors back off and conflicts re-read (the reconcilers do that); everything
else (403, 401 after a credentials re-read, 404 of a kind that is not served, 400/422)
would fail the same way on every retry, so it becomes ``Ready=False`` with one of these
reasons and a Warning Event, and the key is not retried until something changes (a new
generation, a child event, the periodic resync).

:func:`error_reason` names any reconcile failure for the operator's metrics
(``tierserve_operator_reconcile_errors_total{reason}``): the problem's reason where there
is one, else the typed error's class, so the label set stays small and fixed.
"""

from __future__ import annotations

from tierserve.core.kube.errors import ApiError, Forbidden, Invalid, NotFound, Unauthorized
from tierserve.operator.status import Problem


def problem_of(exc: ApiError) -> Problem | None:
    """The condition for a permanent error; None when the object itself is gone (its
    DELETED event follows, nothing to report)."""
    message = exc.message
    if isinstance(exc, NotFound):
        if not exc.kind_missing:
            return None
        return Problem("KindNotServed", "the API server does not serve a kind this "
                       f"deployment needs (is its CRD installed?): {message}")
    if isinstance(exc, Forbidden):
        return Problem("Forbidden", f"the operator is not allowed to do this (RBAC): {message}")
    if isinstance(exc, Unauthorized):
        return Problem("Unauthorized", f"the API server rejected the operator's credentials: "
                       f"{message}")
    if isinstance(exc, Invalid):
        return Problem("Rejected", f"the API server rejected a request: {message}")
    return Problem("RequestFailed", f"the API server answered {exc.status}: {message}")


def error_reason(exc: BaseException) -> str:
    """A short, bounded name for why a reconcile failed (a metrics label)."""
    if isinstance(exc, ApiError):
        problem = problem_of(exc) if not exc.retryable else None
        return problem.reason if problem is not None else type(exc).__name__
    if isinstance(exc, TimeoutError):  # before OSError: asyncio's TimeoutError is one
        return "Timeout"
    if isinstance(exc, OSError):
        return "NetworkError"
    return "UnexpectedError"
