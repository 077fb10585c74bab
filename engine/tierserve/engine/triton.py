"""Run the simulated engine inside a real Triton Inference Server.

The ``nvidia-pytriton`` wheel ships a CPU-capable ``tritonserver`` binary, the Python
backend and one backend stub per Python version. This module:

* :func:`find_distribution` locates them under site-packages;
* :func:`write_model_repository` lays out a work directory: ``backends/python`` (the
  backend plus the stub for *this* interpreter's version) and ``models/<name>`` with a
  ``config.pbtxt`` (decoupled transaction policy, TensorRT-LLM tensor names) and a
  ``model.py`` shim importing :mod:`tierserve.engine.triton_model`, as in a cluster's
  model-repository ConfigMap (``tierserve.core.runtimes.triton_repository``), or the
  files of such a ConfigMap themselves;
* :class:`TritonServer` launches ``tritonserver`` bound to 127.0.0.1 on the given
  HTTP / GRPC / metrics ports, waits on ``/v2/health/ready`` and stops it.

Known snag handled here: the 3.11 stub links the *system* ``libpython3.11`` while the
interpreter running Tierserve may have a newer patch-level standard library, which
breaks model loading; the running interpreter's own ``LIBDIR`` goes first on
``LD_LIBRARY_PATH`` so the stub embeds the matching libpython. ``PYTHONPATH`` carries
this installation's site-packages (numpy) and the ``tierserve.engine`` source root.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import site
import subprocess
import sys
import sysconfig
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp

import tierserve as tierserve_pkg
from tierserve.core.runtimes.triton_repository import (
    model_config,
    python_model,
    triton_model_name,
)
from tierserve.engine.engines import EngineArgs


@dataclass(frozen=True)
class TritonDistribution:
    """Where the wheel keeps the server binary, the Python backend and the stubs."""

    binary: Path
    python_backend: Path
    stub: Path
    libs: Path


def find_distribution() -> TritonDistribution:
    """Locate ``tritonserver`` in the installed ``nvidia-pytriton`` wheel."""
    import pytriton

    root = Path(pytriton.__file__).parent / "tritonserver"
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    dist = TritonDistribution(
        binary=root / "bin" / "tritonserver",
        python_backend=root / "backends" / "python",
        stub=root / "python_backend_stubs" / version / "triton_python_backend_stub",
        libs=root.parent.parent / "nvidia_pytriton.libs",
    )
    for path in (dist.binary, dist.python_backend, dist.stub):
        if not path.exists():
            raise FileNotFoundError(f"nvidia-pytriton is missing {path}")
    return dist


@dataclass(frozen=True)
class TritonSpec:
    """One Triton server serving one model: simulated (``profile``) unless ``engine``
    says otherwise."""

    profile: str
    served_name: str
    workdir: Path
    http_port: int
    grpc_port: int
    metrics_port: int
    cold_start_s: float = 0.0
    instances: int = 1  # Triton model instances, each its own engine replica
    engine: EngineArgs | None = None  # None: the simulated engine with ``profile``

    def engine_args(self) -> EngineArgs:
        if self.engine is not None:
            return self.engine
        return EngineArgs(profile=self.profile, cold_start_s=self.cold_start_s)

    @property
    def model_name(self) -> str:
        return triton_model_name(self.served_name)  # the cluster's rule

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"


def model_parameters(args: EngineArgs, served_name: str) -> dict[str, str]:
    """The ``config.pbtxt`` parameters the Python-backend model reads its engine from
    (lists as JSON; :func:`model_config` escapes every value for the text format)."""
    params: dict[str, str] = {"served_name": served_name}
    for key, value in args.model_dump(exclude_defaults=True).items():
        text = json.dumps(list(value)) if isinstance(value, tuple | list) else str(value)
        params[key] = text
    params.setdefault("engine", "simulated")
    return params


def local_model_files(spec: TritonSpec) -> dict[str, str]:
    """The model directory a local server loads: the cluster's files, with CPU
    instances (each its own engine replica), the engine's parameters and this checkout's
    paths in ``model.py`` (nothing is installed as in an image)."""
    args = spec.engine_args()
    config = model_config(spec.model_name, args.engine, model_parameters(args, spec.served_name),
                          instance_count=spec.instances, instance_kind="KIND_CPU")
    return {"config.pbtxt": config, "1/model.py": python_model(_python_paths())}


def install_python_backend(workdir: Path, dist: TritonDistribution) -> Path:
    """Copy the Python backend and this interpreter's stub to ``workdir/backends``."""
    backend = workdir / "backends" / "python"
    backend.mkdir(parents=True, exist_ok=True)
    files = [(src, backend / src.name) for src in dist.python_backend.glob("*") if src.is_file()]
    for src, dst in [*files, (dist.stub, backend / "triton_python_backend_stub")]:
        if not dst.exists() or dst.stat().st_size != src.stat().st_size:
            shutil.copy2(src, dst)  # skip on restart: a surviving stub may hold it busy
    return backend.parent


