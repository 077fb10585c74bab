"""``tierserve operator --target local`` serving the real models of ``examples/``.

The two example CRs are applied as they are (SmolLM2-135M-Instruct on Ray Serve,
Gemma-3-270M with its completion-style template and default stop string on Triton),
exercised with the official ``openai`` client, then patched onto the other runtime
(SmolLM2 on Triton, Gemma on Ray Serve) and exercised again. Ray Serve is an OpenAI
endpoint itself; Triton is reached through the router's Triton adapter, as clients
reach it in a cluster. Each model must give answers that depend on the prompt, stream
in several chunks, repeat itself at temperature 0 and with a seed, report negative
log-probabilities, count the prompt as its own tokenizer (llama_cpp on the same GGUF)
does, and move the runtime's metrics by what was served. One thread per replica.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import urllib.request
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from openai.types.chat import ChatCompletionMessageParam

from e2e.test_local_target import _pids_under, _ready, _status
from tierserve.core.runtimes.triton_repository import triton_model_name
from tierserve.dev.cluster.harness import ClusterHandle
from tierserve.dev.cluster.procs import free_port
from tierserve.dev.testing import router
from tierserve.dev.waiting import wait_until

llama_cpp = pytest.importorskip("llama_cpp")
pytestmark = [pytest.mark.cluster, pytest.mark.llamacpp, pytest.mark.ray, pytest.mark.triton]

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
Messages = list[ChatCompletionMessageParam]


@dataclass(frozen=True)
class Model:
    """One example CR and how its model is asked and how its prompt is rendered."""

    file: str
    ask: Callable[[str], Messages]  # a question as chat messages
    rendered: Callable[[str], str]  # the same question as the template renders it

    def doc(self) -> dict[str, Any]:
        loaded: dict[str, Any] = yaml.safe_load((EXAMPLES / self.file).read_text())
        loaded["metadata"].pop("namespace", None)  # applied into the test's namespace
        return loaded


SYSTEM = "Answer in one short sentence."
SMOLLM2 = Model(
    "ray-smollm2-cpu.yaml",
    lambda q: [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}],
    # ChatML, written out by hand (the GGUF's own template)
    lambda q: (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{q}<|im_end|>\n"
               "<|im_start|>assistant\n"))
GEMMA = Model(
    "triton-gemma3-cpu.yaml",
    lambda q: [{"role": "user", "content": q}],
    # the example's chatTemplate, rendered by hand (Jinja's trim_blocks drops the
    # newline after a block tag, as Hugging Face's renderer does)
    lambda q: ("<bos>Answer each question in a few words.\n\nQuestion: What is the capital "
               f"of Italy?\nAnswer: Rome\nQuestion: {q}\nAnswer:"))


class Tokenizers:
    """Each model's own tokenizer (llama_cpp, vocabulary only) on the same GGUF file."""

    def __init__(self) -> None:
        self._vocab: dict[str, Any] = {}

    def count(self, uri: str, text: str) -> int:
        if uri not in self._vocab:
            from tierserve.engine.model_source import DEFAULT_CACHE, resolve

            path = resolve(uri, DEFAULT_CACHE, in_place=True)
            self._vocab[uri] = llama_cpp.Llama(model_path=str(path), vocab_only=True,
                                               verbose=False)
        return len(self._vocab[uri].tokenize(text.encode(), add_bos=False, special=True))


@dataclass(frozen=True)
class Served:
    """A deployment as its status reports it, and where its runtime's metrics are."""

    model: Model
    doc: dict[str, Any]
    runtime: str
    endpoint: str
    metrics_url: str

    @property
    def name(self) -> str:
        return str(self.doc["spec"]["model"]["name"])

    @property
    def uri(self) -> str:
        return str(self.doc["spec"]["model"]["uri"])


