"""The stream relay writes once per upstream read, and a complete stream's last events
and the end of the answer go out in one write (they were three)."""

from __future__ import annotations

import asyncio

from tests.unit.transports import RecordingTransport
from tierserve.routing import http1, server
from tierserve.routing.respond import _Sink


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
TOKEN = b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n'
FINISH = b'data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'


async def _relaying() -> tuple[http1._Conn, server.Request, RecordingTransport, _Sink,
                               asyncio.Task[None]]:
    """An upstream connection whose first chunk is in, piping into a client's sink."""
    client = RecordingTransport()
    conn = server.Conn(server.HttpServer(_no_handler, body_limit=lambda: 1024,
                                         new_id=lambda: "id"))
    conn.connection_made(client)
    request = server.Request(conn, "POST", "/v1/chat/completions", {}, b"{}", None,
                             keep_alive=True, http10=False)
    upstream = http1._Conn(lambda _c: None)
    upstream.connection_made(RecordingTransport())
    upstream.send(b"POST / HTTP/1.1\r\n\r\n")
    upstream.data_received(HEAD + _chunk(TOKEN))
    first = await upstream.chunk()
    sink = _Sink(request, first, asyncio.get_running_loop().time)
    task = asyncio.get_running_loop().create_task(upstream.pipe(sink))
    await asyncio.sleep(0)
    return upstream, request, client, sink, task


async def _no_handler(_request: server.Request) -> None:
    return None


async def test_one_write_per_read_and_the_end_in_the_last_one() -> None:
    upstream, request, client, sink, task = await _relaying()
    upstream.data_received(_chunk(TOKEN))
    upstream.data_received(_chunk(TOKEN) + _chunk(TOKEN))  # two events in one read
    # the engine's last read: a token, the finish event with [DONE], the last chunk
    upstream.data_received(_chunk(TOKEN) + _chunk(FINISH) + b"0\r\n\r\n")
    await asyncio.wait_for(task, 5)
    assert client.written == [_chunk(TOKEN), _chunk(TOKEN + TOKEN),
                              _chunk(TOKEN + FINISH) + b"0\r\n\r\n"]
    assert request.finished and sink.events == 7  # 5 tokens, the finish event, [DONE]
    request.end_stream()  # the relay's own end: nothing more is written
    assert len(client.written) == 3


async def test_the_end_alone_still_ends_the_answer() -> None:
    upstream, request, client, _sink, task = await _relaying()
    upstream.data_received(_chunk(FINISH))
    upstream.data_received(b"0\r\n\r\n")  # the last chunk in a read of its own
    await asyncio.wait_for(task, 5)
    assert client.written == [_chunk(FINISH), b"0\r\n\r\n"] and request.finished


async def test_a_stream_ending_without_done_is_left_open_for_the_error_event() -> None:
    upstream, request, client, _sink, task = await _relaying()
    upstream.data_received(_chunk(TOKEN) + b"0\r\n\r\n")  # no [DONE]: incomplete
    await asyncio.wait_for(task, 5)
    assert client.written == [_chunk(TOKEN)] and not request.finished
