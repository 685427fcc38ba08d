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

import functools
import re
import select
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .http_store import same_entity_tag

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
    lines = [f"GET {target} HTTP/1.1", _host_line(host, port, default_port)]
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            return None
        lines.append(_header_line(name, value))
    if None in lines:
        return None
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")  # every line is latin-1


@functools.lru_cache(maxsize=64)
def _host_line(host: str, port: int, default_port: int) -> str | None:
    try:
        host.encode("ascii")
    except UnicodeEncodeError:
        return None
    authority = f"[{host}]" if ":" in host else host
    if port != default_port:
        authority = f"{authority}:{port}"
    return f"Host: {authority}\r\nAccept-Encoding: identity"


@functools.lru_cache(maxsize=1024)  # the same few headers on every request, and the ETags
def _header_line(name: str, value: str) -> str | None:
    if (
        not _REQUEST_FIELD_NAME.fullmatch(name)
        or name.lower() in _OWN_FIELDS
        or any(char in value for char in "\r\n\0")
    ):
        return None
    line = f"{name}: {value}"
    try:
        line.encode("latin-1")
    except UnicodeEncodeError:
        return None
    return line


class _Reader:
    """Answers read in order from one connection, each receive held to a deadline."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()
        self._start = 0  # where the unread bytes begin
        self._scanned = 0  # how far the end of the current head was looked for
        self.answered = 0  # answers read whole on this connection

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
            self._scanned -= self._start
            self._start = 0
        self._buffer += chunk
        return True

    def _take(self, size: int) -> bytes:
        data = bytes(self._buffer[self._start : self._start + size])
        self._start += size
        self._scanned = self._start
        return data

    def _head(self, deadline: float) -> list[bytes]:
        self._scanned = max(self._scanned, self._start)
        while True:
            # each receive's bytes are scanned once (a line end may straddle two receives)
            since = max(self._start, self._scanned - 3)
            end = self._buffer.find(b"\r\n\r\n", since, self._start + HEAD_LIMIT)
            if end >= 0:
                lines = self._take(end + 4 - self._start)[:-4].split(b"\r\n")
                if any(b"\n" in line or b"\r" in line for line in lines):
                    raise _Unusable  # a bare line feed: framing this parser does not trust
                return lines
            waiting = len(self._buffer) - self._start
            if waiting >= HEAD_LIMIT or self._buffer.find(b"\n\n", max(self._start, self._scanned - 1)) >= 0:
                raise _Unusable
            self._scanned = len(self._buffer)
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
            self.answered += 1
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
            try:
                self._body(length, deadline)
            except TimeoutError:  # the ordinary path never waits for an error's body
                raise _Unusable from None
            self.answered += 1
            raise _NotTaken(close)
        if length > max_size:
            raise _Unusable  # the ordinary path says it is too large
        body = self._body(length, deadline)
        self.answered += 1
        return self._answer(status, fields, body), close

    def stray(self) -> bool:
        """Whether bytes past the answers read are already here: an answer no request asked
        for, after which no answer on this connection can be trusted to be its request's."""
        if len(self._buffer) > self._start:
            return True
        pending = getattr(self._sock, "pending", None)
        try:
            if pending is not None and pending():
                return True
            readable = select.select([self._sock], [], [], 0)[0]
            if not readable:
                return False
            if pending is not None:  # TLS: peeking is not possible, and the connection ends here
                self._sock.setblocking(False)
                return bool(self._sock.recv(1))
            return bool(self._sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))  # b"": closed
        except ssl.SSLWantReadError:
            return False  # a TLS record that carries no data (a session ticket)
        except (OSError, ValueError):
            return True

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
        self.batch: list[int] = []
        self.done = self.abandoned = self.connecting = False


