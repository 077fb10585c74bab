"""``LLMRoute``: the model name clients ask for, and how requests are split.

Either weighted ``variants`` (an A/B test across LLMDeployments, optionally sticky by a
request header) or ``tiers`` (a cheap fast deployment and a slow reasoning deployment,
with a classifier before the request and escalation after the fast answer).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from tierserve.core.api.base import ApiModel, Rule, immutable
from tierserve.core.api.conditions import Condition, Generation, StatusModel
from tierserve.core.api.model import DNS_SUBDOMAIN, SERVED_NAME

EscalationTrigger = Literal["error", "timeout", "length", "lowConfidence"]


# The router keeps a variant's A/B statistics under its name across reloads, so a variant
# that changed deployment would mix two deployments' requests in one readout.
VARIANT_DEPLOYMENT_FIXED = (
    "variants[].deployment cannot change: the A/B readout keeps a variant's statistics "
    "under its name; to send the variant's traffic to another LLMDeployment, add a variant "
    "with a new name (and remove this one)")


class Variant(ApiModel):
    """One arm of an A/B split: an LLMDeployment and its share of the requests."""

    name: str = Field(
        min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Variant name (a DNS label), e.g. control or candidate; the A/B readout "
        "and sticky sessions key on it, and the first variant is the control.")
    deployment: str = Field(
        min_length=1, max_length=253, pattern=DNS_SUBDOMAIN,
        json_schema_extra=immutable(VARIANT_DEPLOYMENT_FIXED),
        description="Name of an LLMDeployment in the same namespace. Fixed once the "
        "variant exists (its readout is kept by name): add a variant with a new name to "
        "test another deployment.")
    weight: int | None = Field(
        default=None, ge=0, le=100,
        description="Share of the requests in percent, 0 to 100. Set it on every variant "
        "(summing to 100) or on none (an equal split).")


def _default_triggers() -> list[EscalationTrigger]:
    return ["error", "timeout", "length"]


class TierPolicy(ApiModel):
    """Which tier a request goes to first, and when a fast answer escalates to slow."""

    classifier: Literal["heuristic", "embedding"] = Field(
        default="heuristic",
        description="What rates a prompt's difficulty before it is sent: heuristic "
        "(length, code, math, multi-step wording; microseconds) or embedding (nearest "
        "labelled examples by sentence embedding; needs the optional model package, else "
        "heuristic). Default heuristic.")
    slow_share: float = Field(
        default=0.3, ge=0.0, le=1.0,
        description="Target share of requests sent to the slow tier, 0 to 1; the "
        "classifier's threshold is calibrated to it. Default 0.3.")
    escalate_on: list[EscalationTrigger] = Field(
        default_factory=_default_triggers, max_length=4,
        description="When a fast answer is replaced by the slow tier's: error, timeout "
        "(fastTimeoutMs passed), length (the answer hit its token budget), lowConfidence "
        "(mean token probability below confidenceThreshold). Default [error, timeout, "
        "length].")
    fast_timeout_ms: int = Field(
        default=10_000, ge=100, le=600_000,
        description="Time the fast tier gets before the request escalates on timeout, "
        "milliseconds, 100 to 600000. Default 10000.")
    confidence_threshold: float | None = Field(
        default=None, ge=0.0, le=1.0,
        description="Lowest confidence of a fast answer (the geometric mean of its token "
        "probabilities), 0 to 1, e.g. 0.6, below which lowConfidence escalates. Unset: the "
        "router's default floor (about 0.22, a mean log-probability of -1.5).")
    stream_escalation: Literal["beforeFirstByte", "buffer"] = Field(
        default="beforeFirstByte",
        description="How streamed requests escalate: beforeFirstByte (the fast tier's "
        "tokens go to the client as they come, so only an error or timeout before the "
        "first byte escalates; lowest TTFT) or buffer (the fast answer is collected and "
        "inspected first, then replayed as a stream, so length and lowConfidence apply "
        "to streams too, at the cost of the fast answer's generation time in TTFT). "
        "Non-streamed requests are always inspected. Default beforeFirstByte.")
    force_tier_header: str = Field(
        default="x-tierserve-tier", max_length=64, pattern=r"^[A-Za-z0-9-]+$",
        description="Request header with which a client picks the tier (fast or slow) and "
        "skips the classifier. Default x-tierserve-tier; router-wide, so used when every "
        "tiered route names the same one.")


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
    temperature: float | None = Field(
        default=None, ge=0.0, le=2.0,
        description="Sampling temperature, 0 (greedy) to 2, e.g. 0.7.")
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

    fast: str = Field(
        min_length=1, max_length=253, pattern=DNS_SUBDOMAIN,
        description="LLMDeployment (same namespace) that answers first: the cheap, fast tier.")
    slow: str = Field(
        min_length=1, max_length=253, pattern=DNS_SUBDOMAIN,
        description="LLMDeployment (same namespace) for hard prompts and escalations: the "
        "slow, reasoning tier. May be the fast one with different slowOptions.")
    fast_options: RequestOptions | None = Field(
        default=None,
        description="What the router sets on the fast tier's requests, e.g. {maxTokens: "
        "24}. Unset: the client's values.")
    slow_options: RequestOptions | None = Field(
        default=None,
        description="What the router sets on the slow tier's requests, e.g. {maxTokens: "
        "128, systemPrompt: \"Think step by step.\"}. Unset: the client's values.")
    policy: TierPolicy = Field(
        default_factory=TierPolicy,
        description="Classifier, slow share and escalation triggers.")


class StickySession(ApiModel):
    """Requests with the same header value land on the same variant."""

    header: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$",
        description="Request header whose value pins a client to a variant, e.g. x-user-id.")


class Retries(ApiModel):
    """Retries of failed requests (connection errors, 5xx) before the answer is sent."""

    attempts: int = Field(
        default=2, ge=0, le=10,
        description="Retries after the first attempt, 0 to 10, on another replica or a "
        "fallback deployment. Default 2.")
    budget_percent: int = Field(
        default=20, ge=0, le=100,
        description="Retries allowed as a share of requests, percent, 0 to 100, so "
        "retries cannot multiply an overload. Default 20.")


class Timeouts(ApiModel):
    """How long the router waits for a deployment."""

    request_ms: int = Field(
        default=300_000, ge=100, le=3_600_000,
        description="Longest a whole request may take, milliseconds, 100 to 3600000. "
        "Default 300000 (five minutes).")
    first_token_ms: int = Field(
        default=60_000, ge=100, le=3_600_000,
        description="Longest wait for the first token and between streamed chunks (the "
        "upstream read timeout), milliseconds, 100 to 3600000. Default 60000.")


def _weights_ok(spec: LLMRouteSpec) -> bool:
    weights = [v.weight for v in spec.variants or [] if v.weight is not None]
    return not weights or sum(weights) == 100


class LLMRouteSpec(ApiModel):
    """The model name clients ask for and how its requests are split."""

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
    variants: list[Variant] | None = Field(
        default=None, min_length=1, max_length=16,
        description="A/B split across LLMDeployments, 1 to 16 variants keyed by name. Set "
        "exactly one of variants and tiers.")
    tiers: Tiers | None = Field(
        default=None,
        description="Fast/slow tiering: a cheap fast deployment, a slow reasoning one, a "
        "classifier before the request and escalation after the fast answer. Set exactly "
        "one of variants and tiers.")
    sticky_session: StickySession | None = Field(
        default=None,
        description="Keep a client on one variant by a request header. Unset: every "
        "request is split by weight.")
    retries: Retries = Field(default_factory=Retries,
                             description="Retries of failed requests (default 2, 20% budget).")
    timeouts: Timeouts = Field(default_factory=Timeouts,
                               description="Request and first-token timeouts.")
    fallback: list[str] = Field(
        default_factory=list, max_length=8,
        description="LLMDeployments (same namespace) tried in order when the chosen one "
        "fails, up to 8, e.g. [llama-small].")


class VariantReadout(StatusModel):
    """One variant's requests and latency, as the router measured them."""

    name: str = Field(description="Variant name (spec.variants[].name).")
    requests: int = Field(default=0,
                          description="Requests the router sent to the variant so far.")
    error_rate: float = Field(default=0.0,
                              description="Share of those requests that failed, 0 to 1.")
    ttft_p50_ms: float | None = Field(
        default=None, description="Median time to first token, milliseconds.")
    ttft_p95_ms: float | None = Field(
        default=None, description="Time to first token, 95th percentile, milliseconds.")
    tpot_p50_ms: float | None = Field(
        default=None, description="Median time per output token, milliseconds.")
    tpot_p95_ms: float | None = Field(
        default=None, description="Time per output token, 95th percentile, milliseconds.")


