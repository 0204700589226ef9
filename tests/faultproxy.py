"""A fault-injection TCP proxy between redis-py clients and a loopback redis-server.

``FaultProxy`` listens on 127.0.0.1 (a free port) and forwards every connection to one target
server, so a test can drop a command's reply after Redis ran it, blackhole connections (a silent
peer, like a lost NAT flow), add latency, cut every connection or refuse new ones.

One daemon thread runs a ``selectors`` loop over non-blocking sockets with a buffer per direction,
so it serves sync clients and ``redis.asyncio`` clients on any event loop alike. A fault is in
force when its method returns: settings are read when data arrives, and actions on live
connections run in the proxy thread (woken through a socketpair) while the caller waits.
Connections are "aborted" (an RST through SO_LINGER 0, so the peer gets an error at once) or, after
a side hung up normally, closed with a FIN once what the other side is owed is flushed.
"""

from __future__ import annotations

import collections
import contextlib
import ipaddress
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlparse

__all__ = ["FaultProxy", "ProxiedConnection", "fault_proxy"]

HEAD_SIZE = 4096  # how much of what a client sent first is kept in ProxiedConnection.head
CHUNK = 65536
MAX_BUFFERED = 1 << 20  # stop reading a side while this much waits to be written to the other


def _is_loopback(host: str) -> bool:
    with contextlib.suppress(ValueError):
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    return False


def _abort(sock: socket.socket) -> None:
    """Close ``sock`` with an RST (SO_LINGER 0), so its peer gets an error at once."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class _Side:
    """One socket of a proxied connection and the bytes waiting to be written to it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock: socket.socket | None = sock
        self.out = bytearray()  # ready to send
        self.pending: collections.deque[tuple[float, bytes]] = collections.deque()  # delayed
        self.mask = 0  # events registered with the selector (0: not registered)

    def owed(self) -> int:
        return len(self.out) + sum(len(data) for _, data in self.pending)


class ProxiedConnection:
    """A client connection and its connection to Redis; its state is owned by the proxy thread."""

    def __init__(self, conn_id: int, client: socket.socket, server: socket.socket) -> None:
        self.id = conn_id
        self.head = b""  # the first HEAD_SIZE bytes the client sent
        self.client_bytes = 0  # forwarded client -> server
        self.server_bytes = 0  # forwarded server -> client
        self.blackholed = False
        self.closed = False
        self._client = _Side(client)
        self._server = _Side(server)
        self._sides = (self._client, self._server)
        self._drop_reply = False  # a drop_reply() request was forwarded: drop what Redis sends
        self._flushing: _Side | None = None  # the other side hung up: flush this one, then close
        self._tail = b""  # the client's last bytes, to find a match split across two reads

    def _peer(self, side: _Side) -> _Side:
        return self._server if side is self._client else self._client

    def __repr__(self) -> str:
        state = "closed" if self.closed else "blackholed" if self.blackholed else "open"
        return f"<ProxiedConnection {self.id} {state} head={self.head[:40]!r}>"


