"""A TCP proxy on 127.0.0.1 that a test can cut: a network partition between one process
and a real server, without stopping the server for everyone else.

``TcpProxy(host, port)`` forwards every connection to ``host:port``. :meth:`blackhole`
drops every open connection's traffic and accepts new connections without ever
answering (a partition: requests hang until the client's own timeout, the harder case
for a client); :meth:`close` stops it. Threads, so it works beside any event loop.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._blackholed = threading.Event()
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True, name="tcpproxy-accept").start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._sockets.append(client)
            if self._blackholed.is_set():
                continue  # accepted, never answered
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.append(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if self._blackholed.is_set():
                    continue  # swallowed: the other side waits
                dst.sendall(data)
        if not self._blackholed.is_set():
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def blackhole(self) -> None:
        """From now on nothing gets through, either way; connections stay open."""
        self._blackholed.set()

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            sockets, self._sockets = [self._listener, *self._sockets], []
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in accept/recv
            s.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
