"""Malformed manifests are rejected by the real API server with the expected message,
and nothing is created. Same table as the render unit test (tests/data). Refused
changes of a stored object (CEL transition rules) come from ``bad_changes.yaml``."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from tests.data.badcases import BadChange, load_bad_cases, load_bad_transitions

from tierserve.dev.cluster.harness import ClusterHandle

pytestmark = pytest.mark.cluster
CASES = load_bad_cases()
TRANSITIONS = load_bad_transitions()


def test_table_has_at_least_twenty_cases() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize(("name", "doc", "expect"), CASES, ids=[c[0] for c in CASES])
def test_apply_rejects_with_message_and_creates_nothing(
        cluster: ClusterHandle, installed: Any, namespace: str, name: str,
        doc: dict[str, Any], expect: str) -> None:
    res = cluster.kubectl.run("apply", "-n", namespace, "-f", "-",
                              stdin=yaml.safe_dump(doc), check=False)
    assert res.returncode != 0, f"{name}: accepted by the API server"
    assert expect in res.stderr, f"{name}: {res.stderr}"
    listing = cluster.kubectl("get", "llmd,llmr", "-n", namespace, "-o", "name")
    assert listing.strip() == ""


@pytest.mark.parametrize("case", TRANSITIONS, ids=[c.name for c in TRANSITIONS])
def test_apply_refuses_a_change_of_an_immutable_field(
        cluster: ClusterHandle, installed: Any, namespace: str, case: BadChange) -> None:
    """A CEL transition rule compiles (the CRD was accepted) and refuses the change with
    its message, leaving the stored object as it was."""
    cluster.apply(case.before, namespace)
    res = cluster.kubectl.run("apply", "-n", namespace, "-f", "-",
                              stdin=yaml.safe_dump(case.after), check=False)
    assert res.returncode != 0, f"{case.name}: change accepted by the API server"
    assert case.expect in " ".join(res.stderr.split()), f"{case.name}: {res.stderr}"
    kind, name = case.before["kind"], case.before["metadata"]["name"]
    stored = cluster.get_json(kind.lower(), name, "-n", namespace)["spec"]
    assert stored == {**stored, **case.before["spec"]}


def test_a_route_can_still_reweight_and_swap_variants(
        cluster: ClusterHandle, installed: Any, namespace: str) -> None:
    """The transition rule binds a variant's deployment only: weights change, and a
    variant under a new name may point at another deployment."""
    route = next(c.before for c in TRANSITIONS if c.before["kind"] == "LLMRoute")
    cluster.apply(route, namespace)
    changed = {**route, "spec": {**route["spec"], "variants": [
        {"name": "a", "deployment": "dep-a", "weight": 90},
        {"name": "c", "deployment": "dep-c", "weight": 10}]}}
    cluster.apply(changed, namespace)
    stored = cluster.get_json("llmroute", "bad", "-n", namespace)["spec"]["variants"]
    assert [(v["name"], v["deployment"], v["weight"]) for v in stored] == [
        ("a", "dep-a", 90), ("c", "dep-c", 10)]
