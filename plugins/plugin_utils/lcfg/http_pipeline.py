# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Pipelined HTTP/1.1 GETs: many requests to one server on a few connections.

An unchanged site's re-read is one conditional request per profile, nearly every one answered
``304 Not Modified`` in a few hundred bytes. Sent one at a time, each waits a round trip and
goes through http.client's parsing. Sent back to back on one connection (HTTP/1.1
pipelining: a server answers them in order, as Apache httpd does), the server answers them as
fast as it reads them.

``get_pipelined`` sends batches of requests on up to ``connections`` connections and reads
the answers in order with a small strict parser. It takes only what it can read safely: a
``304``, or a ``200`` whose body has a ``Content-Length`` within ``max_size``. Anything else
(a redirect, an error status, a chunked or close-delimited body, an interim 1xx, an HTTP/1.0
answer, a connection lost in the middle of an answer) leaves that URL, and the rest of its
batch when the connection cannot go on, to the caller's ordinary request path (``None``),
which follows redirects and words the errors. A server that closes the connection between
answers (Apache's ``MaxKeepAliveRequests``) gets the unanswered requests again on a new
connection.

Every answer has its own deadline: ``timeout`` seconds from the end of the answer before it on
its connection (or from sending the batch). Each receive waits only what is left of it, so a
server trickling an answer fails that URL (``TimeoutError``) after ``timeout`` seconds, as the
ordinary path does. Connecting (resolving the name, the TLS handshake) cannot be interrupted
that way, so the caller's thread waits for it only until the deadline (plus a grace period),
and then leaves that connection's URLs to the ordinary path.
"""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["PipelinedAnswer", "get_pipelined"]

#: requests sent back to back on one connection before reading their answers (Apache's
#: default MaxKeepAliveRequests is 100: a batch never outlives a connection by much)
BATCH = 100
#: the longest status line and header block read
HEAD_LIMIT = 64 * 1024
#: the longest body of an answer not taken (an error page) read past to reach the next answer
SKIP_LIMIT = 64 * 1024
#: how long past a connection's deadline the caller waits before leaving its URLs to the
#: ordinary path (the worker enforces every deadline itself, except while connecting)
GRACE = 1.0
_RECEIVE = 256 * 1024
_STATUS_LINE = re.compile(rb"HTTP/1\.1 ([0-9]{3})(?: [^\r\n]*)?")
_FIELD_NAME = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_REQUEST_FIELD_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_TARGET = re.compile(r"/[\x21-\x7e]*")  # what http.client would send unchanged
_OWN_FIELDS = frozenset({"host", "connection", "content-length", "transfer-encoding", "accept-encoding"})


@dataclass(frozen=True)
class PipelinedAnswer:
    """One answer taken: ``status`` 304 (``body`` None) or 200 (``body`` the whole body), and
    the first ``ETag`` and ``Last-Modified`` the server sent (as sent: the caller checks them)."""

    status: int
    etag: str | None
    last_modified: str | None
    body: bytes | None


class _Closed(Exception):
    """The server closed the connection before sending any byte of the next answer."""


class _Unusable(Exception):
    """An answer this parser does not take; the connection cannot go on after it."""


class _NotTaken(Exception):
    """An answer read whole but not taken (an error page, a redirect): the next one may follow."""

    def __init__(self, close: bool) -> None:
        super().__init__()
        self.close = close


def request_bytes(host: str, port: int, default_port: int, target: str, headers: dict[str, str]) -> bytes | None:
    """The bytes of ``GET target`` with ``headers``; None when http.client would refuse or
    change something in it (then the ordinary path sends it, or words why it cannot)."""
    if not _TARGET.fullmatch(target):
        return None
    try:
        host.encode("ascii")
    except UnicodeEncodeError:
        return None
    authority = f"[{host}]" if ":" in host else host
    if port != default_port:
        authority = f"{authority}:{port}"
    lines = [f"GET {target} HTTP/1.1", f"Host: {authority}", "Accept-Encoding: identity"]
    for name, value in headers.items():
        if (
            not isinstance(name, str)
            or not isinstance(value, str)
            or not _REQUEST_FIELD_NAME.fullmatch(name)
            or name.lower() in _OWN_FIELDS
            or any(char in value for char in "\r\n\0")
        ):
            return None
        lines.append(f"{name}: {value}")
    try:
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:
        return None


class _Reader:
    """Answers read in order from one connection, each receive held to a deadline."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()
        self._start = 0  # where the unread bytes begin

    def _receive(self, deadline: float) -> bool:
        """Receive more bytes before ``deadline``; False at the end of the stream."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        self._sock.settimeout(left)
        chunk = self._sock.recv(_RECEIVE)  # socket.timeout is a TimeoutError
        if not chunk:
            return False
        if self._start > _RECEIVE:  # drop what was read, once it is worth moving the rest
            del self._buffer[: self._start]
            self._start = 0
        self._buffer += chunk
        return True

    def _take(self, size: int) -> bytes:
        data = bytes(self._buffer[self._start : self._start + size])
        self._start += size
        return data

    def _head(self, deadline: float) -> list[bytes]:
        while True:
            end = self._buffer.find(b"\r\n\r\n", self._start, self._start + HEAD_LIMIT)
            if end >= 0:
                lines = self._take(end + 4 - self._start)[:-4].split(b"\r\n")
                if any(b"\n" in line or b"\r" in line for line in lines):
                    raise _Unusable  # a bare line feed: framing this parser does not trust
                return lines
            waiting = len(self._buffer) - self._start
            if waiting >= HEAD_LIMIT or b"\n\n" in self._buffer[self._start :]:
                raise _Unusable
            if not self._receive(deadline):
                if waiting:
                    raise _Unusable  # closed in the middle of an answer
                raise _Closed

    def _body(self, size: int, deadline: float) -> bytes:
        while len(self._buffer) - self._start < size:
            if not self._receive(deadline):
                raise _Unusable
        return self._take(size)

    def answer(self, deadline: float, max_size: int) -> tuple[PipelinedAnswer, bool]:
        """The next answer and whether the server closes the connection after it."""
        lines = self._head(deadline)
        match = _STATUS_LINE.fullmatch(lines[0])
        if not match:
            raise _Unusable  # HTTP/1.0 or not HTTP at all
        status = int(match.group(1))
        fields: dict[bytes, list[bytes]] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not _FIELD_NAME.fullmatch(name):
                raise _Unusable  # also a folded line, which starts with white space
            fields.setdefault(name.lower(), []).append(value.strip(b" \t"))
        close = any(b"close" in [t.strip().lower() for t in v.split(b",")] for v in fields.get(b"connection", []))
        if status < 200:
            raise _Unusable  # an interim answer: the real one is still to come
        if status == 304:
            return self._answer(status, fields, None), close
        if b"transfer-encoding" in fields:
            raise _Unusable
        lengths = set(fields.get(b"content-length", []))
        if len(lengths) != 1 or not lengths <= {n for n in lengths if n.isdigit() and len(n) <= 12}:
            raise _Unusable  # close-delimited, or lengths that disagree
        length = int(next(iter(lengths)))
        if status != 200:
            if length > SKIP_LIMIT:
                raise _Unusable
            self._body(length, deadline)
            raise _NotTaken(close)
        if length > max_size:
            raise _Unusable  # the ordinary path says it is too large
        return self._answer(status, fields, self._body(length, deadline)), close

    @staticmethod
    def _answer(status: int, fields: dict[bytes, list[bytes]], body: bytes | None) -> PipelinedAnswer:
        def first(name: bytes) -> str | None:
            values = fields.get(name)
            return values[0].decode("latin-1") if values else None

        return PipelinedAnswer(status, first(b"etag"), first(b"last-modified"), body)


class _Worker:
    """One connection's state, shared with the waiting caller."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.sock: socket.socket | None = None
        self.done = self.abandoned = False


class _Pipeline:
    def __init__(
        self,
        server: tuple[str, str, int],
        requests: list[bytes | None],
        timeout: float,
        max_size: int,
        context: Callable[[], ssl.SSLContext | None],
    ) -> None:
        self.server, self.requests, self.timeout, self.max_size = server, requests, timeout, max_size
        self.context = context
        self.results: list[PipelinedAnswer | TimeoutError | None] = [None] * len(requests)
        indexes = [index for index, request in enumerate(requests) if request is not None]
        self.batches = deque(indexes[start : start + BATCH] for start in range(0, len(indexes), BATCH))
        self.cond = threading.Condition()
        self.stopped = False  # a connection failed: the rest go the ordinary way

    def run(self, connections: int) -> list[PipelinedAnswer | TimeoutError | None]:
        first = time.monotonic() + self.timeout  # until the worker sets its own
        workers = [_Worker(first) for _index in range(min(connections, len(self.batches)))]
        for worker in workers:
            threading.Thread(target=self._work, args=(worker,), name="lcfg-pipeline", daemon=True).start()
        with self.cond:
            while True:
                waiting = [w for w in workers if not w.done and not w.abandoned]
                if not waiting:
                    return list(self.results)
                now = time.monotonic()
                overdue = [w for w in waiting if w.deadline + GRACE <= now]
                for worker in overdue:  # stuck connecting: its URLs go the ordinary way
                    worker.abandoned = self.stopped = True
                    _shut(worker.sock)
                if not overdue:
                    self.cond.wait(min(w.deadline for w in waiting) + GRACE - now)

    def _give(self, worker: _Worker, index: int, result: PipelinedAnswer | TimeoutError) -> None:
        with self.cond:
            if not worker.abandoned:
                self.results[index] = result

    def _next_batch(self) -> list[int] | None:
        with self.cond:
            if self.stopped or not self.batches:
                return None
            return self.batches.popleft()

    def _work(self, worker: _Worker) -> None:
        reader, fresh = None, False
        try:
            batch = self._next_batch()
            while batch:
                if reader is None:
                    worker.deadline = time.monotonic() + self.timeout
                    worker.sock = self._connect()
                    reader, fresh = _Reader(worker.sock), True
                answered, keep = self._exchange(worker, reader, batch)
                batch = batch[answered:]
                if not keep:
                    _close(worker.sock)
                    worker.sock = reader = None
                    if batch and fresh and answered == 0:
                        batch = None  # a new connection closed unanswered: not again
                fresh = False
                if not batch:
                    batch = self._next_batch()
        except Exception:  # noqa: BLE001 - cannot connect (or worse): the ordinary path words why
            with self.cond:
                self.stopped = True
        finally:
            _close(worker.sock)
            with self.cond:
                worker.done = True
                self.cond.notify_all()

    def _connect(self) -> socket.socket:
        scheme, host, port = self.server
        sock = socket.create_connection((host, port), timeout=self.timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                context = self.context() or ssl.create_default_context()
                sock = context.wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise
        return sock

    def _exchange(self, worker: _Worker, reader: _Reader, batch: list[int]) -> tuple[int, bool]:
        """Send ``batch`` and read its answers: (how many were answered, whether the connection
        can be used again). A URL whose answer is not taken keeps None."""
        sock = worker.sock
        assert sock is not None
        sock.settimeout(self.timeout)  # the whole send: Python holds sendall to it
        worker.deadline = time.monotonic() + self.timeout
        try:
            sock.sendall(b"".join(self.requests[index] or b"" for index in batch))
        except OSError:
            return 0, False  # closed while idle: again on a new connection, once
        ended = time.monotonic()
        for count, index in enumerate(batch):
            worker.deadline = ended + self.timeout
            try:
                answer, close = reader.answer(worker.deadline, self.max_size)
                self._give(worker, index, answer)
            except _NotTaken as not_taken:
                close = not_taken.close
            except TimeoutError:
                self._give(worker, index, TimeoutError())
                return len(batch), False  # the rest of the batch: the ordinary path
            except _Closed:
                return count, False  # the rest again on a new connection
            except (_Unusable, OSError):
                return len(batch), False
            ended = time.monotonic()
            if close:
                return count + 1, False
        return len(batch), True


def _shut(sock: socket.socket | None) -> None:
    if sock is not None:
        try:
            socket.socket.shutdown(sock, socket.SHUT_RDWR)  # a blocked receive returns at once
        except OSError:
            pass


def _close(sock: socket.socket | None) -> None:
    if sock is not None:
        try:
            sock.close()
        except OSError:
            pass


def get_pipelined(
    server: tuple[str, str, int],
    requests: list[bytes | None],
    timeout: float,
    max_size: int,
    context: Callable[[], ssl.SSLContext | None],
    connections: int = 4,
) -> list[PipelinedAnswer | TimeoutError | None]:
    """Send ``requests`` (``request_bytes``, None for one not to pipeline) to ``server``
    (scheme, host, port) pipelined on up to ``connections`` connections: per request, the
    ``PipelinedAnswer`` taken, a ``TimeoutError`` for an answer that missed its deadline, or
    None for one to send the ordinary way. ``context()`` gives the TLS context for https."""
    if not any(requests):
        return [None] * len(requests)
    return _Pipeline(server, requests, timeout, max_size, context).run(max(1, connections))
