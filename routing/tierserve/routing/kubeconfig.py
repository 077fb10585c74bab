"""Cluster objects -> the router's configuration (pure: wire dicts in, RouterConfig out).

``tierserve router --kubernetes`` watches ``LLMRoute``, ``LLMDeployment`` and
EndpointSlice objects and calls :func:`router_config` on every change; the result goes to
``Router.apply_config``. Keeping the mapping here, away from the watch loop, makes every
rule testable with plain dicts:

* Deployments are named ``<namespace>/<name>`` so one router can serve every namespace.
  The runtime's plugin (``tierserve.core.runtimes``) gives the protocol (``triton`` for
  ``runtime: triton``, upstream model = the Triton model directory name; ``openai`` for
  Ray Serve, upstream model = ``spec.model.name``) and the Service and port. GPU type,
  GPUs per replica and tokens/s per replica (cost and capacity estimates) come from the
  spec and the sizing plan in ``status.sizing``.
* Endpoints: the EndpointSlices of the runtime's Service (``<name>`` for Triton, port
  ``http``; ``<name>-serve-svc`` for Ray Serve, port ``serve``) when any exist, ready
  addresses in rotation and the others known but out of it. Without slices (the local target, or a
  Service not yet created) ``status.endpoint`` is the one endpoint, in rotation when
  ``status.readyReplicas > 0``. No endpoint at all is an empty list: the router treats
  the deployment as scaled to zero and holds its requests.
* Routes: variants keep their weights (none given: equal) and the sticky header; a
  ``tiers`` route becomes one variant named ``tiers``. ``retries`` and ``timeouts`` map
  onto the router's retry and timeout settings of the route's deployments (the strictest
  route wins when several share a deployment). A route naming a missing deployment is
  skipped (the operator reports ``DeploymentNotFound``); when two namespaces claim the same
  model name the older route wins. The force-tier header is router-wide: tiered routes that
  all name the same one set it. ``fallback`` deployments become the route's ordered
  ``fallback`` list (tried when the chosen deployment cannot answer).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import SecretStr, ValidationError

from tierserve.core.api.deployment import LLMDeploymentSpec, LLMDeploymentStatus, SizingPlan
from tierserve.core.api.route import LLMRouteSpec, TierPolicy
from tierserve.core.api.route import RequestOptions as ApiRequestOptions
from tierserve.core.catalog import CATALOG
from tierserve.core.routerconfig import (
    ApiKey,
    DeploymentConfig,
    EndpointConfig,
    EscalationReason,
    RequestOptions,
    RetryConfig,
    RouteConfig,
    RouterConfig,
    ServerConfig,
    TierConfig,
    VariantConfig,
)
from tierserve.core.runtimes import runtime_for

Obj = Mapping[str, Any]
Key = tuple[str, str]
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
API_KEY_LIMITS_ANNOTATION = "tierserve.io/api-key-limits"
TIERS_VARIANT = "tiers"

_ESCALATION: dict[str, EscalationReason] = {
    "error": "error", "timeout": "timeout", "length": "length",
    "lowConfidence": "low_confidence",
}
_STREAM_ESCALATION: dict[str, Literal["before-first-byte", "buffer"]] = {
    "beforeFirstByte": "before-first-byte", "buffer": "buffer",
}


def deployment_name(namespace: str, name: str) -> str:
    """The router's name for an LLMDeployment (unique across namespaces)."""
    return f"{namespace}/{name}"


def _key(obj: Obj) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _route_spec(obj: Obj) -> LLMRouteSpec | None:
    try:
        return LLMRouteSpec.model_validate(obj.get("spec") or {})
    except ValidationError:
        return None


def route_owners(routes: Iterable[Obj]) -> dict[str, Key]:
    """Model name -> the LLMRoute that serves it: the oldest claim wins (then by key)."""
    owners: dict[str, Key] = {}
    ordered = sorted(routes, key=lambda r: (
        str((r.get("metadata") or {}).get("creationTimestamp") or ""), _key(r)))
    for obj in ordered:
        if (obj.get("metadata") or {}).get("deletionTimestamp"):
            continue
        spec = _route_spec(obj)
        if spec is not None and spec.model not in owners:
            owners[spec.model] = _key(obj)
    return owners


def _url(address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}"


def _slice_port(slice_: Obj, wanted: str, default: int) -> int:
    """The slice's port named ``wanted``, else its only port, else ``default``."""
    ports = [p for p in slice_.get("ports") or [] if p.get("port")]
    named = [p for p in ports if p.get("name") == wanted]
    chosen = named or (ports if len(ports) == 1 else [])
    return int(chosen[0]["port"]) if chosen else default


