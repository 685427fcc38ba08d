# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Turn configured sources (files, directories, http(s) URLs) into profiles.

* a file ending in ``.xml`` is an XML profile, any other file a source profile;
* a directory is searched recursively: ``*.xml`` files are XML profiles, other
  regular files source profiles, except hidden files and directories, headers and
  schemas (``*.h``, ``*.def``), YAML, documentation (``README*``, ``*.md``, ``*.rst``,
  ``*.txt``), editor or package-manager leftovers (``*~``, ``#*#``, ``*.swp``,
  ``*.bak``, ``*.orig``, ``*.rej``, ``*.tmp``, ``*.rpmnew``, ``*.dpkg-*``...) and what
  else sits next to published profiles (``*.gz``, ``*.db``, ``*.json``, ``*.html``...);
* ``http://`` and ``https://`` URLs (any case) are XML profiles, fetched with one
  deadline for the whole transfer (connect, headers, body), TLS verification (unless
  disabled) and a size cap; redirects stay on http(s). The caller may pass the
  function that opens the URL (the inventory plugin passes Ansible's ``open_url``
  with its proxy, header and client-certificate settings).

Relative paths (sources and include path) are relative to ``base_dir``. Profiles are
returned in sorted path order, each at most once; a profile that fails becomes a
:class:`LoadedProfile` with ``error`` set and the others still load. ``#include``
reaches only the include path and the sources' directories; a file found in a
source directory whose real path (symlinks resolved) lies outside it is refused.
Whatever goes wrong inside a reader ends as an LcfgError naming the profile.
"""

from __future__ import annotations

import os
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import LcfgError, excerpt
from .http_store import HttpStore, StoredAnswer, body_digest

if TYPE_CHECKING:
    from .profile import Profile

# The readers (.cpp, .source, .xml) are imported where a profile is read: an inventory read
# from its warm cache reads none, and Ansible compiles every module it imports from source.

__all__ = [
    "LoadedProfile",
    "load_profiles",
    "is_url",
    "is_profile_file",
    "fetch_url",
    "fetch_answer",
    "fetch_profiles",
    "Answer",
    "HTTP_CONCURRENCY",
    "host_name",
    "MAX_URL_SIZE",
    "Opener",
]

MAX_URL_SIZE = 16 * 1024 * 1024
_CHUNK = 64 * 1024

#: ``opener(url, timeout, headers)`` returns a file-like HTTP response (``read``, ``geturl``,
#: ``close``, ``headers``); ``headers``: extra request headers (the conditional ones)
Opener = Callable[[str, float, dict[str, str]], Any]

#: parallel http(s) fetches by default (an LCFG server answers many small requests well)
HTTP_CONCURRENCY = 8

_SKIP_SUFFIXES = (
    ".h",
    ".def",
    ".yml",
    ".yaml",
    ".md",
    ".rst",
    ".txt",
    ".swp",
    ".swo",
    ".swx",
    ".bak",
    ".orig",
    ".rej",
    ".tmp",
    ".old",
    ".rpmnew",
    ".rpmsave",
    ".rpmorig",
    ".dpkg-old",
    ".dpkg-new",
    ".dpkg-dist",
    ".dpkg-bak",
    ".ucf-old",
    ".ucf-new",
    ".ucf-dist",
    ".pyc",
    # what else lives next to published profiles: archives, databases, web files, checksums
    ".gz",
    ".bz2",
    ".xz",
    ".zst",
    ".db",
    ".json",
    ".html",
    ".htm",
    ".log",
    ".md5",
    ".sha1",
    ".sha256",
    ".sig",
    ".asc",
)


@dataclass
class LoadedProfile:
    source: str  # file path or URL
    profile: Profile | None  # None when it failed
    error: LcfgError | None
    #: every local file read for it: path -> (mtime_ns, size) (the inventory cache's key)
    inputs: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: an http(s) profile's content digest (``http_store.body_digest``); None: not a URL
    digest: str | None = None


def is_url(source: str) -> bool:
    """``http://`` or ``https://`` (case-insensitive)."""
    return source[:8].lower().startswith(("http://", "https://"))


def is_profile_file(name: str) -> bool:
    """Whether a file found in a directory is a profile (see the module docstring)."""
    if not name or name.startswith(".") or name.endswith("~"):
        return False
    if name.startswith("#") and name.endswith("#"):
        return False
    low = name.lower()
    return not (low.startswith("readme") or low.endswith(_SKIP_SUFFIXES))


