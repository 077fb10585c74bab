"""One llama.cpp generation, token by token, on the thread that owns the model.

:func:`run_generation` drives ``Llama.generate`` (which keeps the KV cache of the
longest common prompt prefix between requests) with OpenAI's sampling settings and
hands each token to ``emit`` as a :class:`~tierserve.engine.backend.Chunk` as soon as
it is sampled:

* the prompt prefix cached from the previous request is reused, except for a request
  with a ``seed`` (see :func:`run_generation`);
* sampling: ``temperature`` (0 is greedy) and ``top_p`` only (llama.cpp's own top-k,
  min-p and repeat penalty are switched off, as OpenAI's API has none); the sampler is
  seeded per request (``seed``, else a fresh random one), so temperature 0, or any
  temperature with a seed, reproduces;
* log-probabilities come from the logits of the position that produced the token, read
  before the next decode overwrites them, as a log-softmax over the vocabulary: no
  ``logits_all`` (which keeps a row of logits for every position of the context) is
  needed, and they cost nothing unless the request asks for them;
* text: bytes are decoded incrementally (a multi-byte character split over tokens comes
  out whole), and text that might be the start of a ``stop`` string is held back until
  it is not; the stop string itself is not returned (OpenAI's rule);
* the end: an end-of-generation token (``stop``, unless ``ignore_eos``), a stop string
  (``stop``), ``max_tokens`` (``length``) or ``cancelled`` being set (the client left).
"""

from __future__ import annotations

import codecs
import random
import threading
from collections.abc import Callable, Sequence

import llama_cpp
import numpy as np

from tierserve.engine.backend import Chunk, Prepared, TokenOut


class TextStream:
    """Incremental UTF-8 decoding with stop strings held back and cut."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(stops)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._held = ""

    def feed(self, piece: bytes) -> tuple[str, bool]:
        """The text that can go out now, and whether a stop string was reached."""
        self._held += self._decoder.decode(piece)
        hits = [i for i in (self._held.find(s) for s in self.stops) if i >= 0]
        if hits:
            out, self._held = self._held[: min(hits)], ""
            return out, True
        keep = self._held_back()
        cut = len(self._held) - keep
        out, self._held = self._held[:cut], self._held[cut:]
        return out, False

    def _held_back(self) -> int:
        """Length of the longest end of the held text that starts some stop string."""
        best = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(self._held)), best, -1):
                if self._held.endswith(stop[:n]):
                    best = n
                    break
        return best

    def flush(self) -> str:
        out = self._held + self._decoder.decode(b"", final=True)
        self._held = ""
        return out


def _piece(llm: llama_cpp.Llama, token: int) -> bytes:
    return llm.detokenize([token])


def _logprobs(llm: llama_cpp.Llama, token: int, text: str, top_n: int) -> TokenOut:
    """The token with its log-probability and ``top_n`` alternatives, from the logits
    llama.cpp holds for the last decoded position."""
    n_vocab = llm.n_vocab()
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1),
                                   shape=(n_vocab,)).astype(np.float64)
    peak = float(logits.max())
    log_z = peak + float(np.log(np.exp(logits - peak).sum()))
    top: tuple[tuple[str, float], ...] = ()
    if top_n > 0:
        best = np.argpartition(logits, -top_n)[-top_n:]
        best = best[np.argsort(-logits[best])]
        top = tuple((_piece(llm, int(i)).decode(errors="replace"), float(logits[i]) - log_z)
                    for i in best)
    return TokenOut(text, float(logits[token]) - log_z, top)


def is_end_of_generation(llm: llama_cpp.Llama, token: int) -> bool:
    return bool(llama_cpp.llama_vocab_is_eog(llama_cpp.llama_model_get_vocab(llm.model), token))


def run_generation(llm: llama_cpp.Llama, prep: Prepared, emit: Callable[[Chunk], None],
                   cancelled: threading.Event) -> None:
    """Generate ``prep`` on ``llm``, calling ``emit`` per token; the last chunk carries the
    finish reason (nothing more is emitted when ``cancelled`` is set)."""
    s = prep.req.sampling
    llm.set_seed(s.seed if s.seed is not None else random.SystemRandom().getrandbits(31))
    if s.seed is not None:
        # A seeded request asks to be reproducible: evaluate the whole prompt afresh.
        # Reusing a cached prefix evaluates the rest in a different batch split, whose
        # float rounding can flip a greedy choice (seen with Gemma-3 after a chat turn).
        llm.reset()  # type: ignore[no-untyped-call]  # llama_cpp leaves it unannotated
    tokens = llm.generate(
        list(prep.token_ids), temp=1.0 if s.temperature is None else s.temperature,
        top_p=1.0 if s.top_p is None else s.top_p, top_k=0, min_p=0.0, typical_p=1.0,
        repeat_penalty=1.0)  # fmt: skip
    text = TextStream(s.stop)
    count = 0
    try:
        for token in tokens:
            if cancelled.is_set():
                return
            if not s.ignore_eos and is_end_of_generation(llm, token):
                break
            count += 1
            piece = _piece(llm, token)
            token_text = piece.decode(errors="replace")
            out = (_logprobs(llm, token, token_text, s.top_logprobs) if s.logprobs
                   else TokenOut(token_text))
            visible, stopped = text.feed(piece)
            if stopped or count >= prep.max_tokens:
                tail = "" if stopped else text.flush()
                emit(Chunk(visible + tail, (out,), "stop" if stopped else "length"))
                return
            emit(Chunk(visible, (out,)))
    finally:
        tokens.close()
    emit(Chunk(text.flush(), (), "stop"))