def slice_endpoints(slices: Iterable[Obj], port_name: str,
                     default_port: int) -> list[EndpointConfig]:
    """Every address of the Service's slices; ready (or unknown) ones in rotation."""
    ready: dict[str, bool] = {}
    for slice_ in slices:
        port = _slice_port(slice_, port_name, default_port)
        for ep in slice_.get("endpoints") or []:
            ok = (ep.get("conditions") or {}).get("ready") is not False  # nil means ready
            for address in ep.get("addresses") or []:
                url = _url(str(address), port)
                ready[url] = ready.get(url, False) or ok
    return [EndpointConfig(url=u, ready=ready[u]) for u in sorted(ready)]


def _status_endpoint(status: LLMDeploymentStatus, protocol: str) -> list[EndpointConfig]:
    if not status.endpoint:
        return []
    url = status.endpoint.rstrip("/")
    if protocol == "openai":
        url = url.removesuffix("/v1")  # the router appends /v1/... itself
    try:
        return [EndpointConfig(url=url, ready=status.ready_replicas > 0)]
    except ValidationError:
        return []


def _service_slices(endpoint_slices: Iterable[Obj]) -> dict[Key, list[Obj]]:
    by_service: dict[Key, list[Obj]] = {}
    for s in endpoint_slices:
        meta = s.get("metadata") or {}
        service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if service:
            by_service.setdefault((str(meta.get("namespace") or ""), service), []).append(s)
    return by_service


def _priced_units(spec: LLMDeploymentSpec, sizing: SizingPlan | None) -> int:
    """How many catalog units one replica pays for: GPUs, or cores (threads) for a CPU
    replica, whose catalog price is per core-hour."""
    if sizing is not None:
        return sizing.threads_per_replica or sizing.gpus_per_replica
    acc = spec.accelerator
    if acc.threads_per_replica is not None:
        return acc.threads_per_replica
    return acc.gpus_per_replica if isinstance(acc.gpus_per_replica, int) else 1


def _deployment(obj: Obj, slices: Mapping[Key, list[Obj]]) -> DeploymentConfig | None:
    namespace, name = _key(obj)
    try:
        spec = LLMDeploymentSpec.model_validate(obj.get("spec") or {})
        status = LLMDeploymentStatus.model_validate(obj.get("status") or {})
    except ValidationError:
        return None
    target = runtime_for(spec.runtime).router_endpoint(name, spec)
    own = slices.get((namespace, target.service))
    endpoints = (slice_endpoints(own, target.port_name, target.port) if own is not None
                 else _status_endpoint(status, target.protocol))
    sizing = status.sizing
    gpu = spec.accelerator.type if spec.accelerator.type in CATALOG else None
    units = _priced_units(spec, sizing)
    tps = sizing.tokens_per_second_per_replica if sizing is not None else 0.0
    try:
        return DeploymentConfig(
            name=deployment_name(namespace, name), protocol=target.protocol,
            served_model=target.upstream_model,
            endpoints=endpoints, gpu_type=gpu, gpus_per_replica=max(1, units),
            **({"tokens_per_s_per_replica": tps} if tps > 0 and math.isfinite(tps) else {}))
    except ValidationError:
        return None


def _tiers(spec: LLMRouteSpec, namespace: str) -> VariantConfig:
    assert spec.tiers is not None
    policy: TierPolicy = spec.tiers.policy
    extra: dict[str, Any] = {}
    if policy.confidence_threshold is not None and policy.confidence_threshold > 0:
        # confidence = geometric-mean token probability, so the floor is its logarithm
        extra["min_mean_logprob"] = math.log(policy.confidence_threshold)
    tiers = TierConfig(
        fast=deployment_name(namespace, spec.tiers.fast),
        slow=deployment_name(namespace, spec.tiers.slow),
        fast_options=_options(spec.tiers.fast_options),
        slow_options=_options(spec.tiers.slow_options),
        classifier=policy.classifier, target_slow_share=policy.slow_share,
        escalate_on=frozenset(_ESCALATION[t] for t in policy.escalate_on),
        fast_timeout_s=policy.fast_timeout_ms / 1000,
        stream_escalation=_STREAM_ESCALATION[policy.stream_escalation], **extra)
    return VariantConfig(name=TIERS_VARIANT, tiers=tiers)


def _options(opts: ApiRequestOptions | None) -> RequestOptions:
    """A tier's request options: the API's fields, field for field."""
    return RequestOptions() if opts is None else RequestOptions(
        max_tokens=opts.max_tokens, temperature=opts.temperature,
        system_prompt=opts.system_prompt, stop=opts.stop, samples=opts.samples)


def _route(spec: LLMRouteSpec, namespace: str) -> RouteConfig:
    if spec.variants is not None:
        variants = [VariantConfig(name=v.name, weight=1.0 if v.weight is None else v.weight,
                                  deployment=deployment_name(namespace, v.deployment))
                    for v in spec.variants]
    else:
        variants = [_tiers(spec, namespace)]
    return RouteConfig(
        model=spec.model, variants=variants,
        sticky_header=spec.sticky_session.header if spec.sticky_session else None,
        timeout_s=spec.timeouts.request_ms / 1000,
        stream_idle_timeout_s=spec.timeouts.first_token_ms / 1000,
        fallback=[deployment_name(namespace, f) for f in spec.fallback])


