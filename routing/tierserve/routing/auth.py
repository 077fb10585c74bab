"""Optional API keys with per-key request and token rate limits.

Keys come from the config (the cluster watcher fills them from a Secret), a YAML file
(a list of ``{name, key, requests_per_minute, tokens_per_minute}``) or an environment
variable (``name=key,name=key``). Only SHA-256 digests are kept for lookup; the key's
``name`` is the only thing logs may show. Token limits are charged after the answer
(actual usage), so a key may overdraw once and is then refused until it refills.

Several router replicas share each key's limits (``auth.replicas``, which cluster mode
keeps at the router Service's ready endpoints): each replica enforces its share,
:func:`replica_share`. That is exact when the replicas get even shares of a key's
traffic, and too strict for a client whose connections all land on one replica
(``docs/router.md``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass

import yaml
from pydantic import SecretStr, TypeAdapter

from tierserve.core.routerconfig import ApiKey, AuthConfig, ConfigError
from tierserve.routing.errors import RouterError, too_many
from tierserve.routing.state import Clock


class TokenBucket:
    """Capacity ``per_minute``; refills continuously; may go negative when charged."""

    __slots__ = ("_clock", "_last", "_level", "_rate", "capacity")

    def __init__(self, per_minute: float, clock: Clock) -> None:
        self.capacity = per_minute
        self._rate = per_minute / 60.0
        self._level = per_minute
        self._clock = clock
        self._last = clock()

    def _refill(self) -> float:
        now = self._clock()
        self._level = min(self.capacity, self._level + (now - self._last) * self._rate)
        self._last = now
        return self._level

    def retry_after(self, need: float) -> float:
        """0 when ``need`` is available now, else seconds until it will be."""
        level = self._refill()
        return 0.0 if level >= need else (need - level) / self._rate

    def take(self, amount: float) -> None:
        self._refill()
        self._level -= amount

    def resize(self, per_minute: float) -> None:
        """A new capacity and rate; the level carries over, capped (no fresh burst, so a
        change of the replica count never lets the replicas together exceed the limit)."""
        self._refill()
        self.capacity, self._rate = per_minute, per_minute / 60.0
        self._level = min(self._level, per_minute)


def replica_share(limit: float | None, replicas: int) -> float | None:
    """One replica's part of a per-key limit shared by ``replicas`` router replicas."""
    if replicas < 1:
        raise ValueError(f"replicas must be at least 1, got {replicas}")
    return None if limit is None else limit / replicas


@dataclass(slots=True)
class KeyState:
    name: str
    requests: TokenBucket | None
    tokens: TokenBucket | None
    limits: tuple[float | None, float | None] = (None, None)  # configured, not shared

    def admit(self) -> None:
        """Charge one request or raise 429 with Retry-After."""
        waits = [b.retry_after(1.0 if b is self.requests else 0.0)
                 for b in (self.requests, self.tokens) if b is not None]
        wait = max(waits, default=0.0)
        if wait > 0:
            raise too_many("rate limit exceeded for this API key", retry_after_s=wait)
        if self.requests is not None:
            self.requests.take(1.0)

    def charge_tokens(self, tokens: int) -> None:
        if self.tokens is not None and tokens > 0:
            self.tokens.take(float(tokens))


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def load_keys(cfg: AuthConfig) -> list[ApiKey]:
    """All keys from config, file and environment (a file error names the file only)."""
    keys = list(cfg.keys)
    if cfg.keys_file is not None:
        try:
            data = yaml.safe_load(cfg.keys_file.read_text()) or []
            keys += TypeAdapter(list[ApiKey]).validate_python(data)
        except Exception:
            # Never include the exception text: it may quote the file's secret content.
            raise ConfigError(f"cannot read API keys from {cfg.keys_file}") from None
    if cfg.keys_env is not None:
        for item in filter(None, os.environ.get(cfg.keys_env, "").split(",")):
            name, sep, key = item.partition("=")
            if not sep or not key:
                raise ConfigError(f"{cfg.keys_env}: entries must be name=key")
            keys.append(ApiKey(name=name.strip(), key=SecretStr(key.strip())))
    return keys


class KeyRing:
    """Digest -> per-key state. State survives reloads for keys that stay."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._by_digest: dict[bytes, KeyState] = {}
        self.enabled = False

    def apply(self, cfg: AuthConfig, keys: Iterable[ApiKey]) -> None:
        """New keys get full buckets of this replica's share; a key whose configured
        limits stay keeps its buckets, resized when the replica count changed."""
        old, new = self._by_digest, {}
        for k in keys:
            d = _digest(k.key.get_secret_value())
            limits = (k.requests_per_minute or cfg.default_requests_per_minute,
                      k.tokens_per_minute or cfg.default_tokens_per_minute)
            rpm, tpm = (replica_share(limit, cfg.replicas) for limit in limits)
            prev = old.get(d)
            if prev is not None and prev.limits == limits:
                _resize(prev, rpm, tpm)
                new[d] = prev
                continue
            new[d] = KeyState(k.name, None if rpm is None else TokenBucket(rpm, self._clock),
                              None if tpm is None else TokenBucket(tpm, self._clock), limits)
        self._by_digest = new
        self.enabled = cfg.configured

    def authenticate(self, header: str | None) -> KeyState | None:
        """The key's state; ``None`` when auth is off; raise 401 when it fails."""
        if not self.enabled:
            return None
        if not header or not header.startswith("Bearer "):
            raise RouterError(401, "missing API key (Authorization: Bearer ...)",
                              "invalid_request_error", "invalid_api_key")
        state = self._by_digest.get(_digest(header[7:].strip()))
        if state is None:
            raise RouterError(401, "invalid API key", "invalid_request_error", "invalid_api_key")
        return state


def _resize(state: KeyState, rpm: float | None, tpm: float | None) -> None:
    """Same configured limits: a bucket exists exactly when its limit does."""
    for bucket, share in ((state.requests, rpm), (state.tokens, tpm)):
        if bucket is not None and share is not None and bucket.capacity != share:
            bucket.resize(share)
