"""Every file in ``examples/`` is exercised for real: a file of Tierserve objects is
applied to the real API server by ``e2e/test_operator.py``'s examples fixture (which
takes them all, through ``e2e.examples.custom_resource_files``), and the only other kind
of file, the router's configuration, is one the router loads (and
``tests/integration/test_router_example_config.py`` runs ``tierserve router`` on
``examples/router-config.yaml``). A file that is neither
(a typo in ``apiVersion``, a CR mixed with something else) fails here with its name."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e import examples

from tierserve.core.routerconfig import ConfigError, load_config

FILES = sorted(examples.EXAMPLES.glob("*.yaml"))


def _is_router_config(path: Path) -> bool:
    try:
        load_config(path)
    except (ConfigError, ValueError, TypeError, KeyError):
        return False
    return True


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_example_is_applied_or_loaded(path: Path) -> None:
    assert examples.is_custom_resources(path) or _is_router_config(path), (
        f"examples/{path.name} is neither Tierserve objects (applied by e2e/test_operator.py) "
        "nor a router configuration")


def test_the_e2e_fixture_applies_every_custom_resource_example() -> None:
    from e2e import test_operator

    crs = [p for p in FILES if examples.is_custom_resources(p)]
    assert sorted(test_operator.EXAMPLES) == crs
    assert {"ray-smollm2-cpu.yaml", "triton-gemma3-cpu.yaml",
            "tiered-route-cpu.yaml"} <= {p.name for p in crs}


def test_deployments_come_before_the_routes_that_name_them() -> None:
    kinds = [{d["kind"] for d in examples.documents(p)}
             for p in examples.custom_resource_files()]
    with_deployments = [i for i, k in enumerate(kinds) if "LLMDeployment" in k]
    only_routes = [i for i, k in enumerate(kinds) if k == {"LLMRoute"}]
    assert with_deployments and only_routes and max(with_deployments) < min(only_routes)


def test_a_file_mixing_kinds_or_with_a_wrong_group_is_neither(tmp_path: Path) -> None:
    mixed = tmp_path / "mixed.yaml"
    mixed.write_text("apiVersion: tierserve.io/v1alpha1\nkind: LLMRoute\n---\n"
                     "apiVersion: v1\nkind: ConfigMap\n")
    typo = tmp_path / "typo.yaml"
    typo.write_text("apiVersion: tierserv.io/v1alpha1\nkind: LLMDeployment\n")
    for path in (mixed, typo):
        assert not examples.is_custom_resources(path)
        assert not _is_router_config(path)
    assert examples.custom_resource_files(tmp_path) == []
