"""Operator configuration: one pydantic object, built once in :mod:`.main`."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tierserve.core.builders import BuildSettings
from tierserve.core.kube.leader import LeaseTiming


class LeaderElection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    namespace: str = Field(default_factory=lambda: os.environ.get("POD_NAMESPACE", "default"))
    lease_name: str = "tierserve-operator"
    identity: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    # client-go's durations (core/kube/leader.py); their order is checked by LeaseTiming
    lease_duration_s: float = Field(default=15.0, ge=2, le=300)
    renew_deadline_s: float = Field(default=10.0, gt=0, le=300)
    retry_period_s: float = Field(default=2.0, gt=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> LeaderElection:
        self.timing()  # raises ValueError (a ValidationError here) naming the values
        return self

    def timing(self) -> LeaseTiming:
        return LeaseTiming(self.lease_duration_s, self.renew_deadline_s, self.retry_period_s)


class LocalTarget(BaseModel):
    """Where ``--target local`` runs things."""

    model_config = ConfigDict(extra="forbid")

    workdir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "tierserve" / "local")
    ray_http_port: int = Field(default=8000, ge=1, le=65535)
    ray_num_cpus: int | None = Field(default=2, ge=1)


class OperatorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: Literal["kubernetes", "local"] = "kubernetes"
    kubeconfig: str | None = None
    in_cluster: bool = False  # the pod's ServiceAccount only (core/kube/credentials.py)
    namespaces: list[str] = Field(default_factory=list,
                                  description="namespaces to watch; empty means cluster-wide")
    workers: int = Field(default=16, ge=1, le=256)
    resync_seconds: float = Field(default=300.0, ge=1.0)
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    health_port: int | None = Field(default=None, ge=0, le=65535,
                                    description="/healthz and /readyz (operator/health.py)")
    router_url: str | None = Field(
        default=None, pattern=r"^https?://[^\s/]+(/\S*)?$",
        description="the router's OpenAI base URL that LLMRoute status.endpoint reports, "
        "e.g. http://tierserve-router.tierserve-system.svc:80/v1; None: not reported")
    leader_election: LeaderElection = Field(default_factory=LeaderElection)
    build: BuildSettings = Field(default_factory=BuildSettings)
    local: LocalTarget = Field(default_factory=LocalTarget)