def _scrape(url: str) -> dict[str, float]:
    """Metric samples by name and labels (``name{labels}`` -> value)."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = out.get(key, 0.0) + float(value)
    return out


def _total(samples: dict[str, float], name: str, label: str = "") -> float:
    return sum(v for k, v in samples.items()
               if k.split("{", 1)[0] == name and label in k)


def _triton_metrics_url(workdir: Path) -> str:
    """The metrics port of the one tritonserver the local target runs under ``workdir``
    (once the server of a CR that moved to Ray Serve has stopped)."""
    pids: list[int] = []

    def one() -> bool:
        pids[:] = _pids_under(workdir, "tritonserver")
        return len(pids) == 1

    wait_until(one, 120, "exactly one local Triton server")
    cmd = Path(f"/proc/{pids[0]}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    port = re.search(r"--metrics-port[= ](\d+)", cmd)
    assert port is not None, cmd
    return f"http://127.0.0.1:{port.group(1)}/metrics"


def _logprobs_ok(choice: Any, completion_tokens: int) -> None:
    lp = choice.logprobs
    assert lp is not None and lp.content, "no log-probabilities"
    assert len(lp.content) == completion_tokens
    assert all(isinstance(e.logprob, float) and e.logprob <= 0 for e in lp.content)
    assert any(e.logprob < 0 for e in lp.content)


async def check_answers(client: openai.AsyncOpenAI, s: Served, tok: Tokenizers) -> list[Any]:
    """Chat answers that depend on the question, with exact prompt counts and real
    log-probabilities; greedy decoding repeats itself. Returns the usages."""
    answers, usages = {}, []
    for country, capital in (("France", "Paris"), ("Japan", "Tokyo"), ("France", "again")):
        question = f"What is the capital of {country}?"
        got = await client.chat.completions.create(
            model=s.name, messages=s.model.ask(question), max_tokens=8, temperature=0,
            seed=7, logprobs=True)
        assert got.usage is not None
        assert got.usage.prompt_tokens == tok.count(s.uri, s.model.rendered(question))
        _logprobs_ok(got.choices[0], got.usage.completion_tokens)
        answers[capital] = got.choices[0].message.content or ""
        usages.append(got.usage)
    assert "Paris" in answers["Paris"] and "Tokyo" not in answers["Paris"], answers
    assert "Tokyo" in answers["Tokyo"] and "Paris" not in answers["Tokyo"], answers
    assert answers["again"] == answers["Paris"]  # temperature 0 reproduces
    if s.model is GEMMA:  # the CR's default stop string ends the answer at its line
        assert not any("\n" in a for a in answers.values()), answers
    return usages


async def check_sampling_and_stream(client: openai.AsyncOpenAI, s: Served) -> None:
    """A seeded completion repeats itself, greedy and sampled, also after another
    request (the engine evaluates a seeded prompt afresh); a stream comes in several
    chunks and says what the buffered answer says."""
    temperatures = (0.0, 0.9)
    for temperature in temperatures:
        sampled = [(await client.completions.create(
            model=s.name, prompt="Once upon a time", max_tokens=6, temperature=temperature,
            seed=42)).choices[0].text for _ in range(2)]
        assert sampled[0] and sampled[0] == sampled[1], (temperature, sampled)
    prompt = "1, 2, 3, 4, 5,"
    stream = await client.completions.create(model=s.name, prompt=prompt, max_tokens=8,
                                             temperature=0, stream=True)
    pieces = [c.choices[0].text async for c in stream if c.choices]
    whole = await client.completions.create(model=s.name, prompt=prompt, max_tokens=8,
                                            temperature=0)
    assert sum(1 for p in pieces if p) >= 3, pieces
    assert "".join(pieces) == whole.choices[0].text
    assert "6" in whole.choices[0].text


def _counts(s: Served) -> tuple[float, float]:
    """Ray Serve: generated and prompt tokens; Triton: successful requests, inferences."""
    m = _scrape(s.metrics_url)
    if s.runtime == "rayServe":
        return (_total(m, "vllm:generation_tokens_total"),
                _total(m, "vllm:prompt_tokens_total"))
    label = f'model="{triton_model_name(s.name)}"'
    return (_total(m, "nv_inference_request_success", label),
            _total(m, "nv_inference_count", label))


async def exercise(s: Served, tok: Tokenizers) -> None:
    async with AsyncExitStack() as stack:
        if s.runtime == "rayServe":
            base = s.endpoint
        else:  # Triton speaks its generate protocol: the router's adapter in front
            cfg = {"deployments": [{"name": "t", "protocol": "triton",
                                    "endpoints": [{"url": s.endpoint}],
                                    "triton": {"model": triton_model_name(s.name)},
                                    "balancing": {"scrape_metrics": False}}],
                   "routes": [{"model": s.name, "variants": [{"name": "v",
                                                              "deployment": "t"}]}]}
            _r, url = await stack.enter_async_context(router(cfg))
            base = f"{url}/v1"
        client = openai.AsyncOpenAI(base_url=base, api_key="unused", max_retries=0)
        stack.push_async_callback(client.close)
        before = _counts(s)
        usages = await check_answers(client, s, tok)
        if s.runtime == "rayServe":
            expected = (float(sum(u.completion_tokens for u in usages)),
                        float(sum(u.prompt_tokens for u in usages)))
        else:
            expected = (float(len(usages)), float(len(usages)))
        moved: list[tuple[float, float]] = []

        def counted() -> bool:
            now = _counts(s)
            moved[:] = [(now[0] - before[0], now[1] - before[1])]
            return moved[0][0] >= expected[0] and moved[0][1] >= expected[1]

        wait_until(counted, 30, f"{s.runtime} metrics to count the requests")
        assert moved[0] == expected
        await check_sampling_and_stream(client, s)


def _serving(cluster: ClusterHandle, ns: str, model: Model, runtime: str,
             workdir: Path) -> Served:
    """Wait until the CR is Ready on ``runtime`` (its current generation); what it serves."""
    name = model.doc()["metadata"]["name"]

    def ready() -> bool:
        obj = cluster.get_json("llmd", name, "-n", ns)
        endpoint = str(obj.get("status", {}).get("endpoint") or "")
        return (obj["spec"]["runtime"] == runtime and _ready(cluster, name, ns) == "True"
                and obj["status"].get("observedGeneration") == obj["metadata"]["generation"]
                and endpoint.endswith("/v1") == (runtime == "rayServe"))

    wait_until(ready, 300, f"{name} ready on {runtime}")
    status = _status(cluster, name, ns)
    assert status["sizing"]["threadsPerReplica"] == 1  # two replicas fit on two cores
    endpoint = str(status["endpoint"])
    if runtime == "rayServe":
        metrics = endpoint.removesuffix("/v1") + "/metrics"
    else:
        metrics = _triton_metrics_url(workdir)
    return Served(model, cluster.get_json("llmd", name, "-n", ns), runtime, endpoint, metrics)


@pytest.mark.timeout(1200)
async def test_examples_serve_real_models_on_either_runtime(
        cluster: ClusterHandle, namespace: str, operator_factory: Callable[..., Any],
        tmp_path: Path) -> None:
    workdir = tmp_path / "local"
    operator_factory("local-real", "-n", namespace, "--target", "local", "--local-workdir",
                     str(workdir), "--local-ray-port", str(free_port())).start()
    tok = Tokenizers()
    try:
        for model in (SMOLLM2, GEMMA):
            cluster.apply(model.doc(), namespace=namespace)
        placements = [((SMOLLM2, "rayServe"), (GEMMA, "triton")),
                      ((SMOLLM2, "triton"), (GEMMA, "rayServe"))]  # the same CRs, swapped
        for i, placement in enumerate(placements):
            if i:
                for model, runtime in placement:
                    cluster.kubectl("patch", "llmd", model.doc()["metadata"]["name"], "-n",
                                    namespace, "--type", "merge", "-p",
                                    f'{{"spec": {{"runtime": "{runtime}"}}}}')
            for model, runtime in placement:
                await exercise(_serving(cluster, namespace, model, runtime, workdir), tok)
    finally:
        _delete_and_reap(cluster, namespace, workdir)


def _delete_and_reap(cluster: ClusterHandle, ns: str, workdir: Path) -> None:
    """Delete the CRs and wait for the operator to stop their Triton servers; a server
    left behind (the test failed while the operator was stopping) is killed by pid."""
    for model in (SMOLLM2, GEMMA):
        cluster.kubectl.run("delete", "llmd", model.doc()["metadata"]["name"], "-n", ns,
                            check=False)
    try:
        wait_until(lambda: not _pids_under(workdir, "tritonserver"), 60,
                   "Triton stopped on delete")
    finally:
        for pid in _pids_under(workdir, "tritonserver"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
