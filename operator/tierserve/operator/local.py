"""``--target local``: realize LLMDeployments as local Ray Serve / Triton processes.

Same reconciler, same builders' inputs (the validated spec and sizing plan); only the
realizer differs. There is no watch on local processes, so the realizer re-queues its
key: quickly while a runtime is coming up, then at a health-check period, which is how
a crashed Triton server is noticed (reported ``Ready=False``) and restarted.

It runs the engines that need no GPU: ``simulated`` and ``llamacpp`` (a GGUF model on
this machine's cores; the engine resolves ``model.uri`` in-process, as the storage
initializer does in a cluster, with the sizing plan's threads per replica).
"""

from __future__ import annotations

from pathlib import Path

from tierserve.core.builders import BuildContext
from tierserve.core.local import LocalRuntime, LocalRuntimeFactory, LocalSpec, LocalStatus
from tierserve.core.runtimes import runtime_for
from tierserve.core.runtimes.base import replica_readiness
from tierserve.operator.status import Observed
from tierserve.operator.store import Key
from tierserve.operator.workqueue import WorkQueue

DEFAULT_PROFILE = "llama-3.1-8b-h100"
LOCAL_ENGINES = ("simulated", "llamacpp")  # what runs without a GPU


def _name(key: Key) -> str:
    return f"{key[0]}/{key[1]}"


def _observed(st: LocalStatus, desired: int) -> Observed:
    failure = st.message if (st.restarts and not st.ready and st.message) else None
    # an OpenAI endpoint is advertised as its API base, which clients use as is
    openai = runtime_for(st.runtime).protocol == "openai"
    endpoint = f"{st.endpoint}/v1" if openai else st.endpoint
    # Replicas the runtime reports running are serving even while the application as a
    # whole is not ready (Ray Serve reports DEPLOYING while it adds a replica): count
    # them, or a scale-up reads as an outage (readyReplicas 0) to the autoscaler.
    waiting = None if st.ready or st.replicas else "the runtime to report ready"
    readiness = replica_readiness(desired, desired, st.replicas, waiting)
    return Observed.of(readiness, endpoint, failure=failure)


def local_spec(name: str, ctx: BuildContext) -> LocalSpec:
    """What the engine runs for this deployment (threads: the sizing plan's)."""
    spec = ctx.spec
    return LocalSpec(
        key=name, runtime=spec.runtime, profile=spec.engine_profile or DEFAULT_PROFILE,
        served_name=spec.model.name, replicas=spec.replicas, engine=spec.engine,
        model_uri=spec.model.uri, chat_template=spec.model.chat_template,
        threads=ctx.plan.threads_per_replica, stop=tuple(spec.model.stop or ()))


class LocalRealizer:
    def __init__(self, runtimes: LocalRuntime, queue: WorkQueue[Key],
                 starting_poll_s: float = 1.0, health_period_s: float = 5.0) -> None:
        self.runtimes, self.queue = runtimes, queue
        self.starting_poll_s, self.health_period_s = starting_poll_s, health_period_s

    @classmethod
    def create(cls, factory: LocalRuntimeFactory, workdir: Path, ray_port: int,
               ray_cpus: int | None, queue: WorkQueue[Key]) -> LocalRealizer:
        workdir.mkdir(parents=True, exist_ok=True)
        return cls(factory(workdir, ray_port, ray_cpus), queue)

    async def realize(self, key: Key, ctx: BuildContext) -> Observed:
        spec = ctx.spec
        if spec.engine not in LOCAL_ENGINES:
            return Observed(0, 0, failure=f"the local target runs only engine: simulated or "
                                          f"llamacpp (this machine has no GPU); got {spec.engine}")
        if spec.replicas == 0:
            await self.runtimes.delete(_name(key))
            return Observed(0, 0)
        await self.runtimes.apply(local_spec(_name(key), ctx))
        st = await self.runtimes.status(_name(key))
        assert st is not None
        self.queue.add_after(key, self.health_period_s if st.ready else self.starting_poll_s)
        return _observed(st, spec.replicas)

    async def forget(self, key: Key) -> None:
        await self.runtimes.delete(_name(key))

    async def close(self) -> None:
        await self.runtimes.close()
