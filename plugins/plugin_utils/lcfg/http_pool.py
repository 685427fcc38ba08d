# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Persistent HTTP(S) connections for reading many profiles from one LCFG server.

urllib opens a connection per request and asks the server to close it. Reading a site of
thousands of profiles from one server, mostly answered ``304 Not Modified``, is then mostly
connecting (and, over https, TLS handshakes). ``KeptConnections.open`` sends each request on
an idle connection to the same server when there is one (HTTP/1.1 keep-alive, as Apache
httpd serves LCFG profiles) and takes the connection back once its answer has been read to
the end. Answers behave as urllib's do: an object with ``headers``, ``geturl()``, ``read1``,
``read`` and ``close()`` for a 2xx, ``urllib.error.HTTPError`` for anything else (its body
not read), and ``urllib.error.URLError`` for a connection that fails.

``KeptConnections.open_idle`` sends a request only on an idle kept connection (else it
returns None) and holds it to a deadline in the caller's own thread: one watchdog
thread for the whole process shuts down the socket of any request still running at its
deadline, so a server trickling its answer cannot hold the read. Only a connection that is
already open can be held that way (resolving a name blocks where no socket can be shut down),
so the first requests to a server still need a thread of their own for their deadline.
"""

from __future__ import annotations

import heapq
import http.client
import io
import itertools
import os
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
from collections.abc import Callable
from typing import Any

__all__ = ["KeptConnections", "server_and_target"]

#: idle connections kept per server
IDLE_LIMIT = 64
_RETRYABLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class _Ticket:
    """One request held to its deadline by the watchdog."""

    def __init__(self, conn: http.client.HTTPConnection, deadline: float) -> None:
        self.conn, self.deadline = conn, deadline
        self.expired = self.released = False

    def expire(self) -> None:
        self.expired = True
        sock = self.conn.sock
        if sock is not None:
            try:
                # the plain socket's shutdown: SSLSocket's own drops its TLS state first, and a
                # send racing with it could go out unencrypted
                socket.socket.shutdown(sock, socket.SHUT_RDWR)  # a blocked receive returns at once
            except OSError:
                pass


class _Watchdog:
    """One thread shutting down the sockets of requests past their deadline."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Ticket]] = []
        self._order = itertools.count()
        self._pid: int | None = None  # the process whose thread runs (a fork has none)

    def watch(self, conn: http.client.HTTPConnection, deadline: float) -> _Ticket:
        ticket = _Ticket(conn, deadline)
        with self._cond:
            heapq.heappush(self._heap, (deadline, next(self._order), ticket))
            if self._pid != os.getpid():
                threading.Thread(target=self._run, name="lcfg-deadlines", daemon=True).start()
                self._pid = os.getpid()  # only once it runs
            self._cond.notify()
        return ticket

    def release(self, ticket: _Ticket) -> bool:
        """Stop watching ``ticket``: whether it was released before its deadline cut it off."""
        with self._cond:  # one lock with _run: a ticket is released or expired, never both
            ticket.released = True
            return not ticket.expired

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][2].released:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                delay = self._heap[0][0] - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                ticket = heapq.heappop(self._heap)[2]
                if not ticket.released:
                    ticket.expire()


_WATCHDOG = _Watchdog()


class _Answer:
    """One 2xx answer; ``close()`` gives its connection back when the body was read whole."""

    def __init__(
        self,
        pool: KeptConnections,
        key: tuple,
        conn: http.client.HTTPConnection,
        raw: Any,
        url: str,
        ticket: _Ticket | None = None,
    ):
        self._pool, self._key, self._conn, self._raw, self._url = pool, key, conn, raw, url
        self._ticket = ticket
        self.headers = raw.headers
        self._closed = False

    def geturl(self) -> str:
        return self._url

    def read1(self, size: int = -1) -> bytes:
        return self._raw.read1(size)

    def read(self, size: int | None = None) -> bytes:
        return self._raw.read(size)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # http.client drops its file at the body's end, except read1 at a known length's end
        whole = self._raw.isclosed() or (self._raw.length == 0 and not self._raw.chunked)
        self._raw.close()
        if _released_in_time(self._ticket) and whole and not self._raw.will_close:
            self._pool._give_back(self._key, self._conn)
        else:  # unread bytes would be taken for the next answer
            self._conn.close()


