"""What the tiering benchmark runs: the two real models, the tier configurations, engines.

The models come from the committed examples (``examples/ray-smollm2-cpu.yaml``,
``examples/triton-gemma3-cpu.yaml``: model URI, chat template, stop strings, threads), so
the benchmark serves what a user deploys. A *configuration* is a tier as the API defines
it: a deployment plus request options. The same model with more test-time compute (a
step-by-step prompt and a larger budget, or a majority vote of sampled answers) is just
another configuration of the same deployment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from tierserve.core.api.deployment import LLMDeploymentSpec
from tierserve.core.routerconfig import (
    BalancingConfig,
    DeploymentConfig,
    EndpointConfig,
    RequestOptions,
)
from tierserve.core.sizing import plan

EXAMPLES = Path(__file__).resolve().parents[4] / "examples"

BRIEF = "Answer in a few words."
STEP = ("Think step by step, then give the final answer on its own line, starting with "
        "'Answer:'.")


@dataclass(frozen=True)
class Model:
    """One model as its example LLMDeployment describes it."""

    name: str  # the router's deployment name
    example: str
    spec: LLMDeploymentSpec

    @property
    def threads(self) -> int:
        return self.spec.accelerator.threads_per_replica or 1

    def engine_argv(self, port: int) -> list[str]:
        m = self.spec.model
        argv = [sys.executable, "-m", "tierserve.cli.main", "engine", "--engine", "llamacpp",
                "--model", m.uri, "--port", str(port), "--host", "127.0.0.1",
                "--served-name", self.name, "--threads", str(self.threads),
                "--context", str(m.max_context_length)]
        if m.chat_template:
            argv += ["--chat-template", m.chat_template]
        for stop in getattr(m, "stop", None) or ():
            argv += ["--stop", stop]
        return argv

    def deployment(self, url: str) -> DeploymentConfig:
        """The router's deployment, priced as cluster mode prices it (catalog x sizing)."""
        sizing = plan(self.spec)
        return DeploymentConfig(
            name=self.name, endpoints=[EndpointConfig(url=url)], gpu_type="cpu",
            gpus_per_replica=self.threads,
            tokens_per_s_per_replica=sizing.tokens_per_second_per_replica,
            balancing=BalancingConfig(scrape_metrics=False))


@dataclass(frozen=True)
class Setup:
    """A tier configuration: a deployment plus request options."""

    name: str
    model: str
    options: RequestOptions


def load_model(name: str, example: str) -> Model:
    doc = yaml.safe_load((EXAMPLES / example).read_text())
    return Model(name, example, LLMDeploymentSpec.model_validate(doc["spec"]))


def models() -> dict[str, Model]:
    return {"smollm2": load_model("smollm2", "ray-smollm2-cpu.yaml"),
            "gemma3": load_model("gemma3", "triton-gemma3-cpu.yaml")}


SETUPS: Mapping[str, Setup] = {s.name: s for s in (
    Setup("smollm2", "smollm2", RequestOptions(max_tokens=24, temperature=0,
                                               system_prompt=BRIEF)),
    Setup("gemma3", "gemma3", RequestOptions(max_tokens=12, temperature=0, stop=["\n"])),
    Setup("smollm2-think", "smollm2", RequestOptions(max_tokens=96, temperature=0,
                                                     system_prompt=STEP)),
    Setup("smollm2-vote5", "smollm2", RequestOptions(max_tokens=24, temperature=0.7,
                                                     system_prompt=BRIEF, samples=5)),
    Setup("gemma3-vote5", "gemma3", RequestOptions(max_tokens=12, temperature=0.7,
                                                   stop=["\n"], samples=5)),
)}
DEFAULT_SETUPS = ("smollm2", "gemma3", "smollm2-think")


def start_engine(model: Model, port: int, log: Path) -> subprocess.Popen[bytes]:
    """The real engine as its own process (``tierserve engine``), output in ``log``."""
    with open(log, "ab") as fh:
        return subprocess.Popen(model.engine_argv(port), stdin=subprocess.DEVNULL,
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


def stop_engine(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` (all its threads), from /proc."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
