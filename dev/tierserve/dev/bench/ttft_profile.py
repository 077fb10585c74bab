"""Where a stream's first chunk waits inside the router: stage timestamps, loop lag, GC.

``python -m tierserve.dev.bench.ttft_profile --config router.yaml --port P --out F.json``
runs the router in this process with timestamping wrappers around the stages of a
streamed request (the router's code is not changed; the wrappers cost a few
microseconds per request), a loop-lag probe and GC pause timing; on SIGTERM or SIGINT it
writes percentiles (milliseconds) to ``--out``. Stages, per streamed request:

* ``task_start``: the request's last byte was parsed -> its handler task runs
* ``handler``: the handler task starts -> the body is parsed (``Dispatcher.run``)
* ``pick``: -> the upstream request starts (admission, replica pick, ``Pool.start``)
* ``connect``: -> the request is written (a pooled connection, or a new one)
* ``upstream_head``: written -> the answer's head arrives (the backend's own time)
* ``head_wake``: head arrived -> the waiting task runs again
* ``upstream_first``: head -> the first body chunk arrives (the backend's time)
* ``relay_first``: -> the first chunk is written to the client (head included; the
  upstream connection's read callback writes it, ``respond.Commit``)
* ``first_wake``: first chunk arrived -> the task has it (off the TTFT path since the
  first chunk is written from the read callback)
* ``router_total``: ``task_start`` start to ``relay_first`` end, less the backend's time

``loop_lag`` is how late a 5 ms timer fires (the wait of anything that becomes ready);
``gc`` lists collection pauses by generation (CPU time); ``cpu_ms_per_stream`` is the
process's CPU time over the measured window per stream (robust to other load). Used to
write the profile in ``docs/router.md``; ``tierserve-dev bench router`` measures the
figures end to end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import gc
import json
import signal
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

from tierserve.routing.abtest import percentile

_now = time.perf_counter
_CUR: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar(
    "ttft_profile", default=None)
STAGES = (("task_start", "t_arrived", "t_serve"), ("handler", "t_serve", "t_dispatch"),
          ("pick", "t_dispatch", "t_start"), ("connect", "t_start", "t_sent"),
          ("upstream_head", "t_sent", "t_head"), ("head_wake", "t_head", "t_head_seen"),
          ("upstream_first", "t_head", "t_body"), ("relay_first", "t_body", "t_written"),
          ("first_wake", "t_body", "t_open"))


class Recorder:
    """Stage timestamps per streamed request, loop lag samples and GC pauses."""

    def __init__(self, skip_s: float = 0.0) -> None:
        self.since = _now() + skip_s  # samples before this (the warm-up) are dropped
        self.records: list[dict[str, float]] = []
        self.lag: list[float] = []
        self.gc: dict[str, list[float]] = {}
        self._gc_start = 0.0
        self.cpu_start: float | None = None
        self.tracked: list[int] = []

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        # CPU time, not wall time: on a shared machine a pause's wall time also counts
        # whoever else ran meanwhile.
        if phase == "start":
            self._gc_start = time.thread_time()
        elif _now() >= self.since:
            self.gc.setdefault(str(info["generation"]), []).append(
                (time.thread_time() - self._gc_start) * 1000)

    async def probe(self, period: float = 0.005) -> None:
        n = 0
        while True:
            n += 1
            if n % 400 == 0 and _now() >= self.since:  # every 2 s: what a full GC scans
                self.tracked.append(len(gc.get_objects()))
            due = _now() + period
            await asyncio.sleep(period)
            if self.cpu_start is None and due >= self.since:
                self.cpu_start = time.process_time()
            if due >= self.since:
                self.lag.append(max(0.0, _now() - due) * 1000)

    def summary(self) -> dict[str, Any]:
        done = [r for r in self.records if "t_written" in r and r["t_serve"] >= self.since]
        out: dict[str, Any] = {"streams": len(done)}
        if self.cpu_start is not None and done:
            out["cpu_ms_per_stream"] = _r((time.process_time() - self.cpu_start) * 1000
                                          / len(done))
        for name, a, b in STAGES:
            out[name] = _pcts([(r[b] - r[a]) * 1000 for r in done if a in r and b in r])
        backend = [(r["t_body"] - r["t_sent"]) for r in done if "t_body" in r]
        total = [(r["t_written"] - r.get("t_arrived", r["t_serve"])) for r in done]
        out["router_total"] = _pcts([(t - b) * 1000 for t, b in zip(total, backend,
                                                                    strict=False)])
        out["loop_lag"] = _pcts(self.lag)
        out["gc_tracked_objects"] = self.tracked
        out["gc"] = {g: {"count": len(v), **_pcts(v)} for g, v in sorted(self.gc.items())}
        return out


def _pcts(values: list[float]) -> dict[str, float | None]:
    return {"p50": _r(percentile(values, 50)), "p99": _r(percentile(values, 99)),
            "max": _r(max(values)) if values else None}


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def _stamp_async(fn: Callable[..., Any], key: str,
                 end_key: str | None = None) -> Callable[..., Any]:
    """Wrap a coroutine function: stamp ``key`` on entry (``end_key`` on return)."""
    @wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        cur = _CUR.get()
        if cur is not None:
            cur.setdefault(key, _now())
        result = await fn(*args, **kwargs)
        if cur is not None and end_key is not None:
            cur.setdefault(end_key, _now())
        return result
    return wrapper


def _root(fn: Callable[..., Any], rec: Recorder) -> Callable[..., Any]:
    """Wrap the handler: a new record per request (one task serves a whole connection)."""
    @wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        cur = {"t_serve": _now()}
        conn = args[1]._conn  # the Request's connection (one request at a time)
        if "prof_arrived" in conn.__dict__:
            cur["t_arrived"] = conn.__dict__["prof_arrived"]
        conn.__dict__["prof_cur"] = cur
        rec.records.append(cur)
        token = _CUR.set(cur)
        try:
            return await fn(*args, **kwargs)
        finally:
            _CUR.reset(token)
    return wrapper


def install(rec: Recorder) -> None:
    """Patch the router's stages with timestamps (this process only)."""
    from tierserve.routing import dispatch, handlers, http1, pool, respond, server, upstream

    handlers.Handlers._serve = _root(  # type: ignore[method-assign]
        handlers.Handlers._serve, rec)
    dispatch.Dispatcher.run = _stamp_async(  # type: ignore[method-assign]
        dispatch.Dispatcher.run, "t_dispatch")
    pool.Pool.start = _stamp_async(pool.Pool.start, "t_start",  # type: ignore[method-assign]
                                   end_key="t_head_seen")
    upstream.UpstreamClient.open = _stamp_async(  # type: ignore[method-assign]
        upstream.UpstreamClient.open, "t_open_call", end_key="t_open")
    send, head, body = http1._Conn.send, http1._Conn.on_headers_complete, http1._Conn.on_body

    def sent(self: http1._Conn, data: bytes, on_first: http1.OnFirst | None = None) -> None:
        cur = _CUR.get()
        self.__dict__["prof"] = cur
        if cur is not None:
            cur["t_sent"] = _now()
        send(self, data, on_first)

    def got_head(self: http1._Conn) -> None:
        cur = self.__dict__.get("prof")
        if cur is not None:
            cur.setdefault("t_head", _now())
        head(self)

    def got_body(self: http1._Conn, body_: bytes) -> None:
        cur = self.__dict__.get("prof")
        if cur is not None:
            cur.setdefault("t_body", _now())
        body(self, body_)

    http1._Conn.send = sent  # type: ignore[method-assign]
    http1._Conn.on_headers_complete = got_head  # type: ignore[method-assign]
    http1._Conn.on_body = got_body  # type: ignore[method-assign,assignment]
    commit, complete = respond.Commit.__call__, server.Conn.on_message_complete

    def committed(self: respond.Commit, first: bytes) -> None:
        done = self.done
        commit(self, first)
        cur = self._request._conn.__dict__.get("prof_cur")
        if cur is not None and not done:
            cur["t_written"] = _now()  # head and first chunk written just before

    def arrived(self: server.Conn) -> None:
        self.__dict__["prof_arrived"] = _now()
        complete(self)

    respond.Commit.__call__ = committed  # type: ignore[method-assign]
    server.Conn.on_message_complete = arrived  # type: ignore[method-assign]