class KeptConnections:
    """Connections kept open per server (scheme, host, port), shared by threads.

    ``context()`` gives the TLS context for https (called for each new connection).
    ``opened`` counts the connections made (a reused one is not counted)."""

    def __init__(self, context: Callable[[], ssl.SSLContext]) -> None:
        self._context = context
        self._idle: dict[tuple, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self.opened = 0

    def open(self, url: str, headers: dict[str, str], timeout: float) -> _Answer:
        """GET ``url`` with ``headers``; see the module's docstring for what comes back."""
        key, target = server_and_target(url)
        while True:
            conn, reused = self._take(key, timeout)
            try:
                conn.request("GET", target, headers=headers)
                raw = conn.getresponse()
                break
            except _RETRYABLE as exc:
                conn.close()
                if reused:
                    continue  # the server closed an idle connection: a fresh one
                raise urllib.error.URLError(exc) from None
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise urllib.error.URLError(exc) from None
            except BaseException:  # e.g. a target http.client refuses to send: never kept
                conn.close()
                raise
        return self._answer(key, conn, raw, url)

    def open_idle(self, url: str, headers: dict[str, str], timeout: float, deadline: float) -> _Answer | None:
        """GET ``url`` like ``open``, but only on an idle kept connection, in this thread, with
        its socket shut down at ``deadline`` (``time.monotonic()``); a request cut off there
        raises ``TimeoutError``. None when no connection was idle, or the one taken had been
        closed by the server: the caller then sends the request its own way."""
        key, target = server_and_target(url)
        with self._lock:
            idle = self._idle.get(key)
            conn = idle.pop() if idle else None
        if conn is None or conn.sock is None:
            return None
        try:
            ticket = _WATCHDOG.watch(conn, deadline)
        except RuntimeError:  # no thread to hold the deadline: the caller's own way
            conn.close()
            return None
        conn.timeout = timeout
        conn.sock.settimeout(timeout)
        try:
            conn.request("GET", target, headers=headers)
            raw = conn.getresponse()
        except BaseException as exc:
            conn.close()
            if not _WATCHDOG.release(ticket):
                raise TimeoutError from None
            if isinstance(exc, _RETRYABLE):
                return None  # the server closed it while idle
            if isinstance(exc, (OSError, http.client.HTTPException)):
                raise urllib.error.URLError(exc) from None
            raise
        return self._answer(key, conn, raw, url, ticket)

    def _answer(
        self, key: tuple, conn: http.client.HTTPConnection, raw: Any, url: str, ticket: _Ticket | None = None
    ) -> _Answer:
        if 200 <= raw.status < 300:
            return _Answer(self, key, conn, raw, url, ticket)
        # An error or a redirect is not read: its body could trickle past the deadline, or
        # (a 304 with Transfer-Encoding: chunked) never come. Only a 304 or 204 is known to end
        # with its headers; after an interim 1xx (which http.client takes for the answer) the
        # real answer is still to come, so that connection is never used again.
        raw.close()
        if _released_in_time(ticket) and raw.status in (204, 304) and not raw.will_close:
            self._give_back(key, conn)
        else:
            conn.close()
        raise urllib.error.HTTPError(url, raw.status, raw.reason, raw.headers, io.BytesIO(b""))

    def _take(self, key: tuple, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            idle = self._idle.get(key)
            conn = idle.pop() if idle else None
            if conn is None:
                self.opened += 1
        if conn is not None:
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            return conn, True
        scheme, host, port = key
        if scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=timeout, context=self._context()), False
        return http.client.HTTPConnection(host, port, timeout=timeout), False

    def _give_back(self, key: tuple, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < IDLE_LIMIT:
                idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            conns = [conn for idle in self._idle.values() for conn in idle]
            self._idle.clear()
        for conn in conns:
            conn.close()


def _released_in_time(ticket: _Ticket | None) -> bool:
    """Release ``ticket``: whether its connection may be kept (not shut down at a deadline)."""
    return ticket is None or _WATCHDOG.release(ticket)


def server_and_target(url: str, parts: urllib.parse.SplitResult | None = None) -> tuple[tuple[str, str, int], str]:
    """``((scheme, host, port), path and query)`` of an http(s) URL (``URLError`` otherwise);
    ``parts``: the URL already split."""
    parts = parts or urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise urllib.error.URLError(f"not an http(s) URL: {url}")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:  # a port that is not a number
        raise urllib.error.URLError(str(exc)) from None
    return (scheme, parts.hostname, port), (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
