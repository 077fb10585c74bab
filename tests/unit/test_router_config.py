"""Router config: the example parses, errors name the bad value."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tierserve.core.routerconfig import ConfigError, load_config, parse_config

EXAMPLE = Path(__file__).parents[2] / "examples" / "router-config.yaml"


def test_example_config_parses() -> None:
    cfg = load_config(EXAMPLE)
    assert {r.model for r in cfg.routes} == {"chat", "llama-triton"}
    tiered = cfg.routes[0].variants[0].tiers
    assert tiered is not None and tiered.target_slow_share == 0.3


def _base(**route: object) -> dict[str, Any]:
    return {"deployments": [{"name": "d", "endpoints": [{"url": "http://127.0.0.1:1"}]}],
            "routes": [{"model": "m", "variants": [{"name": "v", "deployment": "d"}], **route}]}


@pytest.mark.parametrize(("mutate", "shown"), [
    (lambda c: c["routes"][0]["variants"][0].update(deployment="nope"), "nope"),
    (lambda c: c["deployments"][0]["endpoints"][0].update(url="ftp://x"), "ftp://x"),
    (lambda c: c["routes"][0]["variants"][0].update(weight=-3), "-3"),
    (lambda c: c["routes"][0].update(timeout_s="soon"), "soon"),
    (lambda c: c["deployments"][0].update(gpu_type="Z80"), "Z80"),
    (lambda c: c["deployments"][0].update(bogus_key=1), "bogus_key"),
    (lambda c: c["routes"][0]["variants"].append({"name": "v", "deployment": "d"}), "'v'"),
])
def test_errors_show_the_bad_value(mutate: Callable[[dict[str, Any]], object],
                                   shown: str) -> None:
    cfg = _base()
    mutate(cfg)
    with pytest.raises(ConfigError) as info:
        parse_config(cfg, "test.yaml")
    assert shown in str(info.value)
    assert "test.yaml" in str(info.value)


def test_variant_needs_exactly_one_target() -> None:
    cfg = _base()
    cfg["routes"][0]["variants"][0]["tiers"] = {"fast": "d", "slow": "d",
                                                 "slow_options": {"max_tokens": 64}}
    with pytest.raises(ConfigError, match="exactly one of deployment or tiers"):
        parse_config(cfg)


def test_secret_keys_do_not_print() -> None:
    cfg = parse_config({"auth": {"keys": [{"name": "team", "key": "sk-sentinel-123"}]}})
    assert "sk-sentinel-123" not in repr(cfg)
    assert "sk-sentinel-123" not in cfg.model_dump_json()


def test_auth_errors_hide_the_value() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"auth": {"keys": [{"name": "x", "key": 1234567}]}})
    assert "1234567" not in str(info.value) and "auth.keys.0.key" in str(info.value)


def test_top_level_errors_do_not_dump_the_config() -> None:
    data = {"auth": {"keys": [{"name": "x", "key": "sk-sentinel-top"}]},
            "routes": [{"model": "m", "variants": [{"name": "v", "deployment": "nope"}]}]}
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert "sk-sentinel-top" not in str(info.value) and "nope" in str(info.value)