def write_model_repository(spec: TritonSpec, dist: TritonDistribution,
                           files: Mapping[str, str] | None = None) -> Path:
    """Write backends and the model repository under ``spec.workdir``; return the repo.

    ``files`` (path in the model directory -> text, e.g. a cluster's model-repository
    ConfigMap laid out by its volume items) replace :func:`local_model_files`.
    """
    spec.engine_args()  # fail here, not inside Triton, on a bad profile
    install_python_backend(spec.workdir, dist)
    repo = spec.workdir / "models"
    model = repo / spec.model_name
    for rel, text in (local_model_files(spec) if files is None else files).items():
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise ValueError(f"model file {rel!r} must be a path inside the model directory")
        (model / rel).parent.mkdir(parents=True, exist_ok=True)
        (model / rel).write_text(text)
    return repo


def _python_paths() -> list[str]:
    """Every source root of the ``tierserve`` namespace package (the model needs
    ``tierserve.engine`` and ``tierserve.core``, separate roots in a checkout) plus this
    interpreter's site-packages. The stub reads no ``.pth`` files, so an editable
    install's roots must be named here."""
    roots = [str(Path(portion).parent) for portion in tierserve_pkg.__path__]
    return list(dict.fromkeys([*roots, *site.getsitepackages()]))


def server_env(dist: TritonDistribution) -> dict[str, str]:
    env = dict(os.environ)
    libdir = sysconfig.get_config_var("LIBDIR") or str(Path(sys.base_prefix) / "lib")
    parts = [libdir, str(dist.libs), env.get("LD_LIBRARY_PATH", "")]
    env["LD_LIBRARY_PATH"] = ":".join(p for p in parts if p)
    env["PYTHONPATH"] = ":".join(_python_paths())
    env.pop("PYTHONHOME", None)
    return env


class TritonServer:
    """A ``tritonserver`` child process for one :class:`TritonSpec`."""

    def __init__(self, spec: TritonSpec, dist: TritonDistribution | None = None,
                 model_files: Mapping[str, str] | None = None) -> None:
        self.spec = spec
        self.dist = dist or find_distribution()
        self.model_files = model_files  # None: local_model_files(spec)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = spec.workdir / "tritonserver.log"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command(self, repo: Path) -> list[str]:
        s = self.spec
        return [
            str(self.dist.binary),
            f"--model-repository={repo}",
            f"--backend-directory={s.workdir / 'backends'}",
            "--http-address=127.0.0.1", f"--http-port={s.http_port}",
            "--grpc-address=127.0.0.1", f"--grpc-port={s.grpc_port}",
            "--metrics-address=127.0.0.1", f"--metrics-port={s.metrics_port}",
            "--allow-metrics=true", "--allow-gpu-metrics=false", "--allow-cpu-metrics=true",
            "--metrics-config=histogram_latencies=true",
            "--exit-timeout-secs=5", "--log-verbose=0",
        ]  # fmt: skip

    def start(self) -> None:
        """Write the repository and launch the server (returns immediately)."""
        if self.alive():
            return
        if self.proc is not None:  # died: its Python stubs may linger in its group
            _signal_group(self.proc.pid, signal.SIGKILL)
        repo = write_model_repository(self.spec, self.dist, self.model_files)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(repo),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=server_env(self.dist),
                start_new_session=True,  # its own process group: stop() reaps the stubs too
            )

    async def ready(self, session: aiohttp.ClientSession | None = None) -> bool:
        """True when the process runs and ``/v2/health/ready`` answers 200."""
        if not self.alive():
            return False
        url = f"{self.spec.http_url}/v2/health/ready"
        try:
            if session is None:
                async with aiohttp.ClientSession() as own, own.get(url) as resp:
                    return resp.status == 200
            async with session.get(url) as resp:
                return resp.status == 200
        except aiohttp.ClientError:
            return False

    async def wait_ready(self, limit_s: float = 60.0) -> float:
        """Wait until ready; return the seconds it took. Raises on exit or timeout."""
        start = time.monotonic()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while not await self.ready(session):
                if not self.alive():
                    raise RuntimeError(f"tritonserver exited; log: {self.log_tail()}")
                if time.monotonic() - start > limit_s:
                    raise TimeoutError(f"tritonserver not ready in {limit_s}s: {self.log_tail()}")
                await asyncio.sleep(0.1)
        return time.monotonic() - start

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the server's process group, SIGKILL it after ``timeout``."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout)
        _signal_group(proc.pid, signal.SIGKILL)  # stray stubs left in the group

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
