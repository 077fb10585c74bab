"""The router's configuration model: one object built by the YAML file or the cluster.

A :class:`RouterConfig` is the whole desired state of a router: deployments (where the
replicas are and how to talk to them) and routes (which client-facing model name maps to
which weighted variants and tiers). The local CLI builds it from YAML with
:func:`load_config`; the cluster watcher builds it from ``LLMRoute``/``LLMDeployment``
objects and EndpointSlices. Both hand it to ``Router.apply_config`` which swaps it in
without dropping in-flight requests. The format is documented in ``docs/router.md``.

Models are frozen and reject unknown keys so a typo fails loudly; every validator names
the offending value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from tierserve.core.catalog import CATALOG

Name = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9._:/@-]+$")]
Positive = Annotated[float, Field(gt=0)]
EscalationReason = Literal["error", "timeout", "length", "low_confidence"]


ScorerName = Literal["outstanding", "queue"]


def _default_scorers() -> dict[ScorerName, float]:
    return {"outstanding": 1.0, "queue": 1.0}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EndpointConfig(_Model):
    """One replica. ``ready=False`` keeps it known but out of rotation."""

    url: Annotated[str, Field(pattern=r"^https?://[^\s/]+(/\S*)?$")]
    ready: bool = True

    @property
    def base(self) -> str:
        return self.url.rstrip("/")


class OutlierConfig(_Model):
    """Passive outlier ejection: consecutive failures eject an endpoint for a while."""

    consecutive_failures: Annotated[int, Field(ge=1)] = 5
    base_ejection_s: Positive = 10.0
    max_ejection_s: Positive = 300.0
    max_ejected_fraction: Annotated[float, Field(ge=0, le=1)] = 0.5


class RetryConfig(_Model):
    """Failover on another replica before the first byte; a budget caps retry storms."""

    max_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    budget_ratio: Annotated[float, Field(ge=0, le=1)] = 0.2
    min_retries_per_s: Annotated[float, Field(ge=0)] = 5.0


class BalancingConfig(_Model):
    """Which picker, and scorer weights (llm-d style: scorers return 0..1)."""

    picker: Literal["least-outstanding", "p2c"] = "least-outstanding"
    scorers: dict[ScorerName, Annotated[float, Field(ge=0)]] = Field(
        default_factory=_default_scorers)
    scrape_metrics: bool = True
    scrape_interval_s: Positive = 1.0


class ScaleFromZeroConfig(_Model):
    """Hold requests while a deployment scaled to zero wakes up (bounded)."""

    enabled: bool = True
    max_held: Annotated[int, Field(ge=0)] = 100
    hold_timeout_s: Positive = 120.0


class TritonConfig(_Model):
    """Field names of the Triton generate extension (input/output tensors as JSON keys)."""

    model: str | None = None
    input_field: str = "text_input"
    output_field: str = "text_output"
    max_tokens_param: str = "max_tokens"


class DeploymentConfig(_Model):
    """A set of replicas serving one model, and how to reach and protect them."""

    name: Name
    protocol: Literal["openai", "triton"] = "openai"
    served_model: str | None = None
    endpoints: list[EndpointConfig] = Field(default_factory=list)
    gpu_type: str | None = None
    gpus_per_replica: Annotated[int, Field(ge=1)] = 1
    tokens_per_s_per_replica: Positive = 1000.0
    max_inflight_per_replica: Annotated[int, Field(ge=1)] | None = None
    max_queue: Annotated[int, Field(ge=0)] = 1000
    queue_timeout_s: Positive = 30.0
    connect_timeout_s: Positive = 2.0
    outlier: OutlierConfig = OutlierConfig()
    retry: RetryConfig = RetryConfig()
    balancing: BalancingConfig = BalancingConfig()
    scale_from_zero: ScaleFromZeroConfig = ScaleFromZeroConfig()
    triton: TritonConfig = TritonConfig()

    @property
    def upstream_model(self) -> str:
        return self.served_model or self.name

    @model_validator(mode="after")
    def _known_gpu(self) -> DeploymentConfig:
        if self.gpu_type is not None and self.gpu_type not in CATALOG:
            raise ValueError(f"deployment {self.name!r}: unknown gpu_type {self.gpu_type!r}; "
                             f"known: {', '.join(CATALOG)}")
        return self


class RequestOptions(_Model):
    """What a tier sets on the requests it sends, over what the client asked.

    A tier is a deployment plus these options, so one deployment can be both tiers: a
    quick greedy answer, and the same model given more test-time compute (a step-by-step
    system prompt with a larger token budget, or several sampled answers and a majority
    vote), or a base model's stop strings. Unset fields keep the client's values.
    """

    max_tokens: Annotated[int, Field(ge=1, le=131072)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    system_prompt: Annotated[str, Field(min_length=1, max_length=16384)] | None = None
    stop: Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]],
                    Field(max_length=4)] | None = None
    samples: Annotated[int, Field(ge=1, le=16)] = 1

    @model_validator(mode="after")
    def _samples_differ(self) -> RequestOptions:
        if self.samples > 1 and not (self.temperature or 0) > 0:
            raise ValueError(f"samples={self.samples} needs a temperature above 0 (greedy "
                             f"samples are identical and cannot vote); got temperature="
                             f"{self.temperature!r}")
        return self

    @property
    def empty(self) -> bool:
        return self == _NO_OPTIONS


_NO_OPTIONS = RequestOptions()


class TierConfig(_Model):
    """Fast/slow tiering: classify before, escalate after the fast tier answers.

    Each tier is a deployment plus :class:`RequestOptions`; ``fast`` and ``slow`` may name
    the same deployment when their options differ.
    """

    fast: Name
    slow: Name
    fast_options: RequestOptions = _NO_OPTIONS
    slow_options: RequestOptions = _NO_OPTIONS
    classifier: Literal["heuristic", "embedding"] = "heuristic"
    threshold: Annotated[float, Field(ge=0, le=1)] | None = None
    target_slow_share: Annotated[float, Field(ge=0, le=1)] | None = 0.3
    escalate_on: frozenset[EscalationReason] = frozenset({"error", "timeout", "length"})
    fast_timeout_s: Positive = 30.0
    min_mean_logprob: float = -1.5
    stream_escalation: Literal["before-first-byte", "buffer"] = "before-first-byte"

    @model_validator(mode="after")
    def _threshold_or_target(self) -> TierConfig:
        if self.threshold is None and self.target_slow_share is None:
            raise ValueError("tiers need a threshold or a target_slow_share (both are None)")
        if self.fast == self.slow and self.fast_options == self.slow_options:
            raise ValueError(f"tiers fast and slow are both deployment {self.fast!r} with the "
                             "same options: give them different fast_options/slow_options")
        return self


class VariantConfig(_Model):
    """One A/B arm: a single deployment or a fast/slow tier pair."""

    name: Name
    weight: Annotated[float, Field(ge=0)] = 1.0
    deployment: Name | None = None
    tiers: TierConfig | None = None

    @model_validator(mode="after")
    def _one_target(self) -> VariantConfig:
        if (self.deployment is None) == (self.tiers is None):
            raise ValueError(f"variant {self.name!r} needs exactly one of deployment or tiers "
                             f"(got deployment={self.deployment!r}, tiers={self.tiers!r})")
        return self

    def deployments(self) -> list[str]:
        if self.tiers is not None:
            return [self.tiers.fast, self.tiers.slow]
        assert self.deployment is not None
        return [self.deployment]


class RouteConfig(_Model):
    """A client-facing model name and its weighted variants."""

    model: Name
    variants: Annotated[list[VariantConfig], Field(min_length=1)]
    sticky_header: str | None = None
    affinity_header: str | None = None
    timeout_s: Positive = 120.0
    stream_idle_timeout_s: Positive = 60.0
    fallback: Annotated[list[Name], Field(max_length=8)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _weights(self) -> RouteConfig:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"route {self.model!r}: duplicate variant names {names!r}")
        if sum(v.weight for v in self.variants) <= 0:
            raise ValueError(f"route {self.model!r}: variant weights sum to zero "
                             f"({[v.weight for v in self.variants]!r})")
        return self


class ApiKey(_Model):
    """An API key; ``name`` is what logs and metrics may show, never ``key``."""

    name: Name
    key: SecretStr
    requests_per_minute: Positive | None = None
    tokens_per_minute: Positive | None = None


class AuthConfig(_Model):
    """Optional API keys. No source configured means no authentication."""

    keys: list[ApiKey] = Field(default_factory=list)
    keys_file: Path | None = None
    keys_env: str | None = None
    default_requests_per_minute: Positive | None = None
    default_tokens_per_minute: Positive | None = None
    required: bool = False  # authenticate even with no key loaded (refuse everyone)
    # Router replicas sharing each key's limits: each enforces limit / replicas (exact
    # when the replicas get even shares of a key's traffic). Cluster mode sets it from
    # the router Service's ready endpoints.
    replicas: Annotated[int, Field(ge=1)] = 1

    @property
    def configured(self) -> bool:
        return bool(self.required or self.keys or self.keys_file or self.keys_env)


class ServerConfig(_Model):
    """Limits applied before any routing work."""

    max_body_bytes: Annotated[int, Field(ge=1024)] = 4 * 1024 * 1024
    request_id_header: str = "x-request-id"
    tier_header: str = "x-tierserve-tier"


class RouterConfig(_Model):
    """The whole desired state of one router."""

    server: ServerConfig = ServerConfig()
    auth: AuthConfig = AuthConfig()
    deployments: list[DeploymentConfig] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> RouterConfig:
        deps = [d.name for d in self.deployments]
        if len(set(deps)) != len(deps):
            raise ValueError(f"duplicate deployment names: {deps!r}")
        models = [r.model for r in self.routes]
        if len(set(models)) != len(models):
            raise ValueError(f"duplicate route models: {models!r}")
        known = set(deps)
        for route in self.routes:
            for variant in route.variants:
                missing = [d for d in variant.deployments() if d not in known]
                if missing:
                    raise ValueError(f"route {route.model!r} variant {variant.name!r} names "
                                     f"unknown deployment(s) {missing!r}; known: {deps!r}")
            missing = [d for d in route.fallback if d not in known]
            if missing:
                raise ValueError(f"route {route.model!r} fallback names unknown "
                                 f"deployment(s) {missing!r}; known: {deps!r}")
        return self

    def deployment(self, name: str) -> DeploymentConfig:
        return next(d for d in self.deployments if d.name == name)


class ConfigError(ValueError):
    """A configuration that cannot be used; the message says where and what."""


def parse_config(data: object, source: str = "<config>") -> RouterConfig:
    try:
        return RouterConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    """Each error with its location and the bad value, except under ``auth`` (secrets)."""
    lines = [f"{exc.error_count()} validation error(s)"]
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"]) or "(top level)"
        if not err["loc"]:
            lines.append(f"  {where}: {err['msg']}")  # the message names the value
            continue
        shown = "<hidden>" if err["loc"][0] == "auth" else repr(err.get("input"))[:200]
        lines.append(f"  {where}: {err['msg']} (got {shown})")
    return "\n".join(lines)


def load_config(path: Path) -> RouterConfig:
    """Read and validate a YAML router config file."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return parse_config(data if data is not None else {}, str(path))