class _Pipeline:
    """The requests to one server, sent by ``connections`` workers."""

    def __init__(
        self,
        server: tuple[str, str, int],
        requests: list[bytes | None],
        timeout: float,
        max_size: int,
        context: Callable[[], ssl.SSLContext | None],
        connections: int,
        validators: list[tuple[str | None, str | None]] | None = None,
    ) -> None:
        self.server, self.requests, self.timeout, self.max_size = server, requests, timeout, max_size
        self.validators = validators or [(None, None)] * len(requests)
        self.context = context
        self.results: list[PipelinedAnswer | OSError | None] = [None] * len(requests)
        indexes = [index for index, request in enumerate(requests) if request is not None]
        # every connection gets a share, so a slow server answers on all of them at once
        size = min(BATCH, max(1, -(-len(indexes) // connections)))
        self.batches = deque(indexes[start : start + size] for start in range(0, len(indexes), size))
        self.cond = threading.Condition()
        self.stopped = False  # the rest go the ordinary way
        first = time.monotonic() + timeout  # until a worker sets its own
        self.workers = [_Worker(first) for _index in range(min(connections, len(self.batches)))]

    def start(self) -> None:
        for worker in self.workers:
            try:
                threading.Thread(target=self._work, args=(worker,), name="lcfg-pipeline", daemon=True).start()
            except RuntimeError:  # no thread to be had: its share goes the ordinary way
                worker.done = True

    def overdue(self, now: float) -> float:
        """Give up on workers stuck connecting past their deadline; the next deadline. (A worker
        reading answers holds itself to its deadlines: a busy machine may only run it late.)"""
        waiting = [w for w in self.workers if not w.done and not w.abandoned]
        for worker in [w for w in waiting if w.connecting and w.deadline + GRACE <= now]:
            # it could not connect in time: its URLs timed out, the rest go the ordinary way
            worker.abandoned = self.stopped = True
            _shut(worker.sock)
            for index in worker.batch:
                self.results[index] = TimeoutError()
        left = [w for w in waiting if not w.abandoned]
        if not left:
            return 0.0
        # a worker that starts connecting later is looked at within a second
        return min([now + 1.0] + [w.deadline + GRACE for w in left if w.connecting])

    def _give(self, worker: _Worker, taken: list[tuple[int, PipelinedAnswer | OSError]]) -> None:
        with self.cond:
            if not worker.abandoned:
                for index, result in taken:
                    self.results[index] = result

    def _next_batch(self, worker: _Worker) -> list[int] | None:
        with self.cond:
            if self.stopped or not self.batches or worker.abandoned:
                return None
            worker.batch = self.batches.popleft()
            return worker.batch

    def _stop(self) -> None:
        with self.cond:
            self.stopped = True

    def _work(self, worker: _Worker) -> None:
        reader = None
        try:
            batch = self._next_batch(worker)
            while batch:
                fresh = reader is None
                if reader is None:
                    worker.deadline = time.monotonic() + self.timeout
                    worker.connecting = True
                    try:
                        worker.sock = self._connect()
                    except OSError as exc:  # its URLs fail as the ordinary path would fail them
                        self._stop()
                        self._give(worker, [(index, exc) for index in batch])
                        return
                    finally:
                        worker.connecting = False
                    reader = _Reader(worker.sock)
                again, keep = self._exchange(worker, reader, batch)
                if not keep:
                    _close(worker.sock)
                    worker.sock = reader = None
                # what a new connection closed unanswered is not tried again
                if again and not (fresh and len(again) == len(batch)):
                    batch = worker.batch = again
                else:
                    batch = self._next_batch(worker)
        except Exception:  # noqa: BLE001 - anything else: the ordinary path tries again and words it
            self._stop()
        finally:
            _close(worker.sock)
            with self.cond:
                worker.done = True
                self.cond.notify_all()

    def _confirms(self, index: int, answer: PipelinedAnswer) -> bool:
        """Whether a 304 can be the answer to request ``index``: it asked conditionally, and
        any validator the 304 sends is the one asked with (tags compared weakly, as the server
        compares them: ``W/"x"`` answered with ``"x"`` is in step; whether it confirms the kept
        body is the store's call, ``StoredAnswer.still_current``)."""
        etag, last_modified = self.validators[index]
        if etag is None and last_modified is None:
            return False  # a 304 to a request that was not conditional
        if answer.etag is not None and etag is not None and not same_entity_tag(answer.etag, etag):
            return False
        return answer.last_modified is None or last_modified is None or answer.last_modified == last_modified

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

    def _exchange(self, worker: _Worker, reader: _Reader, batch: list[int]) -> tuple[list[int], bool]:
        """Send ``batch`` and read its answers: (the requests to send again on a new
        connection, whether this one can be used again). The answers are given only when the
        batch ended cleanly: all answered (or the server closed between two answers) with no
        stray bytes after them. Otherwise the batch goes the ordinary way."""
        sock = worker.sock
        if sock is None:  # abandoned meanwhile
            return [], False
        sock.settimeout(self.timeout)  # the whole send: Python holds sendall to it
        worker.deadline = time.monotonic() + self.timeout
        try:
            sock.sendall(b"".join(self.requests[index] or b"" for index in batch))
        except OSError:
            return batch, False  # closed while idle: again on a new connection, once
        taken: list[tuple[int, PipelinedAnswer | OSError]] = []
        done, close = len(batch), False
        ended = time.monotonic()
        for count, index in enumerate(batch):
            worker.deadline = ended + self.timeout
            try:
                answer, close = reader.answer(worker.deadline, self.max_size)
                if answer.status == 304 and not self._confirms(index, answer):
                    self._stop()  # another request's 304: the answers are out of step
                    return [], False
                taken.append((index, answer))
            except _NotTaken as not_taken:
                close = not_taken.close
            except TimeoutError:
                self._stop()  # a server this slow gets no more pipelined requests
                if not reader.answered:  # nothing at all on this connection: it timed out
                    self._give(worker, [(index, TimeoutError())])
                return [], False  # after answers: a server that does not pipeline
            except _Closed:  # between two answers: the rest again on a new connection
                self._give(worker, taken)
                return batch[count:], False
            except (_Unusable, OSError):
                return [], False
            ended = time.monotonic()
            if close:
                done = count + 1
                break
        if reader.stray():
            self._stop()  # more answers than requests: none of them can be trusted
            return [], False
        self._give(worker, taken)
        return batch[done:], done == len(batch) and not close


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


def get_pipelined_many(
    asked: list[tuple[tuple[str, str, int], list[bytes | None], list[tuple[str | None, str | None]] | None]],
    timeout: float,
    max_size: int,
    context: Callable[[], ssl.SSLContext | None],
    connections: int = 4,
) -> list[list[PipelinedAnswer | OSError | None]]:
    """``get_pipelined`` for several servers at once (each with up to ``connections``):
    ``asked`` holds (server, requests, validators) per server."""
    pipelines = [
        _Pipeline(server, requests, timeout, max_size, context, max(1, connections), validators)
        for server, requests, validators in asked
    ]
    for pipeline in pipelines:
        pipeline.start()
    for pipeline in pipelines:
        with pipeline.cond:
            while True:
                next_deadline = pipeline.overdue(time.monotonic())
                if not next_deadline:
                    break
                pipeline.cond.wait(max(0.0, next_deadline - time.monotonic()))
    return [list(pipeline.results) for pipeline in pipelines]


def get_pipelined(
    server: tuple[str, str, int],
    requests: list[bytes | None],
    timeout: float,
    max_size: int,
    context: Callable[[], ssl.SSLContext | None],
    connections: int = 4,
    validators: list[tuple[str | None, str | None]] | None = None,
) -> list[PipelinedAnswer | OSError | None]:
    """Send ``requests`` (``request_bytes``, None for one not to pipeline) to ``server``
    (scheme, host, port) pipelined on up to ``connections`` connections: per request, the
    ``PipelinedAnswer`` taken, a ``TimeoutError`` for one whose answer missed its deadline, the
    ``OSError`` of a connection that could not be made for it, or None for one to send the
    ordinary way. ``validators``: per request, the ``ETag`` and
    ``Last-Modified`` it asks with (``If-None-Match``, ``If-Modified-Since``); a ``304`` with
    others is taken as a sign that the answers are out of step. ``context()`` gives the TLS
    context for https."""
    return get_pipelined_many([(server, requests, validators)], timeout, max_size, context, connections)[0]
