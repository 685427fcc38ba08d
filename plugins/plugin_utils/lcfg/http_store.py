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
written atomically; a directory the store creates is mode 0700); the JSON names its URL and
the SHA-256 of the body, so a file from elsewhere, a torn body or the body of another writer
is never taken for this URL's answer. The body is read only when it is needed: a 304 for a
profile whose built model is kept costs reading the small JSON alone. ``built/`` keeps each
profile as the inventory built it from a body (keyed by the body's digest, the options and
the code), so a re-read after one profile changed builds only that one. ``index.json``
repeats what the per-URL JSON files say, so a read of thousands of URLs opens one file, not
thousands; an entry missing from it (or not valid) is read from its own file, and one the
server no longer confirms costs no more than a full answer.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import NamedTuple

from .. import json_codec

__all__ = ["HttpStore", "StoredAnswer", "body_digest"]


def body_digest(body: bytes) -> str:
    """What identifies a profile's content (the inventory's model cache is keyed on it)."""
    return hashlib.sha256(body).hexdigest()


class StoredAnswer(NamedTuple):
    """One kept answer: the digest of its body and the validators the server sent with it.

    The body itself is read only when asked for (``read_body``): after a 304 the inventory
    mostly needs only the digest (its model cache is keyed on it). (A NamedTuple: thousands
    are made on every read, and a frozen dataclass takes three times as long to make.)"""

    digest: str
    etag: str | None
    last_modified: str | None
    body_path: str

    def read_body(self) -> bytes | None:
        """The kept body; None when the file is gone or no longer has the kept digest (torn,
        or replaced by another writer)."""
        try:
            with open(self.body_path, "rb") as handle:
                body = handle.read()
        except OSError:
            return None
        return body if body_digest(body) == self.digest else None

    def request_headers(self) -> dict[str, str]:
        """The conditional request headers that ask whether this answer is still current."""
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers

    def still_current(self, etag: str | None, last_modified: str | None) -> bool:
        """Whether a 304 carrying these validators confirms this answer (a validator the 304
        sends must be the one kept: some servers compare only the date). A strong tag confirms
        only the same strong tag (RFC 9111 4.3.4): Apache httpd tags a file weak in its first
        second and answers that tag with the strong one later, and a file rewritten within the
        same second with the same size gets that same tag, so the kept body may be the older
        one; it is fetched again, once. A weak tag confirms the same tag, weak or strong."""
        if etag is not None and not self._tag_confirmed(etag):
            return False
        return last_modified is None or last_modified == self.last_modified

    def _tag_confirmed(self, etag: str) -> bool:
        if self.etag is None:
            return False
        if etag.startswith("W/"):
            return same_entity_tag(etag, self.etag)
        return etag == self.etag


def same_entity_tag(one: str, other: str) -> bool:
    """Whether two entity tags are the same tag, compared weakly (RFC 9110 8.8.3.2), as a
    server compares ``If-None-Match``."""
    return one.removeprefix("W/") == other.removeprefix("W/")


