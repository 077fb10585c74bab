"""``--build-settings FILE`` on ``tierserve operator`` and ``tierserve render``: the file
the chart mounts, or one a user writes, changes what the children are built with; a bad
file is a clear error naming it and the value."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tierserve.cli.main import build_parser, main
from tierserve.core.builders import BuildSettings
from tierserve.operator.cli import _settings

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "triton-llama-8b-l4.yaml"
MIRROR = "mirror.local/tritonserver:25.01-vllm"


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "build-settings.yaml"
    path.write_text(text)
    return path


def test_render_builds_with_the_files_images_and_labels(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _file(tmp_path, f"images: {{tritonVllm: {MIRROR}}}\n"
                           "nodeLabelOverrides: {L4: {pool: l4}}\n")
    assert main(["render", "-f", str(EXAMPLE), "--build-settings", str(path)]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == MIRROR
    assert pod["nodeSelector"] == {"pool": "l4"}
    assert main(["render", "-f", str(EXAMPLE)]) == 0  # without it: the built-in image
    assert MIRROR not in capsys.readouterr().out


def test_render_refuses_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _file(tmp_path, "gpuPrices: {L4: -2}\n")
    assert main(["render", "-f", str(EXAMPLE), "--build-settings", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"error: {path}: " in err and "prices must be above 0, got {'L4': -2.0}" in err
    missing = tmp_path / "nope.yaml"
    assert main(["render", "-f", str(EXAMPLE), "--build-settings", str(missing)]) == 2
    assert f"--build-settings {missing}: No such file or directory" in capsys.readouterr().err


def test_operator_settings_carry_the_file(tmp_path: Path) -> None:
    path = _file(tmp_path, f'{{"images": {{"tritonVllm": "{MIRROR}"}}, '
                           '"gpuPrices": {"H100-SXM": 4.2}, "gpuToleration": false}\n')
    argv = ["operator", "--build-settings", str(path)]
    settings = _settings(build_parser(argv).parse_args(argv))
    assert settings.build == BuildSettings.model_validate(
        {"images": {"tritonVllm": MIRROR}, "gpuPrices": {"H100-SXM": 4.2},
         "gpuToleration": False})
    argv = ["operator"]
    assert _settings(build_parser(argv).parse_args(argv)).build == BuildSettings()


def test_operator_refuses_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _file(tmp_path, "nodeLabelOverrides: {TPU-v5: {a: b}}\n")
    assert main(["operator", "--build-settings", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"tierserve operator: {path}: " in err and "'TPU-v5'" in err
