"""A transport that records what is written to it, for protocol tests without sockets."""

from __future__ import annotations

import asyncio


class RecordingTransport(asyncio.Transport):
    """Every ``write`` kept in ``written``; never closing, never buffering, flow control
    and ``close`` accepted and ignored."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass
