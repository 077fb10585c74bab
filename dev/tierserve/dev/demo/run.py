"""The demo's steps, in order, each named; a failing step says what to look at.

Every wait has a limit (:func:`tierserve.dev.waiting.wait_until`). Whatever happens
(a failure, Ctrl-C, SIGTERM), everything the demo started is stopped by pid and the
cluster goes down, unless ``--keep``: then it all stays up and the demo prints how to
reach and stop it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from tierserve.dev.cluster import build, cluster
from tierserve.dev.cluster.harness import ClusterHandle
from tierserve.dev.cluster.health import Kubectl
from tierserve.dev.demo import stack
from tierserve.dev.demo.stack import SYSTEM_NS, Component
from tierserve.dev.waiting import wait_until

EXAMPLES = stack.ROOT / "examples"
APPLIED = ("ray-smollm2-cpu.yaml", "triton-gemma3-cpu.yaml", "tiered-route-cpu.yaml",
           "ab-route-cpu.yaml")
COLD_BUILD = "about 9 minutes on 2 cores"


@dataclasses.dataclass(frozen=True)
class Options:
    out: Path = Path("demo-output")
    keep: bool = False
    short: bool = False
    name: str = "demo"
    state_dir: Path | None = None
    ready_timeout_s: float = 600.0


class StepFailed(RuntimeError):
    def __init__(self, step: str, cause: BaseException) -> None:
        super().__init__(f"step {step!r} failed: {type(cause).__name__}: {cause}")
        self.step = step


@dataclasses.dataclass
class Demo:
    """The running demo: what it started, so a failure can point at it and stop it."""

    opts: Options
    cluster: ClusterHandle | None = None
    components: list[Component] = dataclasses.field(default_factory=list)
    prom_url: str | None = None
    _step: int = 0

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        self._step += 1
        print(f"\n==> [{self._step}] {name}", flush=True)
        started = time.monotonic()
        try:
            yield
        except (Exception, KeyboardInterrupt) as exc:
            raise StepFailed(name, exc) from exc
        print(f"    done in {time.monotonic() - started:.0f}s", flush=True)

    def component(self, name: str) -> Component:
        return next(c for c in self.components if c.name == name)

    def started(self, c: Component) -> Component:
        self.components.append(c.start())
        return c

    def check_alive(self) -> None:
        """Every component still running (else the failure names it)."""
        dead = [c.name for c in self.components if not c.alive()]
        if dead:
            raise RuntimeError(f"{', '.join(dead)} exited")

    def explain_failure(self, exc: StepFailed) -> None:
        print(f"\nDEMO FAILED: {exc}", file=sys.stderr)
        logs = self.opts.out / "logs"
        print(f"logs: {logs}/ (one per component), {self.opts.out / 'prometheus'}/"
              "prometheus.log; cluster logs: "
              f"{self.opts.state_dir or '~/.cache/tierserve/cluster/' + self.opts.name}/logs",
              file=sys.stderr)
        dead = [c for c in self.components if not c.alive()]
        for c in dead or self.components:
            print(f"\n--- last lines of {c.log}{' (exited)' if not c.alive() else ''}:\n"
                  f"{c.tail(20 if dead else 8)}", file=sys.stderr)


def build_binaries() -> None:
    missing = build.missing()
    if missing:
        print(f"    the cluster binaries are not cached yet: building {len(missing)} of them "
              f"({', '.join(b.name for b in missing)}) with Go, {COLD_BUILD}; once only "
              f"(cached under ~/.cache/tierserve/bin)", flush=True)
    build.ensure_built(stack.log_line)


def up(opts: Options) -> ClusterHandle:
    lay = cluster.up(cluster.Options(name=opts.name, state=opts.state_dir, log=stack.log_line))
    return ClusterHandle(lay, Kubectl(lay.kubeconfig()))


def helm_install(c: ClusterHandle) -> None:
    """The chart with its default values (the chart's pods are kwok's: nothing runs in
    them; the components run as local processes)."""
    done = subprocess.run([str(c.binary("helm")), "upgrade", "--install", "tierserve",
                           str(stack.ROOT / "charts" / "tierserve"), "-n", SYSTEM_NS,
                           "--create-namespace"], env=c.env(), capture_output=True, text=True,
                          check=False, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"helm failed:\n{done.stderr[-3000:]}")
    print("\n".join("    " + line for line in done.stdout.splitlines()[:6]), flush=True)
    c.kubectl("wait", "--for=condition=Established", "--timeout=60s",
              "crd/llmdeployments.tierserve.io", "crd/llmroutes.tierserve.io")


def start_serving(demo: Demo, c: ClusterHandle) -> None:
    """Operator (local target) and router, each with its chart ServiceAccount's token."""
    out = demo.opts.out
    router = stack.router(out, stack.service_account_kubeconfig(
        c, out / "kubeconfigs" / "router", "tierserve-router"))
    op = stack.operator(out, stack.service_account_kubeconfig(
        c, out / "kubeconfigs" / "operator", "tierserve-operator"), router.url)
    demo.started(op)
    demo.started(router)
    for comp in (op, router):
        wait_until(functools.partial(_serving, comp), 60, f"{comp.name} serving /metrics")
        stack.log_line(f"{comp.name} pid file {comp.pidfile}, log {comp.log}")


