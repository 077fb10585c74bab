"""A cache of objects kept by a watch, with our own write responses laid over it.

``resourceVersion`` is opaque (the API conventions forbid comparing it as a number), so
"is this newer?" cannot be asked. Two facts make that unnecessary:

* a watch delivers one kind's events in order, so a cache fed *only* by the watch never
  goes back in time (the base layer below);
* our own write answers with the object at version ``X`` before the watch has caught up.
  That answer is laid over the base until the watch delivers version ``X`` itself (equal
  strings: caught up) or ``ttl_s`` passes (the watch never shows it, e.g. a write that
  changed nothing). A watch event of an older version still in flight therefore cannot
  roll the cached object back, and a reconcile in that window sees what it just wrote
  instead of writing it again.

Watch events are never dropped: they always update the base layer, which is what
readers see once the overlay is gone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

K = TypeVar("K")
Obj = dict[str, Any]
DEFAULT_TTL_S = 10.0


def version_of(obj: Mapping[str, Any]) -> str:
    """An object's ``resourceVersion``: an opaque string, only ever compared for equality."""
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class Layered(Mapping[K, Obj], Generic[K]):
    """``Mapping`` view: the overlay (our recent writes) where present, else the base."""

    def __init__(self, ttl_s: float = DEFAULT_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.base: dict[K, Obj] = {}
        self._overlay: dict[K, tuple[Obj, float]] = {}
        self._ttl, self._clock = ttl_s, clock

    # --- the watch (in order) ---

    def observe(self, key: K, obj: Obj) -> None:
        """ADDED/MODIFIED from the watch, or an item of a fresh list."""
        self.base[key] = obj
        layered = self._overlay.get(key)
        if layered is not None and version_of(layered[0]) == version_of(obj):
            del self._overlay[key]  # the watch caught up with our write

    def remove(self, key: K) -> None:
        """DELETED from the watch (or gone from a fresh list)."""
        self.base.pop(key, None)
        self._overlay.pop(key, None)

    # --- our own writes (and reads) ---

    def record(self, key: K, obj: Obj) -> None:
        """The API server's answer to our write (or a direct read) of ``key``."""
        current = self.base.get(key)
        if current is not None and version_of(current) == version_of(obj):
            self._overlay.pop(key, None)
            self.base[key] = obj
            return
        self._overlay[key] = (obj, self._clock() + self._ttl)

    # --- Mapping ---

    def _live_overlay(self, key: K) -> Obj | None:
        layered = self._overlay.get(key)
        if layered is None:
            return None
        if self._clock() >= layered[1]:
            del self._overlay[key]  # the watch never showed it: trust the watch
            return None
        return layered[0]

    def __getitem__(self, key: K) -> Obj:
        layered = self._live_overlay(key)
        return layered if layered is not None else self.base[key]

    def __contains__(self, key: object) -> bool:
        return key in self.base or (key in self._overlay
                                    and self._live_overlay(key) is not None)

    def __iter__(self) -> Iterator[K]:
        seen = list(self.base)
        extra = [k for k in list(self._overlay) if k not in self.base
                 and self._live_overlay(k) is not None]
        return iter(seen + extra)

    def __len__(self) -> int:
        return sum(1 for _ in self)
