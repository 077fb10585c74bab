"""The watch cache with our writes laid over it, and the operator store built on it:
resourceVersion is only ever compared for equality (never as a number)."""

from __future__ import annotations

from typing import Any

from tierserve.core.kube.cache import Layered
from tierserve.core.kube.reflector import Change, ChangeType
from tierserve.operator.store import Store


def obj(version: str, replicas: int = 1, name: str = "a") -> dict[str, Any]:
    return {"kind": "Deployment", "metadata": {"name": name, "namespace": "ns",
                                               "resourceVersion": version},
            "spec": {"replicas": replicas}}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_late_watch_event_does_not_roll_back_our_write() -> None:
    cache: Layered[str] = Layered(ttl_s=10, clock=Clock())
    cache.observe("a", obj("x7", 1))
    cache.record("a", obj("x9", 2))  # our write's answer
    cache.observe("a", obj("x8", 1))  # an older event still in flight
    assert cache["a"]["spec"]["replicas"] == 2
    cache.observe("a", obj("x9", 2))  # the watch caught up (equal strings)
    cache.observe("a", obj("y1", 3))  # then someone else's change is shown at once
    assert cache["a"]["spec"]["replicas"] == 3


def test_versions_are_opaque_strings() -> None:
    """"10" < "9" as strings and "a" is no number: only equality matters."""
    cache: Layered[str] = Layered(clock=Clock())
    cache.observe("a", obj("9"))
    cache.record("a", obj("10", 2))
    cache.observe("a", obj("10", 2))
    cache.observe("a", obj("not-a-number", 5))
    assert cache["a"]["spec"]["replicas"] == 5


def test_an_overlay_the_watch_never_shows_expires() -> None:
    clock = Clock()
    cache: Layered[str] = Layered(ttl_s=10, clock=clock)
    cache.observe("a", obj("1", 1))
    cache.record("a", obj("2", 2))
    cache.observe("a", obj("3", 3))  # newer, but we cannot know: overlay stays a while
    assert cache["a"]["spec"]["replicas"] == 2
    clock.now = 10.0
    assert cache["a"]["spec"]["replicas"] == 3  # the watch's view, never dropped


def test_recording_the_version_already_cached_adds_no_overlay() -> None:
    clock = Clock()
    cache: Layered[str] = Layered(ttl_s=10, clock=clock)
    cache.observe("a", obj("1", 1))
    cache.record("a", obj("1", 1))  # a write that changed nothing
    cache.observe("a", obj("2", 4))
    assert cache["a"]["spec"]["replicas"] == 4


def test_delete_removes_both_layers_and_mapping_views_agree() -> None:
    cache: Layered[str] = Layered(clock=Clock())
    cache.record("new", obj("5", name="new"))  # created by us, not watched yet
    cache.observe("a", obj("1"))
    assert sorted(cache) == ["a", "new"] and len(cache) == 2 and "new" in cache
    cache.remove("new")
    assert list(cache) == ["a"] and "new" not in cache and cache.get("new") is None


def change(kind: ChangeType, body: dict[str, Any]) -> Change:
    meta = body["metadata"]
    return Change(kind, (meta["namespace"], meta["name"]), body)


def test_store_keeps_our_status_write_over_a_late_event_and_indexes_children() -> None:
    store = Store(clock=Clock())
    dep = {"metadata": {"name": "chat", "namespace": "ns", "resourceVersion": "r1"}}
    store.on_deployment(change(ChangeType.ADDED, dep))
    written = {**dep, "metadata": {**dep["metadata"], "resourceVersion": "r3"},
               "status": {"observedGeneration": 1}}
    store.put_deployment(written, deleted=False)
    late = {**dep, "metadata": {**dep["metadata"], "resourceVersion": "r2"}}
    store.on_deployment(change(ChangeType.MODIFIED, late))
    assert store.deployments[("ns", "chat")]["status"] == {"observedGeneration": 1}
    child = obj("c1", name="chat")
    child["metadata"]["labels"] = {"tierserve.io/deployment": "chat"}
    assert store.on_child(change(ChangeType.ADDED, child)) == ("ns", "chat")
    assert store.child(("ns", "chat"), "Deployment", "chat") is child
    store.on_child(change(ChangeType.DELETED, child))
    assert store.child(("ns", "chat"), "Deployment", "chat") is None
    store.on_deployment(change(ChangeType.DELETED, late))
    assert ("ns", "chat") not in store.deployments
