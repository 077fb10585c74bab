"""``tierserve engine``: run the simulated OpenAI-compatible engine, or list profiles."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from tierserve.core.profiles import PROFILES, UnknownProfile, get_profile


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("engine", help="run the simulated LLM engine (OpenAI API)")
    p.add_argument("--profile", help="latency profile (see --list-profiles)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--served-name", help="model name clients use (default: the profile's)")
    p.add_argument("--cold-start-s", type=float, default=0.0, help="not ready for this long")
    p.add_argument("--list-profiles", action="store_true", help="print the profiles and exit")
    p.set_defaults(func=run)


def _list() -> int:
    for prof in PROFILES.values():
        print(f"{prof.name:26} {prof.model:36} {prof.gpu:18} {prof.source}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.list_profiles:
        return _list()
    if not args.profile:
        print("tierserve engine: --profile is required (see --list-profiles)")
        return 2
    try:
        profile = get_profile(args.profile)
    except UnknownProfile as exc:
        print(f"tierserve engine: {exc}")
        return 2
    from tierserve.engine.server import EngineConfig, serve

    config = EngineConfig(profile, args.served_name or profile.model, args.cold_start_s)
    print(f"engine {profile.name} serving {config.served_name!r} on {args.host}:{args.port}",
          flush=True)  # fmt: skip
    with contextlib.suppress(KeyboardInterrupt), _event_loop_runner() as runner:
        runner.run(serve(config, args.host, args.port))
    return 0


def _event_loop_runner() -> asyncio.Runner:
    """uvloop when installed, else the default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)
