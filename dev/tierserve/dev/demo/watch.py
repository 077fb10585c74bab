"""What the demo reads back from the API server: readiness, replica counts once a second
(:class:`~tierserve.dev.live_timeline.ReplicaPoint` per deployment) and the ``Scaled``
Events, all through ``kubectl`` with the admin kubeconfig."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tierserve.dev.cluster.harness import ClusterHandle
from tierserve.dev.live_timeline import ReplicaPoint

KINDS = ("llmdeployments", "llmroutes")


def items(cluster: ClusterHandle, kind: str) -> list[dict[str, Any]]:
    """Every object of ``kind`` in every namespace."""
    found: list[dict[str, Any]] = cluster.get_json(kind, "-A")["items"]
    return found


def ready(obj: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def why_not_ready(obj: dict[str, Any]) -> str:
    """``kind/name: reason: message`` of the Ready condition (or that there is none)."""
    name = f"{obj['kind'].lower()}/{obj['metadata']['name']}"
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return f"{name}: {c.get('reason', '')}: {c.get('message', '')}".rstrip(": ")
    return f"{name}: no Ready condition yet"


def not_ready(cluster: ClusterHandle) -> list[str]:
    """Why each LLMDeployment and LLMRoute that is not Ready is not ([] when all are)."""
    return [why_not_ready(o) for kind in KINDS for o in items(cluster, kind) if not ready(o)]


def scaled_events(cluster: ClusterHandle) -> list[dict[str, Any]]:
    """The autoscaler's ``Scaled`` Events in every namespace, oldest first."""
    events = [e for e in items(cluster, "events") if e.get("reason") == "Scaled"]
    return sorted(events, key=lambda e: (e.get("eventTime") or e.get("lastTimestamp") or "",
                                         e["metadata"].get("creationTimestamp") or ""))


@dataclass
class Watcher:
    """Polls every LLMDeployment once a second in a thread; keeps each one's points."""

    cluster: ClusterHandle
    interval_s: float = 1.0
    points: dict[str, list[ReplicaPoint]] = field(default_factory=dict)
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Watcher:
        self._thread = threading.Thread(target=self._run, name="demo-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            # a failed poll (the API server busy for a second) is a missing point, not an end
            with contextlib.suppress(Exception):
                self.poll()
            self._stop.wait(self.interval_s)

    def poll(self) -> None:
        now = time.monotonic()
        for obj in items(self.cluster, "llmdeployments"):
            name, st = obj["metadata"]["name"], obj.get("status") or {}
            self.latest[name] = obj
            self.points.setdefault(name, []).append(ReplicaPoint(
                now, int(obj["spec"].get("replicas", 0)), int(st.get("readyReplicas") or 0),
                dict(st.get("slo") or {})))

    def replicas(self) -> dict[str, int]:
        """Each deployment's desired replicas (spec) as last polled."""
        return {name: pts[-1].spec for name, pts in self.points.items() if pts}

    def first(self, name: str, pred: Callable[[ReplicaPoint], bool],
              after: float = 0.0) -> ReplicaPoint | None:
        """The first point of ``name`` at or after ``after`` that satisfies ``pred``."""
        return next((p for p in self.points.get(name, []) if p.t >= after and pred(p)), None)

    def dump(self) -> dict[str, list[dict[str, Any]]]:
        """The points as JSON-ready lists (``t`` in monotonic seconds)."""
        return {name: [{"t": p.t, "spec": p.spec, "ready": p.ready, "slo": p.slo} for p in pts]
                for name, pts in self.points.items()}


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=1, default=str)
