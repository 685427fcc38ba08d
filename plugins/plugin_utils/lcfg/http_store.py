# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The answers of http(s) profile sources kept on disk, for conditional requests.

An LCFG server publishes every machine's XML profile; most do not change between two
inventory reads. For each URL the store keeps the last body and its validators (``ETag``,
``Last-Modified``); the next request sends ``If-None-Match`` / ``If-Modified-Since`` and a
``304 Not Modified`` answer reuses the stored body. Only answers that carry a validator are
kept. Each URL is two files named by a hash of the URL (``<hash>.xml`` and ``<hash>.json``,
written atomically, the directory mode 0700); the JSON names its URL, so a hash collision or
a file from elsewhere is never taken for another URL's answer.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Any

__all__ = ["HttpStore", "validator_key"]


def validator_key(etag: str | None, last_modified: str | None) -> str | None:
    """One string for what identifies a stored answer (None when the server gave neither)."""
    if not etag and not last_modified:
        return None
    return f"etag={etag or ''};last-modified={last_modified or ''}"


class HttpStore:
    """Stored answers under ``directory`` (created 0700 when missing)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, mode=0o700, exist_ok=True)

    def _paths(self, url: str) -> tuple[str, str]:
        name = hashlib.sha256(url.encode("utf-8", "surrogateescape")).hexdigest()[:40]
        base = os.path.join(self.directory, name)
        return base + ".xml", base + ".json"

    def _meta(self, url: str) -> dict[str, Any] | None:
        _body, meta_path = self._paths(url)
        try:
            with open(meta_path, encoding="utf-8") as handle:
                meta = json.load(handle)
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or meta.get("url") != url:
            return None
        return meta

    def request_headers(self, url: str) -> dict[str, str]:
        """The conditional request headers for ``url`` (empty without a stored answer)."""
        meta = self._meta(url)
        if meta is None or not os.path.isfile(self._paths(url)[0]):
            return {}
        headers = {}
        if isinstance(meta.get("etag"), str) and meta["etag"]:
            headers["If-None-Match"] = meta["etag"]
        if isinstance(meta.get("last_modified"), str) and meta["last_modified"]:
            headers["If-Modified-Since"] = meta["last_modified"]
        return headers

    def stored(self, url: str) -> tuple[bytes, str | None] | None:
        """``(body, validator_key)`` of the stored answer for ``url``, or None."""
        meta = self._meta(url)
        if meta is None:
            return None
        try:
            with open(self._paths(url)[0], "rb") as handle:
                body = handle.read()
        except OSError:
            return None
        if len(body) != meta.get("size"):
            return None  # torn or replaced: ask again without validators
        return body, validator_key(meta.get("etag"), meta.get("last_modified"))

    def remember(self, url: str, body: bytes, etag: str | None, last_modified: str | None) -> None:
        """Keep ``body`` with its validators (nothing kept, and any old answer dropped, when the
        server sent neither)."""
        body_path, meta_path = self._paths(url)
        if validator_key(etag, last_modified) is None:
            for path in (meta_path, body_path):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
            return
        meta = {"url": url, "etag": etag, "last_modified": last_modified, "size": len(body)}
        # body first: a reader that finds the new metadata also finds its body (size checked)
        self._write(body_path, body)
        self._write(meta_path, json.dumps(meta, sort_keys=True).encode())

    def _write(self, path: str, data: bytes) -> None:
        handle, partial = tempfile.mkstemp(prefix=".partial-", dir=self.directory)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(partial, path)
        except BaseException:
            try:
                os.unlink(partial)
            except FileNotFoundError:
                pass
            raise
