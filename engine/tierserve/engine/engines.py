"""Which engine to run, as one validated value every front end builds its backend from.

``tierserve engine``, the Ray Serve application's arguments, the Triton model's
``config.pbtxt`` parameters and the local runners all describe an engine replica as an
:class:`EngineArgs`; :func:`make_backend` is the only place that maps an engine's name
to its :class:`~tierserve.engine.backend.Backend`. llama-cpp-python is imported only
when a llama.cpp backend is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tierserve.core.profiles import get_profile
from tierserve.engine.backend import Backend

EngineName = Literal["simulated", "llamacpp"]
DEFAULT_PROFILE = "llama-3.1-8b-h100"
# The Ray Serve deployment whose replicas are the engines, per engine.
SERVE_DEPLOYMENTS: Mapping[str, str] = {"simulated": "SimEngine", "llamacpp": "LlamaCppEngine"}


class EngineArgs(BaseModel):
    """One engine replica: the simulated engine (a latency profile) or llama.cpp (a
    model URI, threads, context, chat template, default stop strings)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    engine: EngineName = "simulated"
    profile: str | None = None  # simulated
    cold_start_s: float = Field(default=0.0, ge=0)  # simulated
    model: str | None = None  # llamacpp: model URI or path
    threads: int | None = Field(default=None, ge=1)
    context: int = Field(default=2048, ge=64)
    chat_template: str | None = None
    stop: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _complete(self) -> EngineArgs:
        if self.engine == "llamacpp" and not self.model:
            raise ValueError("engine llamacpp needs a model URI (model)")
        if self.engine == "simulated":
            get_profile(self.profile or DEFAULT_PROFILE)  # UnknownProfile on a bad name
        return self

    def max_model_len(self) -> int:
        if self.engine == "simulated":
            return get_profile(self.profile or DEFAULT_PROFILE).max_model_len
        return self.context

    def cpus_per_replica(self) -> float:
        """The CPUs one replica reserves (Ray): its threads; the simulated engine is light."""
        return 0.1 if self.engine == "simulated" else float(self.threads or 1)

    def default_served_name(self) -> str:
        if self.engine == "simulated":
            return get_profile(self.profile or DEFAULT_PROFILE).model
        return (self.model or "model").rstrip("/").rsplit("/", 1)[-1].removesuffix(".gguf")


def engine_args(raw: Mapping[str, Any]) -> EngineArgs:
    """``raw`` (application args, model parameters) as :class:`EngineArgs`; unknown keys
    are ignored here (they belong to the front end), bad values raise ``ValueError``."""
    known = {k: v for k, v in raw.items() if k in EngineArgs.model_fields and v is not None}
    if isinstance(known.get("stop"), str):
        known["stop"] = (known["stop"],)
    try:
        return EngineArgs.model_validate(known)
    except ValidationError as exc:
        raise ValueError(f"bad engine arguments: {exc}") from None


def make_backend(args: EngineArgs) -> Backend:
    if args.engine == "llamacpp":
        from tierserve.engine.llamacpp import LlamaCppBackend, LlamaCppSettings

        assert args.model is not None  # checked by the validator
        return LlamaCppBackend(LlamaCppSettings(
            model=args.model, threads=args.threads, context=args.context,
            chat_template=args.chat_template, stop=args.stop))
    from tierserve.engine.sim_backend import SimBackend

    return SimBackend(get_profile(args.profile or DEFAULT_PROFILE), args.cold_start_s)
