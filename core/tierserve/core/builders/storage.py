"""Where an engine's pod finds its model file: the storage initializer and its volume.

Engines that load a model file Tierserve fetches (``engine: llamacpp``) get, as KServe's
InferenceServices do, an init container that runs ``tierserve storage-init --uri URI
--dest /mnt/models`` (:func:`tierserve.engine.model_source.resolve`) into a volume the
engine container mounts at the same path. Per URI scheme:

* ``hf://``, ``s3://``, ``gs://``, ``pypi://``: the init container fetches the file into
  an ``emptyDir``, or, with ``spec.model.cacheClaim``, into a directory of that claim
  (one per URI, ``subPath``) that later replicas and restarts find filled (the resolver
  skips a file that is already there);
* ``pvc://CLAIM/PATH``: the claim is mounted read-only at ``/mnt/models``, nothing copied;
* ``file:///PATH``: the file is in the engine's image; no volume.

Credentials reach the init container as the engine's do (``secrets.hfToken`` as
``HF_TOKEN``, ``secrets.env`` for S3 or GCS: references, never values); so do
``spec.env`` (e.g. ``AWS_ENDPOINT_URL`` for an S3-compatible store) and, for ``hf://``,
``spec.model.revision`` (``--revision``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from tierserve.core.builders.common import BuildContext, Manifest, env, model_path

MODEL_DIR = "/mnt/models"
VOLUME = "model-store"
INIT_CONTAINER = "storage-initializer"
FETCHED_ENGINES = ("llamacpp",)  # engines that load a file Tierserve fetches for them


@dataclass(frozen=True)
class ModelStore:
    """The pod-spec pieces that put the model file at :attr:`model_path`."""

    model_path: str  # what the engine loads
    init_containers: list[Manifest] = field(default_factory=list)
    volumes: list[Manifest] = field(default_factory=list)
    mounts: list[Manifest] = field(default_factory=list)  # for the engine container


def _split(uri: str) -> tuple[str, str]:
    scheme, _, rest = uri.partition("://")
    return scheme, rest


def uri_dir_name(uri: str) -> str:
    """A directory name for one URI: readable (its file name) and unique (a digest of
    the URI). The claim's cache and the engines' local cache both use it."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", PurePosixPath(_split(uri)[1]).name)[:80]
    return f"{name}-{hashlib.sha256(uri.encode()).hexdigest()[:12]}"


def cache_dir(uri: str) -> str:
    """The claim's directory for one URI."""
    return f"tierserve-models/{uri_dir_name(uri)}"


def _init_container(ctx: BuildContext, mount: Manifest) -> Manifest:
    model = ctx.spec.model
    args = ["--uri", model.uri, "--dest", MODEL_DIR]
    if model.revision and model.uri.startswith("hf://"):
        args += ["--revision", model.revision]
    return {
        "name": INIT_CONTAINER,
        "image": ctx.settings.images.storage_initializer,
        "command": ["tierserve", "storage-init"],
        "args": args,
        "env": env(ctx),
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"},
                      "limits": {"memory": "1Gi"}},
        "volumeMounts": [mount],
    }


def _copied(ctx: BuildContext, rest: str) -> ModelStore:
    claim = ctx.spec.model.cache_claim
    mount: Manifest = {"name": VOLUME, "mountPath": MODEL_DIR}
    if claim:
        volume: Manifest = {"name": VOLUME, "persistentVolumeClaim": {"claimName": claim}}
        mount["subPath"] = cache_dir(ctx.spec.model.uri)
    else:
        volume = {"name": VOLUME, "emptyDir": {}}
    engine_mount = {**mount, "readOnly": True}
    return ModelStore(model_path=f"{MODEL_DIR}/{PurePosixPath(rest).name}",
                      init_containers=[_init_container(ctx, mount)],
                      volumes=[volume], mounts=[engine_mount])


def model_store(ctx: BuildContext) -> ModelStore:
    """Init container, volume and mount for the deployment's model URI; nothing for
    engines that fetch their weights themselves (vLLM, TensorRT-LLM, simulated)."""
    if ctx.spec.engine not in FETCHED_ENGINES:
        return ModelStore(model_path=model_path(ctx))
    scheme, rest = _split(ctx.spec.model.uri)
    if scheme == "file":
        return ModelStore(model_path=rest)
    if scheme == "pvc":
        claim, _, path = rest.partition("/")
        return ModelStore(
            model_path=f"{MODEL_DIR}/{path}",
            volumes=[{"name": VOLUME,
                      "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}],
            mounts=[{"name": VOLUME, "mountPath": MODEL_DIR, "readOnly": True}])
    return _copied(ctx, rest)