class ABReadout(StatusModel):
    """The A/B readout, written by the router: per-variant numbers and a significance test."""

    variants: list[VariantReadout] = Field(
        default_factory=list, description="One entry per variant, the control first.")
    test: str | None = Field(
        default=None,
        description="The test and what it compared, e.g. \"two-sided Mann-Whitney U ... on "
        "ttft_seconds, candidate vs control (alpha 0.05)\", or why there is no result yet.")
    p_value: float | None = Field(
        default=None,
        description="p-value of the comparison with the control (with more than two "
        "variants the smallest, Bonferroni-adjusted). Unset: too few samples yet.")
    significant: bool | None = Field(
        default=None, description="Whether pValue is below the test's alpha.")
    updated: str | None = Field(
        default=None,
        description="When the router wrote the readout (RFC 3339, UTC), e.g. "
        "2026-01-02T03:04:05Z.")


class LLMRouteStatus(StatusModel):
    """What the operator (conditions, endpoint) and the router (ab) report back."""

    observed_generation: Generation | None = Field(
        default=None,
        description="metadata.generation of the spec the operator last checked.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, with a reason: DeploymentsReady, DeploymentNotFound, "
        "DeploymentsNotReady or InvalidSpec.")
    endpoint: str | None = Field(
        default=None,
        description="How clients reach this route: the router Service's URL and the model "
        "name to send (spec.model).")
    model: str | None = Field(
        default=None,
        description="The model name clients send in OpenAI requests to the endpoint "
        "(spec.model), e.g. chat.")
    ab: ABReadout | None = Field(
        default=None, description="The A/B readout of a variants route, written by the router.")
