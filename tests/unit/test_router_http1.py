"""The lean upstream client's connection: failures before the request are not lost."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from tests.unit.transports import RecordingTransport
from tierserve.routing import http1
from tierserve.routing.pool import Pool


def test_a_connection_reset_before_the_request_fails_the_send() -> None:
    lost: list[http1._Conn] = []
    conn = http1._Conn(lost.append)
    transport = RecordingTransport()
    conn.connection_made(transport)
    conn.connection_lost(ConnectionResetError())  # a dying server reset it after accept
    with pytest.raises(http1.ConnectFailed):
        conn.send(b"POST / HTTP/1.1\r\n\r\n")
    assert transport.written == [] and lost == [conn]


async def test_a_server_that_resets_every_connection_fails_fast_not_at_the_deadline() -> None:
    async def reset(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        sock = w.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        w.close()

    server = await asyncio.start_server(reset, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = Pool("127.0.0.1", port)
    try:
        for _ in range(20):
            # A deadline far beyond the test's own timeout: reaching it would hang the test.
            with pytest.raises(http1.ConnectFailed):
                await pool.start("/v1/x", b"{}", timeout_s=3600, connect_timeout_s=5)
    finally:
        pool.close()
        server.close()
        await server.wait_closed()
