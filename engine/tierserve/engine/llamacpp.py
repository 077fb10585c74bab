"""llama.cpp (through llama-cpp-python) as a :class:`~tierserve.engine.backend.Backend`.

One ``Llama`` object per replica holds the GGUF model and one context, and
llama-cpp-python runs **one sequence at a time** on it (it has no batching across
requests). So requests queue FIFO for the model (``vllm:num_requests_waiting``), one
runs (``vllm:num_requests_running`` is 0 or 1), and the KV-cache gauge is the running
sequence's share of the context (its prompt and output tokens over ``n_ctx``; the prefix
kept between requests for reuse is not counted, as vLLM does not count cached blocks).
Every llama.cpp call that takes time (loading, decoding) runs on one worker thread that
owns the model, so the event loop stays free to accept, stream and answer ``/health``
and ``/metrics``; tokens cross to the loop as they are sampled.

Prompts: chat requests render through the model's chat template (the GGUF's
``tokenizer.chat_template``, or ``chat_template`` here, which wins), then everything is
counted by the model's own tokenizer, so ``usage`` is exact. Generation itself:
:mod:`tierserve.engine.llamacpp_gen`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import AsyncGenerator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from tierserve.engine.backend import Chunk, EngineState, NotReady, Prepared
from tierserve.engine.chat_template import ChatTemplate, TemplateError, load_template
from tierserve.engine.llamacpp_gen import run_generation
from tierserve.engine.model_source import DEFAULT_CACHE, resolve
from tierserve.engine.openai_api import ApiError, GenRequest, check_context

if TYPE_CHECKING:
    import llama_cpp

_END = object()
_log = logging.getLogger(__name__)


class LlamaCppSettings(BaseModel):
    """How one replica loads its model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(min_length=1)  # a model URI (tierserve.engine.model_source) or path
    threads: int | None = Field(default=None, ge=1)  # None: llama.cpp's default
    context: int = Field(default=2048, ge=64)  # n_ctx: prompt + output tokens
    chat_template: str | None = None  # a template or a file; None: the GGUF's own
    stop: tuple[str, ...] = ()  # stop strings added to every request's (base models)
    logits_all: bool = False  # keep logits of every position (only to measure its cost)
    cache_dir: Path = DEFAULT_CACHE  # where assembled model files are kept