async def _serve(config: Path, port: int, skip_s: float) -> dict[str, Any]:
    from tierserve.core.routerconfig import load_config
    from tierserve.routing.app import Router
    from tierserve.routing.cli import _serve as serve_router
    from tierserve.routing.reload import FileWatcher

    rec = Recorder(skip_s)
    install(rec)
    gc.callbacks.append(rec.on_gc)
    probe = asyncio.create_task(rec.probe())
    router = Router(load_config(config))
    try:
        await serve_router(source=FileWatcher(config, router, 1.0).run, router=router,
                           host="127.0.0.1", port=port)
    finally:
        probe.cancel()
    return rec.summary()


def _set_gc(spec: str) -> None:
    """``--gc``: 'freeze' and/or 'T0/T1/T2', instead of the router's ``tune_gc``."""
    for part in filter(None, spec.split(",")):
        if part == "default":
            continue  # CPython's own thresholds, nothing frozen
        if part == "freeze":
            gc.collect()
            gc.freeze()
        else:
            t0, t1, t2 = (int(v) for v in part.split("/"))
            gc.set_threshold(t0, t1, t2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--gc", default="",
                   help="'freeze' and/or thresholds 'T0/T1/T2' (comma-separated) or 'default': "
                        "applied instead of the router's tune_gc (experiments)")
    p.add_argument("--skip-s", type=float, default=8.0,
                   help="seconds of samples dropped at the start (startup and warm-up)")
    a = p.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if a.gc:
        from tierserve.routing import cli

        cli.tune_gc = lambda: _set_gc(a.gc)  # type: ignore[attr-defined] # called at listen
    a.out.write_text(json.dumps(asyncio.run(_serve(a.config, a.port, a.skip_s)), indent=1))


if __name__ == "__main__":
    main()
