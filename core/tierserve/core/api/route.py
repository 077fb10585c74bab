"""``LLMRoute``: the model name clients ask for, and how requests are split.

Either weighted ``variants`` (an A/B test across LLMDeployments, optionally sticky by a
request header) or ``tiers`` (a cheap fast deployment and a slow reasoning deployment,
with a classifier before the request and escalation after the fast answer).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from tierserve.core.api.base import ApiModel, Rule
from tierserve.core.api.deployment import Condition, StatusModel
from tierserve.core.api.model import DNS_SUBDOMAIN, SERVED_NAME

EscalationTrigger = Literal["error", "timeout", "length", "lowConfidence"]


class Variant(ApiModel):
    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    deployment: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN,
                            description="Name of an LLMDeployment in the same namespace.")
    weight: int | None = Field(default=None, ge=0, le=100)


def _default_triggers() -> list[EscalationTrigger]:
    return ["error", "timeout", "length"]


class TierPolicy(ApiModel):
    classifier: Literal["heuristic", "embedding"] = "heuristic"
    slow_share: float = Field(default=0.3, ge=0.0, le=1.0,
                              description="Target share of requests sent to the slow tier.")
    escalate_on: list[EscalationTrigger] = Field(default_factory=_default_triggers,
                                                 max_length=4)
    fast_timeout_ms: int = Field(default=10_000, ge=100, le=600_000)
    confidence_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    force_tier_header: str = Field(default="x-tierserve-tier", max_length=64,
                                   pattern=r"^[A-Za-z0-9-]+$")


class RequestOptions(ApiModel):
    """What the router sets on a tier's requests, over what the client asked."""

    RULES = (
        Rule(
            cel="!has(self.samples) || self.samples == 1 || "
            "(has(self.temperature) && self.temperature > 0.0)",
            message="samples above 1 need a temperature above 0 "
            "(greedy samples are identical and cannot vote)",
            check=lambda o: o.samples == 1 or (o.temperature or 0) > 0,
            field_path=".samples",
        ),
    )

    max_tokens: int | None = Field(default=None, ge=1, le=131072,
                                   description="Token budget of the tier's answers.")
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    system_prompt: str | None = Field(
        default=None, min_length=1, max_length=16384,
        description="Put before the client's system message (chat) or prompt.")
    stop: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, max_length=4,
        description="Stop strings, e.g. a base model's end of answer (a newline).")
    samples: int = Field(default=1, ge=1, le=16, description=(
        "Sampled answers per request; above 1 the router returns the majority answer "
        "(self-consistency) and charges all samples' tokens."))


def _same_option(field: str) -> str:
    a, b = "self.fastOptions", "self.slowOptions"
    return (f"(has({a}.{field}) == has({b}.{field}) && "
            f"(!has({a}.{field}) || {a}.{field} == {b}.{field}))")


# CEL compares the two option blocks field by field: the API server types fastOptions
# and slowOptions as two distinct object types, and `!=` between them does not compile.
_SAME_OPTIONS = " && ".join(_same_option(f.alias or name)
                            for name, f in RequestOptions.model_fields.items())


def _tiers_differ(t: Tiers) -> bool:
    fast, slow = t.fast_options, t.slow_options
    return (t.fast != t.slow or (fast is None) != (slow is None)
            or (fast is not None and fast != slow))


class Tiers(ApiModel):
    """Each tier is an LLMDeployment plus request options (one can be both, run apart)."""

    # the same deployment as both tiers is the same model given more test-time compute as
    # its slow tier: more tokens, a step-by-step prompt, or a majority vote of samples

    RULES = (
        Rule(
            cel="self.fast != self.slow || has(self.fastOptions) != has(self.slowOptions) "
            f"|| (has(self.fastOptions) && !({_SAME_OPTIONS}))",
            message="tiers.fast and tiers.slow name the same LLMDeployment: give them "
            "different fastOptions/slowOptions",
            check=_tiers_differ,
            field_path=".slow",
        ),
    )

    fast: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)
    slow: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)
    fast_options: RequestOptions | None = None
    slow_options: RequestOptions | None = None
    policy: TierPolicy = Field(default_factory=TierPolicy)


class StickySession(ApiModel):
    header: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")


class Retries(ApiModel):
    attempts: int = Field(default=2, ge=0, le=10)
    budget_percent: int = Field(default=20, ge=0, le=100,
                                description="Retries allowed as a share of requests.")


class Timeouts(ApiModel):
    request_ms: int = Field(default=300_000, ge=100, le=3_600_000)
    first_token_ms: int = Field(default=60_000, ge=100, le=3_600_000)


def _weights_ok(spec: LLMRouteSpec) -> bool:
    weights = [v.weight for v in spec.variants or [] if v.weight is not None]
    return not weights or sum(weights) == 100


class LLMRouteSpec(ApiModel):
    RULES = (
        Rule(
            cel="has(self.variants) != has(self.tiers)",
            message="set exactly one of variants (A/B split) or tiers (fast/slow)",
            check=lambda s: (s.variants is not None) != (s.tiers is not None),
        ),
        Rule(
            cel="!has(self.variants) || !self.variants.exists(v, has(v.weight)) || "
            "self.variants.map(v, has(v.weight) ? v.weight : 0).sum() == 100",
            message="variant weights must sum to 100",
            check=_weights_ok,
            field_path=".variants",
        ),
        Rule(
            cel="!has(self.variants) || !self.variants.exists(v, has(v.weight)) || "
            "self.variants.all(v, has(v.weight))",
            message="set a weight on every variant or on none",
            check=lambda s: s.variants is None
            or len({v.weight is None for v in s.variants}) == 1,
            field_path=".variants",
        ),
    )

    model: str = Field(min_length=1, max_length=128, pattern=SERVED_NAME,
                       description="The model name clients ask for.")
    variants: list[Variant] | None = Field(default=None, min_length=1, max_length=16)
    tiers: Tiers | None = None
    sticky_session: StickySession | None = None
    retries: Retries = Field(default_factory=Retries)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    fallback: list[str] = Field(default_factory=list, max_length=8)


class VariantReadout(StatusModel):
    name: str
    requests: int = 0
    error_rate: float = 0.0
    ttft_p50_ms: float | None = None
    ttft_p95_ms: float | None = None
    tpot_p50_ms: float | None = None
    tpot_p95_ms: float | None = None


class ABReadout(StatusModel):
    variants: list[VariantReadout] = Field(default_factory=list)
    test: str | None = None
    p_value: float | None = None
    significant: bool | None = None
    updated: str | None = None


class LLMRouteStatus(StatusModel):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    endpoint: str | None = None
    ab: ABReadout | None = None
