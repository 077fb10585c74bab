"""Hot reload from a config file: poll its mtime/size (and on SIGHUP), apply if valid.

An invalid file is logged with the validation message and the running config stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from tierserve.core.routerconfig import ConfigError, load_config
from tierserve.routing.app import Router

log = logging.getLogger(__name__)


class FileWatcher:
    def __init__(self, path: Path, router: Router, interval_s: float = 1.0) -> None:
        self._path, self._router, self._interval = path, router, interval_s
        self._stamp = self._read_stamp()
        self._kick = asyncio.Event()

    def _read_stamp(self) -> tuple[float, int] | None:
        try:
            st = self._path.stat()
        except OSError:
            return None
        return st.st_mtime, st.st_size

    def reload_now(self) -> None:
        self._kick.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        # Not possible off the main thread (tests); polling still works there.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, self.reload_now)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self._interval)
            forced, stamp = self._kick.is_set(), self._read_stamp()
            self._kick.clear()
            if forced or stamp != self._stamp:
                self._stamp = stamp
                self.apply()

    def apply(self) -> bool:
        try:
            self._router.apply_config(load_config(self._path))
        except ConfigError as exc:
            log.error("config reload rejected, keeping the running config: %s", exc)
            return False
        return True