def _referenced(spec: LLMRouteSpec) -> list[str]:
    names = [v.deployment for v in spec.variants or []]
    if spec.tiers is not None:
        names += [spec.tiers.fast, spec.tiers.slow]
    return list(dict.fromkeys([*names, *spec.fallback]))


def _retry(spec: LLMRouteSpec) -> RetryConfig:
    return RetryConfig(max_attempts=min(10, spec.retries.attempts + 1),
                       budget_ratio=spec.retries.budget_percent / 100)


def _strictest(a: RetryConfig, b: RetryConfig) -> RetryConfig:
    return RetryConfig(max_attempts=min(a.max_attempts, b.max_attempts),
                       budget_ratio=min(a.budget_ratio, b.budget_ratio))


def _server(base: ServerConfig, routes: Iterable[Obj]) -> ServerConfig:
    """The force-tier header is router-wide: a tiered route's own one when they all agree."""
    specs = [_route_spec(r) for r in routes]
    headers = {s.tiers.policy.force_tier_header.lower() for s in specs
               if s is not None and s.tiers is not None}
    if len(headers) != 1 or base.tier_header != ServerConfig().tier_header:
        return base  # none, several (the default stays), or set explicitly in the base
    return base.model_copy(update={"tier_header": headers.pop()})


def router_config(routes: Iterable[Obj], deployments: Iterable[Obj],
                  endpoint_slices: Iterable[Obj],
                  base: RouterConfig | None = None) -> RouterConfig:
    """The router's config for these objects; ``base`` supplies server/auth settings and
    any static deployments and routes (which win over cluster ones of the same name)."""
    base = base or RouterConfig()
    routes = list(routes)
    slices = _service_slices(endpoint_slices)
    built: dict[Key, DeploymentConfig] = {}
    for obj in deployments:
        if not (obj.get("metadata") or {}).get("deletionTimestamp"):
            dep = _deployment(obj, slices)
            if dep is not None:
                built[_key(obj)] = dep
    static_deps = {d.name for d in base.deployments}
    static_models = {r.model for r in base.routes}
    by_key = {_key(r): r for r in routes}
    out_routes: list[RouteConfig] = []
    used: dict[str, DeploymentConfig] = {}
    for model, key in sorted(route_owners(routes).items()):
        spec = _route_spec(by_key[key])
        if spec is None or model in static_models:
            continue
        names = _referenced(spec)
        if any((key[0], n) not in built or deployment_name(key[0], n) in static_deps
               for n in names):
            continue  # the operator reports DeploymentNotFound on the route
        try:
            out_routes.append(_route(spec, key[0]))
        except ValidationError:
            continue
        for n in names:
            dep = built[(key[0], n)]
            prev = used.get(dep.name)
            retry = _retry(spec) if prev is None else _strictest(prev.retry, _retry(spec))
            used[dep.name] = dep.model_copy(update={"retry": retry})
    return RouterConfig(
        server=_server(base.server, [by_key[k] for k in route_owners(routes).values()]),
        auth=base.auth,
        deployments=[*base.deployments, *(used[n] for n in sorted(used))],
        routes=[*base.routes, *out_routes])


def _limits(secret: Obj) -> dict[str, dict[str, float]]:
    """The Secret's per-key limits annotation (JSON); the error never quotes it."""
    raw = ((secret.get("metadata") or {}).get("annotations") or {}).get(
        API_KEY_LIMITS_ANNOTATION)
    if raw is None:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"annotation {API_KEY_LIMITS_ANNOTATION} must be a JSON object "
                         '{"<key name>": {"requestsPerMinute": n, "tokensPerMinute": n}}')
    return data


def api_keys(secret: Obj | None) -> list[ApiKey]:
    """API keys from a Secret: each ``data`` entry is one key (entry name = key name).

    Per-key limits come from the ``tierserve.io/api-key-limits`` annotation,
    ``{"<key name>": {"requestsPerMinute": n, "tokensPerMinute": n}}``. Empty values are
    skipped. Raises ``ValueError`` naming the entry (never its value) when one is bad.
    """
    if secret is None:
        return []
    limits = _limits(secret)
    keys: list[ApiKey] = []
    for name, encoded in sorted((secret.get("data") or {}).items()):
        try:
            value = base64.b64decode(str(encoded), validate=True).decode().strip()
            own = limits.get(name, {})
            if value:
                keys.append(ApiKey(name=name, key=SecretStr(value),
                                   requests_per_minute=own.get("requestsPerMinute"),
                                   tokens_per_minute=own.get("tokensPerMinute")))
        except (binascii.Error, UnicodeDecodeError, ValidationError):
            raise ValueError(f"API key entry {name!r} of the Secret is not valid (a "
                             "non-empty UTF-8 value and numeric limits)") from None
    return keys