def _serving(comp: Component) -> bool:
    import urllib.request

    if not comp.alive():
        raise RuntimeError(f"{comp.name} exited:\n{comp.tail()}")
    with urllib.request.urlopen(comp.url + "/metrics", timeout=5) as resp:
        return bool(resp.status == 200)


def apply_examples(c: ClusterHandle) -> None:
    files = [a for f in APPLIED for a in ("-f", str(EXAMPLES / f))]
    print("\n".join("    " + line for line in c.kubectl("apply", *files).splitlines()))


def wait_ready(demo: Demo, c: ClusterHandle) -> None:
    """Every LLMDeployment and LLMRoute Ready; says what it still waits for when that
    changes (the models load on this machine's cores: a minute or two)."""
    from tierserve.dev.demo.watch import not_ready

    said: list[str] = []

    def check() -> bool:
        demo.check_alive()
        waiting = not_ready(c)
        for line in waiting:
            if line not in said:
                stack.log_line(f"waiting for {line}")
        said[:] = waiting
        return not waiting

    wait_until(check, demo.opts.ready_timeout_s, "every LLMDeployment and LLMRoute Ready",
               interval=2.0)


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # so the teardown in main() runs


def main(opts: Options) -> int:
    from tierserve.dev.demo import scenario

    # absolute: the components run in the output directory and get these paths
    opts = dataclasses.replace(opts, out=opts.out.resolve())
    opts.out.mkdir(parents=True, exist_ok=True)
    demo = Demo(opts)
    previous = signal.signal(signal.SIGTERM, _raise_on_sigterm)
    started = time.monotonic()
    try:
        with demo.step("cluster binaries (tierserve-dev cluster build)"):
            build_binaries()
        with demo.step("local control plane (tierserve-dev cluster up)"):
            demo.cluster = c = up(opts)
            stack.write_state(opts.out, {"name": opts.name, "state_dir": str(
                opts.state_dir) if opts.state_dir else None,
                "kubeconfig": str(c.kubeconfig)})
        with demo.step(f"helm upgrade --install tierserve charts/tierserve -n {SYSTEM_NS} "
                       "(default values)"):
            helm_install(c)
        with demo.step("tierserve operator --target local, tierserve router --kubernetes"):
            start_serving(demo, c)
        with demo.step("kubectl apply -f examples/ (" + ", ".join(APPLIED) + ")"):
            apply_examples(c)
        with demo.step("wait until every model is served (LLMDeployments, LLMRoutes Ready)"):
            wait_ready(demo, c)
        ok = scenario.run(demo, c)
    except StepFailed as exc:
        demo.explain_failure(exc)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
        _finish(demo)
        print(f"\ndemo took {time.monotonic() - started:.0f}s", flush=True)
    return 0 if ok else 1


def _finish(demo: Demo) -> None:
    """Stop everything (cluster down), or with ``--keep`` say how to use and stop it."""
    opts = demo.opts
    if opts.keep and demo.cluster is not None:
        _print_kept(demo)
        return
    # a second Ctrl-C must not leave the teardown half done
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        stop(opts.out, quiet=True)
    finally:
        signal.signal(signal.SIGINT, previous)


def _print_kept(demo: Demo) -> None:
    assert demo.cluster is not None
    lines = [*cluster.env_lines(demo.cluster.layout),  # KUBECONFIG, PATH with kubectl, helm
             *(f"{c.name}: {c.url} (pid file {c.pidfile}, log {c.log})"
               for c in demo.components)]
    if demo.prom_url:
        lines.append(f"prometheus: {demo.prom_url}")
    if any(c.name == "router" for c in demo.components):
        lines.append(f"OpenAI base URL: {demo.component('router').url}/v1 (models qa, chat)")
    lines.append(f"stop: tierserve-dev demo stop --out {demo.opts.out}")
    print("\n--keep: everything is still running\n" + "\n".join("  " + s for s in lines))


def stop(out: Path, quiet: bool = False) -> int:
    """Stop the processes recorded under ``out/pids`` and take the demo's cluster down."""
    state = stack.read_state(out)
    stopped = stack.stop_all(out)
    if state.get("name"):
        state_dir = state.get("state_dir")
        stopped += cluster.down(cluster.Options(
            name=str(state["name"]), state=Path(str(state_dir)) if state_dir else None))
        (out / "demo.json").unlink(missing_ok=True)
    if not quiet or stopped:
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}", flush=True)
    return 0
