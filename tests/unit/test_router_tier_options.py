"""A tier is a deployment plus request options: applying them, voting, config and API."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from tierserve.core.api.route import LLMRouteSpec
from tierserve.core.routerconfig import RequestOptions, TierConfig
from tierserve.dev.tierbench.setup import SETUPS
from tierserve.routing.kubeconfig import router_config
from tierserve.routing.tiering import (
    majority,
    sample_bodies,
    summed_usage,
    vote_key,
    with_options,
)

STEP = "Think step by step, then end with 'Answer: <answer>'."


def _chat(text: str, tokens: int = 4) -> dict[str, Any]:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": tokens,
                      "total_tokens": 10 + tokens}}


def test_options_override_the_clients_values_and_unset_ones_keep_them() -> None:
    body: dict[str, Any] = {
        "model": "m", "messages": [{"role": "user", "content": "7 x 8?"}], "max_tokens": 16,
        "temperature": 0.2, "top_p": 0.9}
    out = with_options(body, RequestOptions(max_tokens=128, system_prompt=STEP), chat=True)
    assert out["max_tokens"] == 128 and out["temperature"] == 0.2 and out["top_p"] == 0.9
    assert out["messages"] == [{"role": "system", "content": STEP},
                               {"role": "user", "content": "7 x 8?"}]
    assert body["max_tokens"] == 16 and len(body["messages"]) == 1  # the client's is kept


def test_system_prompt_joins_the_clients_system_message_and_prefixes_completions() -> None:
    body = {"messages": [{"role": "system", "content": "Be terse."},
                         {"role": "user", "content": "hi"}]}
    out = with_options(body, RequestOptions(system_prompt=STEP), chat=True)
    assert out["messages"][0] == {"role": "system", "content": f"{STEP}\n\nBe terse."}
    assert len(out["messages"]) == 2
    opts = RequestOptions(system_prompt="Q&A.", temperature=0)
    assert with_options({"prompt": "Q: 1+1"}, opts, chat=False)["prompt"] == "Q&A.\n\nQ: 1+1"
    assert with_options({"prompt": ["a", "b"]}, opts, chat=False)["prompt"] == [
        "Q&A.\n\na", "Q&A.\n\nb"]
    assert with_options({"prompt": "x"}, opts, chat=False)["temperature"] == 0
    stopped = with_options({"prompt": "x", "stop": ["."]}, RequestOptions(stop=["\n"]), False)
    assert stopped["stop"] == ["\n"]


def test_samples_get_distinct_reproducible_seeds() -> None:
    assert [b["seed"] for b in sample_bodies({"model": "m"}, 3)] == [0, 1, 2]
    assert [b["seed"] for b in sample_bodies({"seed": 40}, 2)] == [40, 41]
    assert [b["seed"] for b in sample_bodies({"seed": True}, 2)] == [0, 1]


def test_vote_key_reads_the_final_answer() -> None:
    assert vote_key(_chat("7 times 8 is 56.\n\nAnswer: 56."), chat=True) == "56"
    assert vote_key(_chat("Let me see.\nSo the answer is Paris!"), chat=True) == "paris"
    assert vote_key(_chat("Working.\n\n  The result: 56  \n"), chat=True) == "the result 56"
    assert vote_key({"choices": [{"text": " Rome\n"}]}, chat=False) == "rome"
    assert vote_key({"choices": []}, chat=True) == ""


def test_majority_wins_and_ties_go_to_the_first() -> None:
    answers = [_chat("Answer: 54"), _chat("Answer: 56"), _chat("It is 56."),
               _chat("answer is 56!")]
    assert majority(answers, chat=True) == 1
    assert majority([_chat("a"), _chat("b")], chat=True) == 0
    assert majority([_chat("a"), _chat("b"), _chat("B")], chat=True) == 1


def test_summed_usage_charges_every_sample() -> None:
    total = summed_usage([_chat("a", 3), _chat("b", 5), {"usage": None}])
    assert total == {"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28}


def test_request_options_validation() -> None:
    with pytest.raises(ValidationError, match="needs a temperature above 0"):
        RequestOptions(samples=3)
    with pytest.raises(ValidationError, match="needs a temperature above 0"):
        RequestOptions(samples=3, temperature=0)
    with pytest.raises(ValidationError):
        RequestOptions(max_tokens=0)
    assert RequestOptions(samples=3, temperature=0.7).samples == 3
    assert RequestOptions().empty and not RequestOptions(max_tokens=8).empty


def test_one_deployment_is_two_tiers_only_with_different_options() -> None:
    with pytest.raises(ValidationError, match="same options"):
        TierConfig(fast="smol", slow="smol", threshold=0.5)
    with pytest.raises(ValidationError, match="same options"):
        TierConfig(fast="smol", slow="smol", threshold=0.5,
                   fast_options=RequestOptions(max_tokens=8),
                   slow_options=RequestOptions(max_tokens=8))
    t = TierConfig(fast="smol", slow="smol", threshold=0.5,
                   slow_options=RequestOptions(samples=5, temperature=0.7))
    assert t.fast_options.empty and t.slow_options.samples == 5


def _spec(tiers: dict[str, Any]) -> dict[str, Any]:
    return {"model": "qa", "tiers": tiers}


def test_api_tiers_same_deployment_needs_different_options() -> None:
    with pytest.raises(ValidationError, match="give them different fastOptions/slowOptions"):
        LLMRouteSpec.model_validate(_spec({"fast": "smol", "slow": "smol"}))
    with pytest.raises(ValidationError, match="give them different"):
        LLMRouteSpec.model_validate(_spec({"fast": "smol", "slow": "smol",
                                           "fastOptions": {"maxTokens": 8},
                                           "slowOptions": {"maxTokens": 8}}))
    with pytest.raises(ValidationError, match="samples above 1 need a temperature"):
        LLMRouteSpec.model_validate(_spec({"fast": "a", "slow": "b",
                                           "slowOptions": {"samples": 3}}))
    spec = LLMRouteSpec.model_validate(_spec({
        "fast": "smol", "slow": "smol",
        "slowOptions": {"samples": 5, "temperature": 0.7, "maxTokens": 24,
                        "systemPrompt": STEP}}))
    assert spec.tiers is not None and spec.tiers.slow_options is not None
    assert spec.tiers.slow_options.system_prompt == STEP


def _obj(kind: str, name: str, spec: dict[str, Any],
         status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"apiVersion": "tierserve.io/v1alpha1", "kind": kind,
            "metadata": {"name": name, "namespace": "ns",
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": spec, "status": status or {}}


def test_cluster_mode_maps_tier_options_field_for_field() -> None:
    dep = _obj("LLMDeployment", "smol", {
        "model": {"name": "smol", "uri": "hf://org/m", "parametersBillions": 0.135},
        "runtime": "rayServe", "engine": "simulated",
        "accelerator": {"type": "H100-SXM", "gpusPerReplica": 1},
        "slo": {"ttftP95Ms": 2000, "tpotP95Ms": 60}},
        {"endpoint": "http://127.0.0.1:9", "readyReplicas": 1})
    route = _obj("LLMRoute", "qa", _spec({
        "fast": "smol", "slow": "smol", "fastOptions": {"maxTokens": 24, "stop": ["\n"]},
        "slowOptions": {"samples": 5, "temperature": 0.7, "systemPrompt": STEP}}))
    cfg = router_config([route], [dep], [])
    (variant,) = cfg.routes[0].variants
    assert variant.tiers is not None
    assert variant.tiers.fast == variant.tiers.slow == "ns/smol"
    assert variant.tiers.fast_options == RequestOptions(max_tokens=24, stop=["\n"])
    assert variant.tiers.slow_options == RequestOptions(samples=5, temperature=0.7,
                                                        system_prompt=STEP)


def test_the_cpu_tiered_example_is_the_benchmarks_pair() -> None:
    """examples/tiered-route-cpu.yaml serves the configurations `bench tiers` measured."""
    examples = Path(__file__).resolve().parents[2] / "examples"
    doc = yaml.safe_load((examples / "tiered-route-cpu.yaml").read_text())
    deps = {}
    for f in ("triton-gemma3-cpu.yaml", "ray-smollm2-cpu.yaml"):
        d = yaml.safe_load((examples / f).read_text())
        deps[d["metadata"]["name"]] = _obj("LLMDeployment", d["metadata"]["name"], d["spec"],
                                           {"endpoint": "http://127.0.0.1:9",
                                            "readyReplicas": 1})
    route = _obj("LLMRoute", doc["metadata"]["name"], doc["spec"])
    (variant,) = router_config([route], list(deps.values()), []).routes[0].variants
    tiers = variant.tiers
    assert tiers is not None
    assert (tiers.fast, tiers.slow) == ("ns/gemma3-triton", "ns/smollm2-ray")
    assert tiers.fast_options == SETUPS["gemma3"].options
    assert tiers.slow_options == SETUPS["smollm2-think"].options
    assert "low_confidence" in tiers.escalate_on and tiers.target_slow_share == 0
    assert tiers.min_mean_logprob == pytest.approx(math.log(0.575))
