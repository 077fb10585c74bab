"""The images, node labels and prices the builders use (``BuildSettings``) as chart values
(``engines``): the schema knows exactly BuildSettings' keys and the catalog's types, the
defaults are the built-in ones, and a value set in the chart reaches the children the
operator builds, through the ConfigMap file that ``--build-settings`` reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit import chart_support as cs
from tierserve.core.builders import BuildSettings, build_children
from tierserve.core.builders.common import Images
from tierserve.core.builders.context import from_object
from tierserve.core.catalog import ACCELERATOR_TYPES

EXAMPLE = cs.CHART.parents[1] / "examples" / "triton-llama-8b-l4.yaml"
helm = pytest.fixture(scope="module")(cs.helm_binary)


def _file(docs: list[dict[str, Any]]) -> str:
    text: str = cs.find(docs, "ConfigMap", "tierserve-build-settings")["data"][
        "build-settings.json"]
    return text


def _schema() -> dict[str, Any]:
    schema = json.loads((cs.CHART / "values.schema.json").read_text())
    engines: dict[str, Any] = schema["properties"]["engines"]
    return engines


def test_schema_has_exactly_the_settings_keys_and_catalog_types() -> None:
    engines = _schema()
    fields = BuildSettings.model_fields
    assert set(engines["properties"]) == {f.alias for f in fields.values()}
    assert set(engines["properties"]["images"]["properties"]) == {
        f.alias for f in Images.model_fields.values()}
    for key in ("nodeLabelOverrides", "gpuPrices"):
        assert list(engines["properties"][key]["properties"]) == list(ACCELERATOR_TYPES)


def test_default_values_are_the_built_in_settings(helm: str) -> None:
    docs = cs.render(helm)
    assert BuildSettings.from_yaml(_file(docs)) == BuildSettings()
    values = yaml.safe_load((cs.CHART / "values.yaml").read_text())
    image = f"{values['image']['repository']}:{values['image']['tag']}"
    assert Images().simulated == image  # "" in the values means the chart's image


def test_the_operator_reads_the_file_it_mounts(helm: str) -> None:
    docs = cs.render(helm)
    pod = cs.pod_spec(docs, "operator")
    [container] = pod["containers"]
    [arg] = [a for a in container["args"] if a.startswith("--build-settings=")]
    path = Path(arg.split("=", 1)[1])
    [mount] = container["volumeMounts"]
    assert Path(mount["mountPath"]) / path.name == path and mount["readOnly"]
    [volume] = pod["volumes"]
    assert volume == {"name": mount["name"],
                      "configMap": {"name": "tierserve-build-settings"}}
    before = cs.find(docs, "Deployment", "tierserve-operator")["spec"]["template"]
    after = cs.find(cs.render(helm, "--set", "engines.gpuToleration=false"), "Deployment",
                    "tierserve-operator")["spec"]["template"]
    key = "checksum/build-settings"  # a change rolls the operator, which reads it at start
    assert before["metadata"]["annotations"][key] != after["metadata"]["annotations"][key]


def test_values_reach_the_children(helm: str) -> None:
    docs = cs.render(helm, "--set", "engines.images.tritonVllm=mirror.local/triton:25.01",
                     "--set-json", 'engines.nodeLabelOverrides={"L4":{"pool":"l4-spot"}}',
                     "--set-json", 'engines.gpuPrices={"L4":0.405}',
                     "--set", "image.repository=mirror.local/tierserve")
    settings = BuildSettings.from_yaml(_file(docs))
    assert settings.images.simulated == "mirror.local/tierserve:0.1.0"
    obj = yaml.safe_load(EXAMPLE.read_text()) | {"metadata": {"name": "m", "uid": "u"}}
    children = build_children(from_object(obj, settings))
    dep = next(c for c in children if c["kind"] == "Deployment")
    pod = dep["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "mirror.local/triton:25.01"
    assert pod["nodeSelector"]["pool"] == "l4-spot"
    assert "nvidia.com/gpu.product" not in pod["nodeSelector"]  # replaced, not added to
    cost = from_object(obj, settings).plan.cost_per_million_tokens_usd
    catalog = from_object(obj, BuildSettings()).plan.cost_per_million_tokens_usd
    assert cost == pytest.approx(catalog / 2, rel=1e-3)  # half the catalog's $0.81


@pytest.mark.parametrize(("values", "where"), [
    ('engines.gpuPrices={"B200":3.5}',
     "at '/engines/gpuPrices': additional properties 'B200' not allowed"),
    ('engines.gpuPrices={"L4":0}', "/engines/gpuPrices/L4"),
    ('engines.images.rayVllm=""', "/engines/images/rayVllm"),
    ('engines.images.rayVersion="latest"', "/engines/images/rayVersion"),
    ('engines.nodeLabelOverrides={"L4":{}}', "/engines/nodeLabelOverrides/L4"),
    ('engines.images.tritonVlm="x"', "additional properties 'tritonVlm' not allowed"),
])
def test_schema_rejects(helm: str, values: str, where: str) -> None:
    assert where in cs.rejected(helm, "--set-json", values)


@pytest.mark.parametrize(("text", "message"), [
    ("gpuPrices: {B200: 3}", "unknown accelerator type(s) 'B200'; known: H200"),
    ("gpuPrices: {L4: -1}", "prices must be above 0, got {'L4': -1.0}"),
    ("nodeLabelOverrides: {TPU: {a: b}}", "unknown accelerator type(s) 'TPU'"),
    ("images: {rayVlm: x}", "rayVlm"),
    ("[1, 2]", "expected a mapping, got list"),
    ("a: [", "not YAML"),
])
def test_a_bad_settings_file_names_the_file_and_the_value(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=r"^/etc/x\.json: ") as err:
        BuildSettings.from_yaml(text, "/etc/x.json")
    assert message in str(err.value)


def test_price_falls_back_to_the_catalog() -> None:
    settings = BuildSettings(gpu_prices={"L4": 0.4})
    assert settings.price_per_hour_usd("L4") == 0.4
    assert settings.price_per_hour_usd("H200") == 10.6
