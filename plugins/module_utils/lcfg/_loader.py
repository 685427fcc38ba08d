# -*- coding: utf-8 -*-
# Copyright: lcfg.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
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
* ``http://`` and ``https://`` URLs are XML profiles, fetched with a timeout, TLS
  verification (unless disabled) and a size cap; redirects stay on http(s).

Relative paths (sources and include path) are relative to ``base_dir``. Profiles are
returned in sorted path order, each at most once; a profile that fails becomes a
:class:`LoadedProfile` with ``error`` set and the others still load.
"""

from __future__ import annotations

import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from ._errors import LcfgError
from ._profile import Profile
from ._source import read_source_profile
from ._xml import read_xml_profile

__all__ = ["LoadedProfile", "load_profiles", "is_url", "is_profile_file", "MAX_URL_SIZE"]

MAX_URL_SIZE = 32 * 1024 * 1024

_SKIP_SUFFIXES = (
    ".h", ".def", ".yml", ".yaml", ".md", ".rst", ".txt", ".swp", ".swo", ".swx", ".bak",
    ".orig", ".rej", ".tmp", ".old", ".rpmnew", ".rpmsave", ".rpmorig", ".dpkg-old",
    ".dpkg-new", ".dpkg-dist", ".dpkg-bak", ".ucf-old", ".ucf-new", ".ucf-dist", ".pyc",
    # what else lives next to published profiles: archives, databases, web files, checksums
    ".gz", ".bz2", ".xz", ".zst", ".db", ".json", ".html", ".htm", ".log", ".md5", ".sha1",
    ".sha256", ".sig", ".asc",
)


@dataclass
class LoadedProfile:
    source: str              # file path or URL
    profile: Profile | None  # None when it failed
    error: LcfgError | None


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
    if low.startswith("readme") or low.endswith(_SKIP_SUFFIXES):
        return False
    return True


def _scan(directory: str) -> tuple[list[str], list[LoadedProfile]]:
    found: list[str] = []
    errors: list[LoadedProfile] = []

    def onerror(exc: OSError) -> None:
        where = exc.filename or directory
        errors.append(LoadedProfile(where, None, LcfgError(
            f"cannot read directory: {exc.strerror or exc}", file=where)))

    for root, dirs, files in os.walk(directory, onerror=onerror):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            full = os.path.join(root, name)
            if is_profile_file(name) and os.path.isfile(full):
                found.append(full)
    return found, errors


class _SafeRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[override]
        if not is_url(newurl):
            raise urllib.error.HTTPError(newurl, code, "redirect to a non-http(s) URL refused",
                                         headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch_url(url: str, timeout: float = 30.0, validate_certs: bool = True,
              max_size: int | None = None) -> bytes:
    """GET an XML profile; LcfgError (naming the URL) for any failure."""
    if max_size is None:
        max_size = MAX_URL_SIZE
    if validate_certs:
        context = ssl.create_default_context()
    else:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context),
                                         _SafeRedirect())
    request = urllib.request.Request(url, headers={"User-Agent": "lcfg.xen-inventory",
                                                   "Accept": "application/xml, text/xml, */*"})
    try:
        with opener.open(request, timeout=timeout) as resp:
            data = resp.read(max_size + 1)
    except urllib.error.HTTPError as exc:
        raise LcfgError(f"HTTP error {exc.code}: {exc.reason}", file=url) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        hint = ("; set validate_certs: false only for a trusted test server"
                if isinstance(reason, ssl.SSLError) else "")
        raise LcfgError(f"cannot fetch: {reason}{hint}", file=url) from None
    except (OSError, ValueError) as exc:  # timeouts, connection resets, bad URLs
        raise LcfgError(f"cannot fetch: {exc}", file=url) from None
    if len(data) > max_size:
        raise LcfgError(f"profile larger than {max_size} bytes", file=url)
    return data


def _load_one(source: str, include_path: list[str], defines: dict[str, str] | None,
              timeout: float, validate_certs: bool) -> LoadedProfile:
    try:
        if is_url(source):
            data = fetch_url(source, timeout=timeout, validate_certs=validate_certs)
            return LoadedProfile(source, read_xml_profile(source, data=data), None)
        if source.lower().endswith(".xml"):
            return LoadedProfile(source, read_xml_profile(source), None)
        return LoadedProfile(source, read_source_profile(source, include_path=include_path,
                                                         defines=defines), None)
    except LcfgError as exc:
        return LoadedProfile(source, None, exc)
    except (RecursionError, MemoryError) as exc:  # pathological input
        return LoadedProfile(source, None, LcfgError(f"profile too complex: {exc!r}", file=source))


def load_profiles(sources: list[str], base_dir: str, include_path: list[str] | None = None,
                  defines: dict[str, str] | None = None, timeout: float = 30.0,
                  validate_certs: bool = True) -> list[LoadedProfile]:
    """Read every profile named by ``sources``, one result per profile, in sorted path order."""
    base_dir = os.path.abspath(base_dir)
    inc = [os.path.normpath(os.path.join(base_dir, os.path.expanduser(str(p))))
           for p in (include_path or [])]
    items: set[str] = set()
    failed: list[LoadedProfile] = []
    for source in sources:
        if not isinstance(source, str) or not source.strip():
            failed.append(LoadedProfile(str(source), None,
                                        LcfgError("empty or invalid source entry")))
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
        elif os.path.isfile(path):
            items.add(path)
        elif os.path.exists(path):
            failed.append(LoadedProfile(path, None, LcfgError(
                "not a regular file or directory", file=path)))
        else:
            failed.append(LoadedProfile(path, None, LcfgError("no such file or directory",
                                                              file=path)))
    results = [_load_one(item, inc, defines, timeout, validate_certs) for item in items]
    results.extend(failed)
    results.sort(key=lambda r: r.source)
    return results