class HttpStore:
    """Stored answers under ``directory`` (created 0700 when missing)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self._index: dict[str, dict] | None = None  # index.json as read
        self._current: dict[str, dict | None] = {}  # what this process read or kept, per URL

    def _paths(self, url: str) -> tuple[str, str]:
        name = hashlib.sha256(url.encode("utf-8", "surrogateescape")).hexdigest()[:40]
        base = os.path.join(self.directory, name)
        return base + ".xml", base + ".json"

    def stored(self, url: str) -> StoredAnswer | None:
        """The kept answer for ``url``: None when there is none, or when its metadata names
        another URL or lacks a validator or a digest (the body is checked against the digest
        when it is read)."""
        _body_path, meta_path = self._paths(url)
        try:
            with open(meta_path, encoding="utf-8") as handle:
                meta = json.load(handle)
        except (OSError, ValueError, RecursionError):
            return None
        return self._answer(url, meta)

    def stored_many(self, urls: list[str]) -> dict[str, StoredAnswer | None]:
        """``stored`` of each URL, from ``index.json`` where it has a valid entry."""
        index = self._read_index()
        found = {}
        for url in urls:
            answer = self._answer(url, index[url]) if url in index else None
            found[url] = answer if answer is not None else self.stored(url)
        return found

    def save_index(self) -> None:
        """Write ``index.json`` again when what this process read or kept differs from it (the
        entries of other URLs, another inventory's, are kept as the file has them now)."""
        known = self._read_index()
        if all(known.get(url) == meta for url, meta in list(self._current.items())):
            return
        index = self._read_index(again=True)
        for url, meta in list(self._current.items()):
            if meta is None:
                index.pop(url, None)
            else:
                index[url] = meta
        self._write(os.path.join(self.directory, "index.json"), json.dumps(index, sort_keys=True).encode())
        self._index = index

    def _read_index(self, again: bool = False) -> dict[str, dict]:
        if self._index is None or again:
            try:
                with open(os.path.join(self.directory, "index.json"), encoding="utf-8") as handle:
                    index = json.load(handle)
            except (OSError, ValueError, RecursionError):  # a nested file can exhaust the decoder
                index = {}
            self._index = index if isinstance(index, dict) else {}
        return dict(self._index)

    def _answer(self, url: str, meta: object) -> StoredAnswer | None:
        """The StoredAnswer a metadata entry describes, if it is valid and names ``url``."""
        if not isinstance(meta, dict) or meta.get("url") != url:
            return None
        digest = meta.get("sha256")
        etag = meta.get("etag") if isinstance(meta.get("etag"), str) else None
        last_modified = meta.get("last_modified") if isinstance(meta.get("last_modified"), str) else None
        if not isinstance(digest, str) or len(digest) != 64 or (not etag and not last_modified):
            return None
        self._current[url] = {"url": url, "etag": etag, "last_modified": last_modified, "sha256": digest}
        return StoredAnswer(digest, etag or None, last_modified or None, self._paths(url)[0])

    def remember(self, url: str, body: bytes, etag: str | None, last_modified: str | None) -> None:
        """Keep ``body`` with its validators (nothing kept, and any old answer dropped, when the
        server sent neither)."""
        body_path, meta_path = self._paths(url)
        self._current[url] = None
        if not etag and not last_modified:
            for path in (meta_path, body_path):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
            return
        meta = {"url": url, "etag": etag, "last_modified": last_modified, "sha256": body_digest(body)}
        self._write(body_path, body)
        self._write(meta_path, json.dumps(meta, sort_keys=True).encode())
        self._current[url] = meta

    def built(self, url: str, key: str) -> dict | None:
        """What ``remember_built`` kept for ``url`` under ``key`` (the profile as the inventory
        built it from one body, with one set of options), or None."""
        try:
            with open(self._built_path(url), "rb") as handle:
                kept = json_codec.loads(handle.read())
        except (OSError, ValueError, RecursionError):
            return None
        if not isinstance(kept, dict) or kept.get("key") != key or not isinstance(kept.get("built"), dict):
            return None
        return kept["built"]

    def remember_built(self, url: str, key: str, built: dict) -> None:
        """Keep ``built`` (plain JSON data) for ``url`` under ``key``: the inventory's hash of the
        body's digest, the URL, its options and its code, so a kept entry is never stale. One
        entry per URL: the next one replaces it."""
        os.makedirs(os.path.join(self.directory, "built"), mode=0o700, exist_ok=True)
        self._write(self._built_path(url), json_codec.dumps({"key": key, "built": built}))

    def _built_path(self, url: str) -> str:
        name = hashlib.sha256(url.encode("utf-8", "surrogateescape")).hexdigest()[:40]
        return os.path.join(self.directory, "built", name + ".json")

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