def _scan(directory: str) -> tuple[list[str], list[LoadedProfile]]:
    from .cpp import inside  # pylint: disable=import-outside-toplevel  # see the imports

    found: list[str] = []
    errors: list[LoadedProfile] = []
    root_real = os.path.realpath(directory)

    def onerror(exc: OSError) -> None:
        where = exc.filename or directory
        errors.append(
            LoadedProfile(where, None, LcfgError(f"cannot read directory: {exc.strerror or exc}", file=where))
        )

    for root, dirs, files in os.walk(directory, onerror=onerror):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            full = os.path.join(root, name)
            if is_profile_file(name) and os.path.isfile(full):
                if inside(os.path.realpath(full), [root_real]):
                    found.append(full)
                else:  # a symlink out of the source directory (to /etc/shadow, say)
                    errors.append(
                        LoadedProfile(
                            full, None, LcfgError("symlink to a file outside the source directory: refused", file=full)
                        )
                    )
    return found, errors


class _SafeRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[override]
        if not is_url(newurl):
            raise urllib.error.HTTPError(newurl, code, "redirect to a non-http(s) URL refused", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _urllib_opener(validate_certs: bool) -> Opener:
    """The default opener: urllib, TLS verification unless disabled, http(s) redirects only."""
    context = ssl.create_default_context()
    if not validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _SafeRedirect())

    def open_(url: str, timeout: float, headers: dict[str, str]) -> Any:
        request = urllib.request.Request(
            url, headers={"User-Agent": "lcfg.xen-inventory", "Accept": "application/xml, text/xml, */*", **headers}
        )
        return opener.open(request, timeout=timeout)

    return open_


@dataclass
class Answer:
    """What one http(s) request brought: the body, or ``not_modified`` (a 304 to a
    conditional request), and the validators the server sent."""

    data: bytes | None
    not_modified: bool = False
    etag: str | None = None
    last_modified: str | None = None


def _header(resp: Any, name: str) -> str | None:
    headers = getattr(resp, "headers", None)
    return _validator(headers.get(name) if headers is not None else None)


def _validator(value: Any) -> str | None:
    """A validator the server sent, if it may be sent back verbatim: no line breaks, bounded."""
    if not isinstance(value, str) or len(value) > 512 or any(c in value for c in "\r\n\0"):
        return None
    return value


