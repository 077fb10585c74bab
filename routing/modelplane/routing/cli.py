"""``modelplane router --config FILE --port PORT [--host 127.0.0.1]``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from aiohttp import web

from modelplane.routing.app import Router, create_app
from modelplane.routing.config import ConfigError, load_config
from modelplane.routing.reload import FileWatcher


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("router", help="run the OpenAI-compatible router")
    p.add_argument("--config", type=Path, required=True, help="router YAML (docs/router.md)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--reload-interval", type=float, default=1.0,
                   help="seconds between config file checks (SIGHUP reloads at once)")
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        import uvloop
        uvloop.install()
    except ImportError:  # uvloop is optional on platforms without it
        pass
    asyncio.run(_serve(config_path=args.config, router=Router(config), host=args.host,
                       port=args.port, interval=args.reload_interval))
    return 0


async def _serve(*, config_path: Path, router: Router, host: str, port: int,
                 interval: float) -> None:
    app = create_app(router)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=30)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096, reuse_address=True)
    await site.start()
    logging.getLogger(__name__).info("router listening on http://%s:%d", host, port)
    watcher = asyncio.create_task(FileWatcher(config_path, router, interval).run())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()  # then drain: cleanup lets in-flight requests finish
    finally:
        watcher.cancel()
        await runner.cleanup()
