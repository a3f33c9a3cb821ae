"""A loopback TCP proxy in front of a real server that can stop forwarding mid-session.

``StallingProxy(port)`` listens on 127.0.0.1 and relays every connection to
``127.0.0.1:port``. After ``stall()`` (or as soon as the client sends bytes containing
``stall_on``), it stops relaying in both directions but keeps every socket open and
readable by the kernel, like a hung server, a frozen VM or a stuck middlebox: the client's
writes are acknowledged, its keepalive probes answered, and no reply ever comes. Nothing is
sent anywhere but loopback; ``close()`` ends every connection and the listener.
"""

from __future__ import annotations

import select
import socket
import threading
from types import TracebackType


class StallingProxy:
    def __init__(self, target_port: int, stall_on: bytes | None = None) -> None:
        self.target_port = target_port
        self.stall_on = stall_on
        self.stalled = threading.Event()
        self._closed = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def stall(self) -> None:
        self.stalled.set()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            with self._lock:
                self._sockets += [client, upstream]
            thread = threading.Thread(target=self._relay, args=(client, upstream), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        peer = {client: upstream, upstream: client}
        while not self._closed.is_set():
            if self.stalled.is_set():  # hold the sockets open, read nothing, send nothing
                self._closed.wait(0.2)
                continue
            try:
                ready, _, _ = select.select([client, upstream], [], [], 0.2)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client and self.stall_on is not None and self.stall_on in data:
                        self.stalled.set()  # this message never reaches the server
                        break
                    peer[sock].sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()
        for thread in self._threads:
            thread.join(timeout=2)

    def __enter__(self) -> StallingProxy:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