def _transfer(
    url: str, opener: Opener, timeout: float, max_size: int, deadline: float, state: dict[str, Any], headers: dict
) -> bytes:
    """Open ``url`` and read at most ``max_size + 1`` bytes, stopping at ``deadline``."""
    resp = state["response"] = opener(url, timeout, headers)
    state["etag"] = _header(resp, "ETag")
    state["last_modified"] = _header(resp, "Last-Modified")
    try:
        final = resp.geturl() if hasattr(resp, "geturl") else url
        if final and not is_url(str(final)):
            raise LcfgError(f"redirected to a non-http(s) URL {excerpt(final)}: refused", file=url)
        # read1 returns what one receive brings, so the deadline is checked between receives
        read = getattr(resp, "read1", None) or resp.read
        chunks: list[bytes] = []
        size = 0
        while size <= max_size:
            if time.monotonic() > deadline or state.get("abandoned"):
                raise TimeoutError
            chunk = read(min(_CHUNK, max_size + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        resp.close()


def _fetch_error(url: str, exc: BaseException) -> LcfgError:
    if isinstance(exc, LcfgError):
        return exc
    if isinstance(exc, urllib.error.HTTPError):
        return LcfgError(f"HTTP error {exc.code}: {excerpt(exc.reason, 200, quote=False)}", file=url)
    reason: object = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    hint = (
        "; set validate_certs: false only for a trusted test server"
        if isinstance(reason, ssl.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(reason)
        else ""
    )
    text = str(reason) or type(reason).__name__
    return LcfgError(f"cannot fetch: {excerpt(text, 200, quote=False)}{hint}", file=url)


def fetch_url(
    url: str,
    timeout: float = 30.0,
    validate_certs: bool = True,
    max_size: int | None = None,
    opener: Opener | None = None,
) -> bytes:
    """GET an XML profile; LcfgError (naming the URL) for any failure.

    ``timeout`` is one deadline for the whole transfer, not per read: a server
    that sends a byte a second fails after ``timeout`` seconds. The transfer runs in
    a daemon thread so that neither a slow connect nor trickled headers can hold
    the caller past the deadline.
    """
    # a 304 comes back only to a conditional request (without one it is an HTTP error)
    return fetch_answer(url, timeout, validate_certs, max_size, opener).data or b""


def fetch_answer(
    url: str,
    timeout: float = 30.0,
    validate_certs: bool = True,
    max_size: int | None = None,
    opener: Opener | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """``fetch_url`` with extra request ``headers`` (the conditional ones): the body and the
    server's validators, or ``not_modified`` for a 304."""
    if max_size is None:
        max_size = MAX_URL_SIZE
    if opener is None:
        opener = _urllib_opener(validate_certs)
    deadline = time.monotonic() + timeout
    open_idle = getattr(opener, "open_idle", None)
    if open_idle is not None:
        answer = _answer_on_idle_connection(url, open_idle, timeout, max_size, deadline, headers or {})
        if answer is not None:
            return answer
    state: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            state["data"] = _transfer(url, opener, timeout, max_size, deadline, state, headers or {})
        except BaseException as exc:  # noqa: B902 - reported to the waiting caller
            state["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="lcfg-fetch", daemon=True).start()
    # what is left of the one deadline: an attempt on an idle connection may have used some
    if not done.wait(max(0.0, deadline - time.monotonic())):
        state["abandoned"] = True
        raise _timed_out(url, timeout)
    return _answer_of(url, state, headers, timeout, max_size)


def _answer_on_idle_connection(
    url: str, open_idle: Callable, timeout: float, max_size: int, deadline: float, headers: dict[str, str]
) -> Answer | None:
    """``fetch_answer`` on an idle kept connection, in this thread (the opener's ``open_idle``
    holds it to ``deadline``); None when it cannot go that way (no idle connection, a proxy, a
    redirect to follow): then the caller sends it its own way."""
    state: dict[str, Any] = {}
    try:
        resp = open_idle(url, timeout, headers, deadline)
        if resp is None:
            return None
        state["data"] = _transfer(url, lambda *_args: resp, timeout, max_size, deadline, state, headers)
    except Exception as exc:  # noqa: BLE001 - judged below, as the threaded path judges it
        if isinstance(exc, urllib.error.HTTPError) and exc.code in (301, 302, 303, 307, 308):
            return None
        state["error"] = exc
    if time.monotonic() >= deadline:  # the watchdog may have cut the body short
        raise _timed_out(url, timeout)
    return _answer_of(url, state, headers, timeout, max_size)


def _timed_out(url: str, timeout: float) -> LcfgError:
    return LcfgError(
        f"cannot fetch: no complete answer within the timeout of {timeout:g} s "
        "(one deadline for connecting, headers and body)",
        file=url,
    )


def _answer_of(url: str, state: dict[str, Any], headers: dict | None, timeout: float, max_size: int) -> Answer:
    """The ``Answer`` of a finished transfer's ``state`` (``data``, or ``error``)."""
    error = state.get("error")
    if isinstance(error, TimeoutError):
        raise _timed_out(url, timeout)
    if error is not None:
        if headers and isinstance(error, urllib.error.HTTPError) and error.code == 304:
            return Answer(None, True, _header(error, "ETag"), _header(error, "Last-Modified"))
        raise _fetch_error(url, error) from None
    data = state["data"]
    if len(data) > max_size:
        raise LcfgError(f"profile larger than {max_size} bytes", file=url)
    return Answer(data, etag=state.get("etag"), last_modified=state.get("last_modified"))


def _fetch_profile(
    url: str, timeout: float, validate_certs: bool, opener: Opener | None, store: HttpStore | None
) -> tuple[bytes | StoredAnswer, str]:
    """What ``url`` holds and its digest (``http_store.body_digest``): the kept answer (its
    body not read yet) when the server confirms it with a 304 to a conditional request, else
    the body fetched (and kept in ``store`` when the server sent validators)."""
    kept = store.stored(url) if store is not None else None
    answer = fetch_answer(url, timeout, validate_certs, opener=opener, headers=kept.request_headers() if kept else {})
    if answer.not_modified:
        if kept is not None and kept.still_current(answer.etag, answer.last_modified):
            return kept, kept.digest
        answer = fetch_answer(url, timeout, validate_certs, opener=opener)  # a 304 for other validators
    return _fetched(url, answer, store)


def _fetched(url: str, answer: Answer, store: HttpStore | None) -> tuple[bytes, str]:
    data = answer.data if answer.data is not None else b""
    if store is not None:
        try:
            store.remember(url, data, answer.etag, answer.last_modified)
        except OSError:
            pass  # a store that cannot be written only costs the next read a full answer
    return data, body_digest(data)


def _profile_body(
    url: str,
    got: tuple[bytes | StoredAnswer, str],
    timeout: float,
    validate_certs: bool,
    opener: Opener | None,
    store: HttpStore | None,
) -> tuple[bytes, str]:
    """The body and digest of a fetched profile, reading a kept body now (fetched in full
    again when the kept file no longer matches its digest)."""
    data, digest = got
    if not isinstance(data, StoredAnswer):
        return data, digest
    body = data.read_body()
    if body is not None:
        return body, digest
    return _fetched(url, fetch_answer(url, timeout, validate_certs, opener=opener), store)


def fetch_profiles(
    urls: list[str],
    timeout: float = 30.0,
    validate_certs: bool = True,
    opener: Opener | None = None,
    store: HttpStore | None = None,
    concurrency: int = HTTP_CONCURRENCY,
) -> dict[str, tuple[bytes | StoredAnswer, str] | LcfgError]:
    """Fetch ``urls`` (up to ``concurrency`` at a time, conditionally against ``store``) without
    reading them: per URL ``(body, digest)`` (the ``StoredAnswer`` in place of the body after
    a 304: its body is read when needed) or the LcfgError naming it. What
    ``load_profiles`` takes as ``prefetched``; the inventory keys its model cache on the
    digests first. An opener with ``open_pipelined`` (the inventory's, see ``make_opener``)
    gets every URL first to send pipelined; what it does not take goes one request at a time."""

    def one(url: str) -> tuple[bytes | StoredAnswer, str] | LcfgError:
        try:
            return _fetch_profile(url, timeout, validate_certs, opener, store)
        except LcfgError as exc:
            return exc
        except Exception as exc:  # one profile never takes the site down
            return LcfgError(f"cannot fetch: {type(exc).__name__}: {excerpt(exc, 200)}", file=url)

    unique = sorted(set(urls))
    results: dict[str, tuple[bytes | StoredAnswer, str] | LcfgError] = {}
    pipelined = getattr(opener, "open_pipelined", None)
    if pipelined is not None and len(unique) > 1:
        results.update(_fetch_pipelined(unique, pipelined, timeout, store, concurrency))
    rest = [url for url in unique if url not in results]
    if len(rest) <= 1 or concurrency <= 1:
        results.update((url, one(url)) for url in rest)
        return _saving_index({url: results[url] for url in unique}, store)
    # each worker takes the next URL itself: thousands of futures handed over one by one cost
    # more than the 304s they wait for
    pending = iter(rest)
    take = threading.Lock()

    def worker() -> None:
        while True:
            with take:
                url = next(pending, None)
            if url is None:
                return
            results[url] = one(url)

    workers = min(concurrency, len(rest))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lcfg-url") as pool:
        for done in [pool.submit(worker) for _worker in range(workers)]:
            done.result()
    return _saving_index({url: results[url] for url in unique}, store)


def _saving_index(results: dict[str, Any], store: HttpStore | None) -> dict[str, Any]:
    """``results``, once ``store`` has saved its index for the next read (when it can)."""
    if store is not None:
        try:
            store.save_index()
        except OSError:
            pass  # a store that cannot be written only costs the next read more files to open
    return results


def _fetch_pipelined(
    urls: list[str], pipelined: Callable, timeout: float, store: HttpStore | None, concurrency: int
) -> dict[str, tuple[bytes | StoredAnswer, str] | LcfgError]:
    """What the opener's ``open_pipelined`` brought for ``urls`` (conditionally against
    ``store``), as ``fetch_profiles`` gives it; a URL it did not take is left out (the
    ordinary path sends it): a redirect, an error, a 304 for other validators."""
    kept = store.stored_many(urls) if store is not None else dict.fromkeys(urls)
    asked = [(url, kept[url].request_headers() if kept[url] else {}) for url in urls]
    got: dict[str, tuple[bytes | StoredAnswer, str] | LcfgError] = {}
    for url, answer in zip(urls, pipelined(asked, timeout, MAX_URL_SIZE, concurrency), strict=True):
        stored = kept[url]
        if isinstance(answer, TimeoutError):
            got[url] = _timed_out(url, timeout)
        elif isinstance(answer, OSError):  # no connection to be had
            got[url] = _fetch_error(url, answer)
        elif answer is None:
            continue
        elif answer.status == 304:
            etag, last_modified = _validator(answer.etag), _validator(answer.last_modified)
            if stored is not None and stored.still_current(etag, last_modified):
                got[url] = (stored, stored.digest)
        elif answer.status == 200:
            validators = {"etag": _validator(answer.etag), "last_modified": _validator(answer.last_modified)}
            got[url] = _fetched(url, Answer(answer.body, **validators), store)
    return got


def host_name(source: str) -> str:
    """The inventory host name of the profile at ``source``, from its path or URL alone (as
    the readers name it; also for a profile that cannot be read)."""
    if is_url(source) or source.lower().endswith(".xml"):
        from .xml import xml_host_name  # pylint: disable=import-outside-toplevel  # see the imports

        return xml_host_name(source)
    return os.path.basename(source)


def _load_one(
    source: str,
    include_path: list[str],
    defines: dict[str, str] | None,
    timeout: float,
    validate_certs: bool,
    allowed_dirs: list[str],
    opener: Opener | None,
    store: HttpStore | None = None,
    prefetched: dict[str, Any] | None = None,
) -> LoadedProfile:
    # pylint: disable-next=import-outside-toplevel  # see the imports
    from . import source as source_reader
    from . import xml as xml_reader

    inputs: dict[str, tuple[int, int]] = {}
    try:
        if is_url(source):
            got = (prefetched or {}).get(source)
            if got is None:
                got = _fetch_profile(source, timeout, validate_certs, opener, store)
            elif isinstance(got, LcfgError):
                raise got
            data, digest = _profile_body(source, got, timeout, validate_certs, opener, store)
            return LoadedProfile(source, xml_reader.read_xml_profile(source, data=data), None, digest=digest)
        if source.lower().endswith(".xml"):
            try:
                st = os.stat(source)
                inputs[source] = (st.st_mtime_ns, st.st_size)
            except OSError:
                pass  # the reader says why it cannot read it
            return LoadedProfile(source, xml_reader.read_xml_profile(source), None, inputs)
        return LoadedProfile(
            source,
            source_reader.read_source_profile(
                source, include_path=include_path, defines=defines, allowed_dirs=allowed_dirs, inputs=inputs
            ),
            None,
            inputs,
        )
    except LcfgError as exc:
        return LoadedProfile(source, None, exc, inputs)
    except Exception as exc:  # the last line of defence: one profile never takes the site down
        return LoadedProfile(
            source,
            None,
            LcfgError(f"cannot read the profile: {type(exc).__name__}: {excerpt(exc, 200)}", file=source),
            inputs,
        )


def load_profiles(
    sources: list[str],
    base_dir: str,
    include_path: list[str] | None = None,
    defines: dict[str, str] | None = None,
    timeout: float = 30.0,
    validate_certs: bool = True,
    opener: Opener | None = None,
    store: HttpStore | None = None,
    concurrency: int = HTTP_CONCURRENCY,
    prefetched: dict[str, Any] | None = None,
) -> list[LoadedProfile]:
    """Read every profile named by ``sources``, one result per profile, in sorted path order.

    ``opener(url, timeout, headers)`` opens http(s) sources (default: urllib, honouring
    ``validate_certs``); ``timeout`` is the deadline of one URL. URLs are fetched up to
    ``concurrency`` at a time, with conditional requests against ``store`` when given;
    ``prefetched`` holds what ``fetch_profiles`` already brought for some of them.
    """
    base_dir = os.path.abspath(base_dir)
    inc = [os.path.normpath(os.path.join(base_dir, os.path.expanduser(str(p)))) for p in (include_path or [])]
    items: set[str] = set()
    failed: list[LoadedProfile] = []
    allowed: list[str] = []  # the sources' directories: what #include may reach besides inc
    for source in sources:
        if not isinstance(source, str) or not source.strip():
            failed.append(LoadedProfile(str(source), None, LcfgError("empty or invalid source entry")))
            continue
        source = source.strip()
        if is_url(source):
            items.add(source)
            continue
        path = os.path.normpath(os.path.join(base_dir, os.path.expanduser(source)))
        if os.path.isdir(path):
            found, errors = _scan(path)
            items.update(found)
            failed.extend(errors)
            allowed.append(path)
        elif os.path.isfile(path):
            items.add(path)
            allowed.append(os.path.dirname(path))
        elif os.path.exists(path):
            failed.append(LoadedProfile(path, None, LcfgError("not a regular file or directory", file=path)))
        else:
            failed.append(LoadedProfile(path, None, LcfgError("no such file or directory", file=path)))

    def load(item: str) -> LoadedProfile:
        return _load_one(item, inc, defines, timeout, validate_certs, allowed, opener, store, prefetched)

    urls = sorted(item for item in items if is_url(item))
    results = [load(item) for item in sorted(items) if not is_url(item)]
    if len(urls) > 1 and concurrency > 1:
        with ThreadPoolExecutor(max_workers=min(concurrency, len(urls)), thread_name_prefix="lcfg-url") as pool:
            results.extend(pool.map(load, urls))
    else:
        results.extend(load(url) for url in urls)
    results.extend(failed)
    results.sort(key=lambda r: r.source)
    return results
