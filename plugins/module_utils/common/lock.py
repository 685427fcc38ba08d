# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""One run at a time per hypervisor: the lock every changing module call takes.

Two playbook runs on one host used to trip over each other: one planned a change from
what it read, the other made it first, and the first failed on "already running" or "File
exists". Every module call that changes a hypervisor (not check mode, not the _info modules)
holds ``hypervisor_lock(keys, ...)`` from its first read to its last change, so plan and
apply see one consistent host.

The locks are ``flock`` locks on files in a directory only this user can write
(``/run/lcfg-xen`` for root, made 0700), opened without following links. A waiter polls for
at most ``timeout`` seconds, then fails naming the holder: the holder writes its pid, module
and start time into the lock file. The kernel drops the lock when the holder dies, so a
killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import tempfile
import time
from collections.abc import Iterator

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import Conflict, ValidationError, XenError
from ansible_collections.lcfg.xen.plugins.module_utils.common.validate import safe_name

__all__ = [
    "LOCK_TIMEOUT",
    "LOCK_ARGSPEC",
    "lock_directory",
    "open_lock_file",
    "flock_by",
    "lock_keys",
    "hypervisor_lock",
]

# Long enough for another run's slowest call (a template clone) to finish.
LOCK_TIMEOUT = 600

LOCK_ARGSPEC: dict = {
    "lock_timeout": {"type": "float", "default": LOCK_TIMEOUT},
}

_POLL = 0.1


def lock_directory(directory: str | None = None) -> str:
    """A directory only this user can write: /run/lcfg-xen for root (made 0700 when missing).

    An existing one must be a real directory (not a link), owned by this user and closed to
    others; otherwise another user could plant or pre-empt lock files.
    """
    uid = os.geteuid()
    if directory is None:
        directory = (
            "/run/lcfg-xen"
            if uid == 0 and os.path.isdir("/run")
            else os.path.join(tempfile.gettempdir(), f"lcfg-xen-{uid}")
        )
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise XenError(f"cannot create the lock directory {directory}: {exc.strerror}") from None
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid or info.st_mode & 0o077:
        raise XenError(
            f"lock directory {directory} is not a private directory of uid {uid} (it is a link, "
            "belongs to someone else or is open to others): remove it and run again"
        )
    return directory


def _uri_host(uri: str | None) -> str:
    """The machine a libvirt URI changes: ``localhost`` for a local one, else its host name.

    The test driver keeps its state inside the connecting process, so nothing is shared: it
    gets a lock of its own rather than holding up the real hypervisor.
    """
    if not uri:
        return "localhost"
    scheme, _sep, rest = uri.partition(":")
    if scheme.split("+", 1)[0].lower() == "test":
        return "test"
    if not rest.startswith("//") or rest.startswith("///"):
        return "localhost"
    host = rest[2:].split("/", 1)[0].rsplit("@", 1)[-1]
    host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host.strip("[]")
    host = host.lower()
    return host if host and host not in ("localhost", "127.0.0.1", "::1") else "localhost"


def lock_keys(uri: str | None, local_commands: bool = False) -> list:
    """Names of the locks a call takes: the hypervisor of ``uri``, plus this machine when the
    call also changes it directly (``local_commands``: ip link, files), sorted (no deadlock)."""
    keys = {_uri_host(uri)}
    if local_commands:
        keys.add("localhost")
    return sorted(safe_name(key, "_")[:100] for key in keys)


def _holder(fd: int) -> str:
    """What the lock file says about its holder, as a phrase for the waiter's message."""
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace") or "null")
        since = float(data["since"])
        return (
            f"pid {int(data['pid'])} ({str(data['module'])[:100]}, started "
            f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(since))}, "
            f"{max(0.0, time.time() - since):.0f} s ago)"
        )
    except (ValueError, TypeError, KeyError, OSError):
        return "a process that has not said who it is yet"


def open_lock_file(path: str, what: str) -> int:
    """Open (create, 0600) a lock file without following a link; ``what`` names it in errors."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        reason = "it is a symbolic link" if exc.errno == errno.ELOOP else exc.strerror
        raise XenError(f"cannot open the lock file {path}{what}: {reason}; remove it and run again") from None


def flock_by(fd: int, deadline: float) -> bool:
    """Take the exclusive flock on ``fd``, polling until ``deadline`` (time.monotonic());
    False when it is still held by another process then."""
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL)


def _acquire(path: str, key: str, timeout: float, module: str, deadline: float) -> int:
    fd = open_lock_file(path, "")
    try:
        if not flock_by(fd, deadline):
            raise Conflict(
                f"another run has held the lock on hypervisor {key} for more than {timeout:g} s: "
                f"{_holder(fd)} (lock file {path}); let it finish and run again, or raise lock_timeout"
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "module": module, "since": time.time()}).encode(), 0)
        return fd
    except BaseException:
        os.close(fd)
        raise


@contextlib.contextmanager
def hypervisor_lock(
    keys: list, module: str, timeout: float = LOCK_TIMEOUT, directory: str | None = None
) -> Iterator[dict]:
    """Hold the locks named ``keys`` (see ``lock_keys``) for the ``with`` block; wait at most
    ``timeout`` seconds in all. Yields ``{"waited": seconds}`` (how long the call queued)."""
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 <= timeout <= 86400:
        raise ValidationError("lock_timeout", f"must be a number of seconds from 0 to 86400, got {timeout!r}")
    directory = lock_directory(directory)
    start = time.monotonic()
    deadline = start + timeout
    fds: list = []
    try:
        for key in keys:
            fds.append(_acquire(os.path.join(directory, f"hypervisor-{key}.lock"), key, timeout, module, deadline))
        yield {"waited": round(time.monotonic() - start, 3)}
    finally:
        for fd in reversed(fds):
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # a waiter reading now sees no stale holder
            os.close(fd)
