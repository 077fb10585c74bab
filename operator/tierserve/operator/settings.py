"""Operator configuration: one pydantic object, built once in :mod:`.main`."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tierserve.core.builders import BuildSettings


class LeaderElection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    namespace: str = Field(default_factory=lambda: os.environ.get("POD_NAMESPACE", "default"))
    lease_name: str = "tierserve-operator"
    identity: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    lease_seconds: int = Field(default=15, ge=2, le=300)
    renew_seconds: float = Field(default=5.0, gt=0, le=100)


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
    namespaces: list[str] = Field(default_factory=list,
                                  description="namespaces to watch; empty means cluster-wide")
    workers: int = Field(default=16, ge=1, le=256)
    resync_seconds: float = Field(default=300.0, ge=1.0)
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    liveness_port: int | None = Field(default=None, ge=0, le=65535,
                                      description="kopf's liveness endpoint (/healthz)")
    leader_election: LeaderElection = Field(default_factory=LeaderElection)
    build: BuildSettings = Field(default_factory=BuildSettings)
    local: LocalTarget = Field(default_factory=LocalTarget)
