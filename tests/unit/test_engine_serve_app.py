"""The Ray Serve import path used in RayService.serveConfigV2 resolves and builds."""

from __future__ import annotations

import importlib

import pytest

from tierserve.core.profiles import UnknownProfile

pytest.importorskip("ray.serve")

IMPORT_PATH = "tierserve.engine.serve_app:build_app"


def test_import_path_builds_an_application() -> None:
    from ray import serve
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary

    module, attr = IMPORT_PATH.split(":")
    builder = getattr(importlib.import_module(module), attr)
    args = {"profile": "llama-3.1-8b-h100", "served_name": "m", "num_replicas": 3}
    app = call_user_app_builder_with_args_if_necessary(builder, args)
    assert isinstance(app, serve.Application)


def test_unknown_profile_is_rejected_at_build_time() -> None:
    from tierserve.engine.serve_app import build_app

    with pytest.raises(UnknownProfile):
        build_app({"profile": "nope"})
