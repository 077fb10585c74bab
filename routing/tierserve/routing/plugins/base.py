"""The plugin protocols and the two small value types they share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar


class EndpointView(Protocol):
    """What plugins may read about a replica (the router's ``EndpointState`` fits)."""

    @property
    def url(self) -> str: ...
    @property
    def outstanding(self) -> int: ...
    @property
    def waiting(self) -> float: ...
    @property
    def running(self) -> float: ...
    @property
    def ejected_until(self) -> float: ...
    @property
    def ready(self) -> bool: ...


E = TypeVar("E", bound=EndpointView)


@dataclass(slots=True)
class RequestInfo:
    """Per-request facts the balancing plugins may use (never the prompt)."""

    now: float
    affinity_key: str | None = None
    exclude: set[str] = field(default_factory=set)


class EndpointFilter(Protocol):
    async def filter(self, info: RequestInfo, endpoints: Sequence[E]) -> Sequence[E]: ...


class Scorer(Protocol):
    async def score(self, info: RequestInfo, endpoints: Sequence[EndpointView]) -> list[float]:
        """One score in [0, 1] per endpoint; higher is better."""
        ...


class Picker(Protocol):
    async def pick(self, info: RequestInfo, endpoints: Sequence[E],
                   scores: Sequence[float]) -> E: ...


class TierClassifier(Protocol):
    async def score(self, text: str, turns: int) -> float:
        """Difficulty in [0, 1]: at or above the tier threshold goes to the slow tier."""
        ...
