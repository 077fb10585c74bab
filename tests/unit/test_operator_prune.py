"""Pruning is a pure function of the desired children and the cached ones: only children
the operator provably owns (its labels and a controller reference to this object's uid)
and no longer wants are deleted."""

from __future__ import annotations

import copy
from typing import Any

from tierserve.core.builders import BuildContext, BuildSettings, build_children
from tierserve.core.builders.context import from_object
from tierserve.operator.prune import child_key, obsolete, owned_by, prune_message

UID = "u-1"


def ctx(runtime: str) -> BuildContext:
    doc = {"apiVersion": "tierserve.io/v1alpha1", "kind": "LLMDeployment",
           "metadata": {"name": "chat", "namespace": "team", "uid": UID},
           "spec": {"model": {"name": "chat", "uri": "hf://org/m", "parametersBillions": 3},
                    "runtime": runtime, "engine": "simulated",
                    "accelerator": {"type": "L4", "gpusPerReplica": 1},
                    "slo": {"ttftP95Ms": 2000, "tpotP95Ms": 80}}}
    return from_object(doc, BuildSettings())


def live(children: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {child_key(c): copy.deepcopy(c) for c in children}


def test_switching_runtime_makes_the_old_runtimes_children_obsolete() -> None:
    triton, ray = build_children(ctx("triton")), build_children(ctx("rayServe"))
    observed = live(triton + ray)
    gone = obsolete(ray, observed, "chat", UID)
    assert [child_key(c) for c in gone] == [("ConfigMap", "chat-model-repo"),
                                            ("Deployment", "chat"), ("Service", "chat")]
    back = obsolete(triton, observed, "chat", UID)
    assert [child_key(c) for c in back] == [("RayService", "chat")]


def test_nothing_is_obsolete_when_observed_matches_desired() -> None:
    triton = build_children(ctx("triton"))
    assert obsolete(triton, live(triton), "chat", UID) == []


def test_only_children_the_operator_owns_are_pruned() -> None:
    desired = build_children(ctx("rayServe"))
    (template,) = [c for c in build_children(ctx("triton")) if c["kind"] == "Service"]

    def variant(name: str, **meta: Any) -> dict[str, Any]:
        child = copy.deepcopy(template)
        child["metadata"]["name"] = name
        child["metadata"].update(meta)
        return child

    kuberay_ref = [{"apiVersion": "ray.io/v1", "kind": "RayCluster", "name": "chat-x",
                    "uid": "rc-1", "controller": True}]
    ours = copy.deepcopy(template["metadata"]["ownerReferences"])
    observed = live([
        variant("labelled-by-hand", ownerReferences=[]),
        variant("chat-head-svc", ownerReferences=kuberay_ref),  # KubeRay's, our labels
        variant("older-object", ownerReferences=[{**ours[0], "uid": "u-0"}]),
        variant("not-controller", ownerReferences=[{**ours[0], "controller": False}]),
        variant("other-labels", labels={"app.kubernetes.io/managed-by": "helm",
                                        "tierserve.io/deployment": "chat"}),
        variant("other-deployment", labels={**template["metadata"]["labels"],
                                            "tierserve.io/deployment": "other"}),
        variant("being-deleted", deletionTimestamp="2026-01-01T00:00:00Z"),
        variant("stale"),
    ])
    assert [child_key(c) for c in obsolete(desired, observed, "chat", UID)] == [
        ("Service", "stale")]


def test_owned_by_needs_labels_and_the_controller_reference() -> None:
    (child,) = [c for c in build_children(ctx("triton")) if c["kind"] == "Deployment"]
    assert owned_by(child, "chat", UID)
    assert not owned_by(child, "chat", "u-2")
    assert not owned_by(child, "other", UID)
    foreign = copy.deepcopy(child)
    foreign["metadata"]["ownerReferences"][0]["apiVersion"] = "example.com/v1"
    assert not owned_by(foreign, "chat", UID)


def test_a_child_without_a_kind_is_never_pruned() -> None:
    (child,) = [c for c in build_children(ctx("triton")) if c["kind"] == "ConfigMap"]
    assert obsolete([], {("", child["metadata"]["name"]): child}, "chat", UID) == []


def test_prune_message_names_the_child_and_the_runtime() -> None:
    (child,) = build_children(ctx("rayServe"))
    assert prune_message(child, "triton") == (
        "deleted RayService chat: no longer part of the desired state (runtime triton)")