class LlamaCppBackend:
    """One llama.cpp replica. ``start`` loads the model on its worker thread."""

    def __init__(self, settings: LlamaCppSettings) -> None:
        self.settings = settings
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacpp")
        self._llm: llama_cpp.Llama | None = None
        self._template: ChatTemplate | None = None
        self._slot = asyncio.Lock()  # one sequence at a time; waiters queue FIFO
        self._waiting = 0
        self._running = False
        self._occupied = 0  # context tokens the running sequence holds (prompt + output)
        self._loading: Future[None] | None = None
        self.model_path: Path | None = None
        self.load_error: BaseException | None = None

    @property
    def ready(self) -> bool:
        return self._llm is not None

    @property
    def max_model_len(self) -> int:
        return self.settings.context

    def _begin(self) -> Future[None]:
        if self._loading is None:
            self._loading = self._pool.submit(self._load)
        return self._loading

    def load(self) -> None:
        """Load the model now (blocking); raises what loading raised."""
        self._begin().result()

    async def start(self) -> None:
        """Begin loading on the worker thread (once); ``ready`` turns true when done."""
        self._begin()

    async def wait_loaded(self) -> None:
        """Wait until the model is loaded (raises what loading raised)."""
        await asyncio.wrap_future(self._begin())

    def _load(self) -> None:
        try:
            self._llm, self._template = load_model(self.settings)
        except BaseException as exc:
            self.load_error = exc
            _log.exception("loading %s failed", self.settings.model)
            raise

    async def stop(self) -> None:
        if self._loading is not None:
            with contextlib.suppress(Exception):
                await asyncio.wrap_future(self._loading)
        llm, self._llm = self._llm, None
        if llm is not None:
            await asyncio.get_running_loop().run_in_executor(self._pool, llm.close)
        self._pool.shutdown(wait=False)

    def prepare(self, req: GenRequest) -> Prepared:
        llm = self._require()
        ids = self._prompt_ids(llm, req)
        if not ids:
            raise ApiError(400, "the prompt is empty once tokenized", "prompt", "invalid_value")
        check_context(len(ids), req.limit, self.settings.context, req.max_tokens is not None)
        if self.settings.stop:
            req = _with_stops(req, self.settings.stop)
        return Prepared(req, len(ids), req.limit, tuple(ids))

    def _prompt_ids(self, llm: llama_cpp.Llama, req: GenRequest) -> list[int]:
        if isinstance(req.prompt, tuple):
            bad = [t for t in req.prompt if not 0 <= t < llm.n_vocab()]
            if bad:
                raise ApiError(400, f"token ids out of the vocabulary: {bad[:5]}", "prompt",
                               "invalid_value")
            return list(req.prompt)
        if req.kind == "chat":
            if self._template is None:
                raise ApiError(400, "this model has no chat template: start the engine with "
                               "a chat template, or use /v1/completions", "messages",
                               "no_chat_template")
            try:
                text = self._template.render(req.messages)
            except TemplateError as exc:
                raise ApiError(400, str(exc), "messages", "invalid_value") from None
        else:
            text = req.prompt
        return tokenize(llm, text)

    def _require(self) -> llama_cpp.Llama:
        if self._llm is None:
            raise NotReady(f"model {self.settings.model} is not loaded")
        return self._llm

    async def generate(self, prepared: Prepared) -> AsyncGenerator[Chunk, None]:
        llm = self._require()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        cancelled = threading.Event()
        self._waiting += 1
        try:
            await self._slot.acquire()
        finally:
            self._waiting -= 1
        self._running = True
        self._occupied = prepared.prompt_tokens

        def emit(chunk: Chunk) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, chunk)

        def work() -> None:
            try:
                run_generation(llm, prepared, emit, cancelled)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _END)

        job = loop.run_in_executor(self._pool, work)
        try:
            while (item := await queue.get()) is not _END:
                assert isinstance(item, Chunk)
                self._occupied += len(item.tokens)
                yield item
            if job.done() and job.exception() is not None:
                raise RuntimeError(f"llama.cpp failed: {job.exception()}")
        finally:
            cancelled.set()  # a consumer that left stops the worker at the next token
            try:
                with contextlib.suppress(Exception):
                    await asyncio.shield(job)
            finally:  # the pool's one worker keeps jobs in order even if released early
                self._running = False
                self._slot.release()

    def state(self) -> EngineState:
        kv = min(1.0, self._occupied / self.settings.context) if self._running else 0.0
        return EngineState(int(self._running), self._waiting, kv)


def _with_stops(req: GenRequest, stops: tuple[str, ...]) -> GenRequest:
    import dataclasses

    merged = tuple(dict.fromkeys((*req.sampling.stop, *stops)))
    return dataclasses.replace(req, sampling=dataclasses.replace(req.sampling, stop=merged))


def tokenize(llm: llama_cpp.Llama, text: str) -> list[int]:
    """``text`` as the model's tokens, with its BOS when the model wants one and the
    text (a rendered template) does not already start with it."""
    wants_bos = llm.metadata.get("tokenizer.ggml.add_bos_token", "false") == "true"
    bos = _token_text(llm, llm.token_bos())
    return llm.tokenize(text.encode(), add_bos=wants_bos and not (bos and text.startswith(bos)),
                        special=True)


def _token_text(llm: llama_cpp.Llama, token: int) -> str:
    return llm.detokenize([token], special=True).decode(errors="replace") if token >= 0 else ""


def load_model(settings: LlamaCppSettings) -> tuple[llama_cpp.Llama, ChatTemplate | None]:
    """Resolve the model URI, load it and compile its chat template (blocking)."""
    import llama_cpp

    path = resolve(settings.model, settings.cache_dir, in_place=True)
    threads = settings.threads or max(1, (os.cpu_count() or 2) // 2)
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=settings.context, n_threads=threads,
                          n_threads_batch=threads, logits_all=settings.logits_all,
                          verbose=False)
    source = load_template(settings.chat_template) or llm.metadata.get("tokenizer.chat_template")
    if not source:
        return llm, None
    bos, eos = _token_text(llm, llm.token_bos()), _token_text(llm, llm.token_eos())
    return llm, ChatTemplate(source, bos, eos)
