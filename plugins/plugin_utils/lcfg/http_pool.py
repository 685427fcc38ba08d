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
"""

from __future__ import annotations

import http.client
import io
import ssl
import threading
import urllib.error
import urllib.parse
from collections.abc import Callable
from typing import Any

__all__ = ["KeptConnections"]

#: idle connections kept per server
IDLE_LIMIT = 64
_RETRYABLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class _Answer:
    """One 2xx answer; ``close()`` gives its connection back when the body was read whole."""

    def __init__(self, pool: KeptConnections, key: tuple, conn: http.client.HTTPConnection, raw: Any, url: str):
        self._pool, self._key, self._conn, self._raw, self._url = pool, key, conn, raw, url
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
        if whole and not self._raw.will_close:
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
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise urllib.error.URLError(f"not an http(s) URL: {url}")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError as exc:  # a port that is not a number
            raise urllib.error.URLError(str(exc)) from None
        key = (scheme, parts.hostname, port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
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
        if 200 <= raw.status < 300:
            return _Answer(self, key, conn, raw, url)
        # An error or a redirect is not read: its body could trickle past the deadline, or
        # (a 304 with Transfer-Encoding: chunked) never come. Only a 304 or 204 is known to end
        # with its headers; after an interim 1xx (which http.client takes for the answer) the
        # real answer is still to come, so that connection is never used again.
        raw.close()
        if raw.status in (204, 304) and not raw.will_close:
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