class FaultProxy:
    """``with FaultProxy("127.0.0.1", server_port) as proxy: redis.Redis.from_url(proxy.url)``."""

    def __init__(self, target_host: str, target_port: int) -> None:
        if not _is_loopback(target_host):
            raise ValueError(f"FaultProxy only forwards to loopback, not {target_host!r}")
        self.target = (target_host, target_port)
        self.port = 0
        self.dropped = 0  # replies discarded by drop_reply()
        self._lock = threading.Lock()
        self._conns: dict[int, ProxiedConnection] = {}
        self._calls: list[tuple[Callable[[], object], threading.Event]] = []
        self._running = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._sel = selectors.DefaultSelector()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._wake_r, self._wake_w = socket.socketpair()
        self._next_id = 1
        # Fault settings: written by any thread (single attribute writes), read by the proxy thread
        # when data arrives, so one set before a client sends applies to what it sends.
        self._drop: tuple[bytes, int] = (b"", 0)  # (match, count left); under _lock
        self._hole: Callable[[ProxiedConnection], bool] | None = None  # blackhole predicate
        self._delay = 0.0
        self._refusing = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def connections(self) -> list[ProxiedConnection]:
        """A snapshot of the live connections, oldest first."""
        with self._lock:
            return list(self._conns.values())

    def start(self) -> FaultProxy:
        """Listen on 127.0.0.1 (a free port) and start the proxy thread."""
        if self._thread is not None or self._stopping:
            raise RuntimeError("a FaultProxy is started once")
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        for sock in (self._wake_r, self._wake_w):
            sock.setblocking(False)
        self._sel.register(self._listener, selectors.EVENT_READ, "listen")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._running = True
        self._thread = threading.Thread(target=self._run, name=f"faultproxy-{self.port}")
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close every socket and join the thread (within ~2 s); calling it again does nothing."""
        if self._stopping:
            return
        self._stopping = True
        if self._thread is not None:
            self._wake()
            self._thread.join(timeout=2.0)  # it aborts every connection on its way out
        for closable in (self._sel, self._listener, self._wake_r, self._wake_w):
            closable.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- faults: in force when the call returns ---

    def drop_reply(self, match: bytes, count: int = 1) -> None:
        """The next ``count`` client chunks containing ``match`` reach Redis, but its reply to each
        is discarded and that connection is aborted (RST to the client, Redis side closed too)."""
        if not match:
            raise ValueError("match must not be empty")
        with self._lock:
            self._drop = (match, count)

    def blackhole(self, predicate: Callable[[ProxiedConnection], bool] | None = None) -> None:
        """Matching connections (all if ``predicate`` is None), now and until heal(), go silent both
        ways: bytes are read and discarded, nothing is closed. The predicate is tried on the live
        connections now, and on the others each time data arrives (so it can look at ``head``)."""
        self._hole = hole = predicate or (lambda conn: True)
        matching = [conn for conn in self.connections if hole(conn)]
        self._call(lambda: self._silence(matching))

    def heal(self) -> None:
        """End blackhole() and delay() for new traffic. Blackholed connections stay lost, as after
        a real partition: they are aborted (RST), so their clients see an error and reconnect."""
        self._hole, self._delay = None, 0.0
        self._call(lambda: self._close_where(lambda conn: conn.blackholed))

    def delay(self, seconds: float) -> None:
        """Hold every chunk read from now on ``seconds`` before forwarding it, both ways (0: off).
        Order is kept per direction; other connections are not held up."""
        if seconds < 0:
            raise ValueError("delay must be >= 0")
        self._delay = seconds

    def cut_all(self) -> None:
        """Abort every current connection, both sides (RST). New connections work normally."""
        self._call(lambda: self._close_where(lambda conn: True))

    def refuse(self, on: bool = True) -> None:
        """While on, new connections are accepted and aborted at once (RST)."""
        self._refusing = on

    # --- the proxy thread ---

    def _call(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` in the proxy thread (directly if it is not running) and wait for it."""
        done = threading.Event()
        with self._lock:
            queued = self._running and threading.current_thread() is not self._thread
            if queued:
                self._calls.append((fn, done))
        if not queued:  # not started, or its thread has stopped (let it finish its cleanup)
            if self._thread is not None and threading.current_thread() is not self._thread:
                self._thread.join(timeout=2.0)
            fn()
        else:
            self._wake()
            if not done.wait(timeout=2.0):
                raise RuntimeError("the FaultProxy thread did not answer")

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (a wakeup is pending anyway) or closed
            self._wake_w.send(b"x")

    def _run(self) -> None:
        try:
            while not self._stopping:
                dues = [
                    s.pending[0][0] for c in self._conns.values() for s in c._sides if s.pending
                ]
                events = self._sel.select(max(0.0, min(dues) - time.monotonic()) if dues else None)
                self._run_calls()  # before any I/O, so what a control call did applies to it
                for key, mask in events:
                    if key.data == "wake":
                        with contextlib.suppress(OSError):
                            self._wake_r.recv(4096)
                    elif key.data == "listen":
                        self._accept()
                    else:
                        conn, side = key.data
                        if mask & selectors.EVENT_READ and not conn.closed:
                            self._read(conn, side)
                        if mask & selectors.EVENT_WRITE and not conn.closed:
                            self._write(conn, side)
                now = time.monotonic()
                for conn in list(self._conns.values()):
                    self._update(conn, now)
        finally:
            with self._lock:
                self._running = False
            self._run_calls()
            self._close_where(lambda conn: True)

    def _run_calls(self) -> None:
        with self._lock:
            calls, self._calls = self._calls, []
        for fn, done in calls:
            try:
                fn()
            finally:
                done.set()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # BlockingIOError: no more pending connections
                return
            if self._refusing:
                _abort(client)
                continue
            try:
                server = socket.create_connection(self.target, timeout=2.0)
            except OSError:
                _abort(client)
                continue
            for sock in (client, server):
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = ProxiedConnection(self._next_id, client, server)
            self._next_id += 1
            with self._lock:
                self._conns[conn.id] = conn
            self._update(conn, time.monotonic())

    def _silence(self, conns: list[ProxiedConnection]) -> None:
        for conn in conns:
            conn.blackholed = True  # closed ones too: harmless
            for side in conn._sides:
                side.out.clear()
                side.pending.clear()

    def _read(self, conn: ProxiedConnection, side: _Side) -> None:
        assert side.sock is not None
        try:
            data = side.sock.recv(CHUNK)
        except BlockingIOError:
            return
        except OSError:
            self._close(conn, abort=True)
            return
        from_client = side is conn._client
        if from_client and len(conn.head) < HEAD_SIZE:
            conn.head += data[: HEAD_SIZE - len(conn.head)]
        hole = self._hole
        if data and hole is not None and not conn.blackholed:
            with contextlib.suppress(Exception):  # a predicate that fails here is no match
                if hole(conn):
                    self._silence([conn])
        if not data:  # EOF: flush what the other side is owed, then close (FIN) both sides
            if conn.blackholed and not from_client:  # Redis hung up: keep the client in the dark
                self._close_side(side)
            elif conn.blackholed:
                self._close(conn, abort=False)
            else:
                conn._flushing = conn._peer(side)
        elif conn.blackholed:
            pass  # discarded
        elif from_client:
            conn.client_bytes += len(data)
            with self._lock:
                match, left = self._drop
                if left and match in conn._tail[max(0, len(conn._tail) - len(match) + 1) :] + data:
                    self._drop, conn._drop_reply = (match, left - 1), True
            conn._tail = (conn._tail + data[-256:])[-256:]
            self._forward(conn._server, data)
        elif conn._drop_reply:  # the reply to the request drop_reply() matched
            self.dropped += 1
            self._close(conn, abort=True)
        else:
            conn.server_bytes += len(data)
            self._forward(conn._client, data)

    def _forward(self, to: _Side, data: bytes) -> None:
        if self._delay > 0 or to.pending:
            to.pending.append((time.monotonic() + self._delay, data))
        else:
            to.out += data

    def _write(self, conn: ProxiedConnection, side: _Side) -> None:
        assert side.sock is not None
        while side.out:
            try:
                sent = side.sock.send(side.out)
            except BlockingIOError:
                return
            except OSError:
                self._close(conn, abort=True)
                return
            del side.out[:sent]

    def _update(self, conn: ProxiedConnection, now: float) -> None:
        """Release due delayed chunks, write what is ready, close a flushed connection, and set
        which events each socket waits for."""
        for side in conn._sides:
            while side.pending and side.pending[0][0] <= now:
                side.out += side.pending.popleft()[1]
            if side.out and side.sock is not None and not conn.closed:
                self._write(conn, side)
        if conn.closed:
            return
        if conn._flushing is not None and (conn._flushing.owed() == 0 or conn.blackholed):
            self._close(conn, abort=False)
            return
        for side in conn._sides:
            if side.sock is None:
                continue
            mask = selectors.EVENT_WRITE if side.out else 0
            if conn._flushing is None and (
                conn.blackholed or conn._peer(side).owed() < MAX_BUFFERED
            ):
                mask |= selectors.EVENT_READ
            if mask != side.mask:
                if side.mask:
                    self._sel.unregister(side.sock)
                if mask:
                    self._sel.register(side.sock, mask, (conn, side))
                side.mask = mask

    def _close_where(self, predicate: Callable[[ProxiedConnection], bool]) -> None:
        for conn in list(self._conns.values()):
            if predicate(conn):
                self._close(conn, abort=True)

    def _close_side(self, side: _Side, abort: bool = False) -> None:
        if side.sock is None:
            return
        if side.mask:
            self._sel.unregister(side.sock)
            side.mask = 0
        (_abort if abort else socket.socket.close)(side.sock)
        side.sock = None

    def _close(self, conn: ProxiedConnection, abort: bool) -> None:
        for side in conn._sides:
            self._close_side(side, abort)
        conn.closed = True
        with self._lock:
            self._conns.pop(conn.id, None)


@contextlib.contextmanager
def fault_proxy(url_or_port: str | int) -> Iterator[FaultProxy]:
    """A started FaultProxy in front of a loopback Redis (``redis://127.0.0.1:PORT/..`` or a port
    on 127.0.0.1), stopped on exit. The URL's port is required: a default 6379 is never assumed."""
    if isinstance(url_or_port, int):
        host, port = "127.0.0.1", url_or_port
    else:
        parsed = urlparse(url_or_port)
        if parsed.scheme not in ("redis", "rediss") or parsed.port is None:
            raise ValueError(f"need a redis://host:port URL, not {url_or_port!r}")
        host, port = parsed.hostname or "", parsed.port
    with FaultProxy(host, port) as proxy:
        yield proxy
