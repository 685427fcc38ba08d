# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The storage directories, and keeping every disk path inside them (pure but for reading paths).

* every image, template, backing file and directory the module touches lies inside
  the storage directories, checked on the resolved path (symbolic links followed), so
  a symlinked directory cannot lead out;
* the play's ``storage_dirs`` is authoritative; a hypervisor profile's list
  (``profile_storage_dirs``, the ``xen.storagedirs`` resource) may only narrow it;
* a missing directory is created by the module (check mode predicts it), DIR_MODE root
  (GROUP_DIR_MODE root:``storage_group`` when set); an existing directory's owner and mode
  are never changed.
"""

from __future__ import annotations

import os
from typing import Any

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import Conflict, ValidationError
from ansible_collections.lcfg.xen.plugins.module_utils.common.validate import path_inside

__all__ = [
    "DEFAULT_STORAGE_DIRS",
    "DIR_MODE",
    "GROUP_DIR_MODE",
    "ANCESTOR_MODE",
    "real_inside",
    "confine",
    "storage_dirs_param",
    "narrow_storage_dirs",
    "missing_directories",
]

# The one default list of storage directories: xen_disk, xen_domain, xen_guests and the
# guest role (guest_storage_dirs empty) all use it. /guests and /data/guests are the
# diskpaths of the original lcfg-xen examples.
DEFAULT_STORAGE_DIRS = [
    "/var/lib/libvirt/images",
    "/var/lib/xen/images",
    "/var/lib/lcfg-xen",
    "/guests",
    "/data/guests",
]

DIR_MODE = 0o700
GROUP_DIR_MODE = 0o710  # with storage_group: the hypervisor's user may pass through, not list
ANCESTOR_MODE = 0o755  # missing parents above a storage directory, as mkdir -p would make them


def real_inside(path: str, dirs: list[str]) -> str | None:
    """The resolved ``path`` (symbolic links followed) when it lies inside one of the resolved
    ``dirs``, else None. Missing trailing components are kept as they are."""
    real = os.path.realpath(path)
    for directory in dirs:
        base = os.path.realpath(directory)
        if real == base or real.startswith(base.rstrip("/") + "/"):
            return real
    return None


def confine(path: str, dirs: list[str], parameter: str) -> str:
    """The normalised ``path`` when it lies inside ``dirs`` both as written and resolved;
    else ValidationError naming ``parameter``."""
    try:
        normal = path_inside(str(path), dirs)
    except ValueError as exc:
        raise ValidationError(
            parameter, f"{exc}; add its directory to the play's 'storage_dirs' or choose a path inside one"
        ) from None
    real = real_inside(normal, dirs)
    if real is None:
        raise ValidationError(
            parameter,
            f"{normal!r} resolves to {os.path.realpath(normal)!r} (through a symbolic "
            f"link), outside the storage directories {', '.join(dirs)}: refused",
        )
    return normal


def storage_dirs_param(dirs: list[str] | None, parameter: str = "storage_dirs") -> list[str]:
    """The play's storage directories (default: DEFAULT_STORAGE_DIRS), normalised."""
    if dirs is None:
        dirs = list(DEFAULT_STORAGE_DIRS)
    if not dirs:
        raise ValidationError(parameter, "must name at least one directory")
    for directory in dirs:
        if not os.path.isabs(str(directory)):
            raise ValidationError(parameter, f"{directory!r} is not an absolute path")
    return [os.path.normpath(str(d)) for d in dirs]


def narrow_storage_dirs(play_dirs: list[str], profile_dirs: Any) -> list[str]:
    """The storage directories in force: the hypervisor profile's list when it has one, each
    entry inside the play's list (the play is authoritative: a profile can only narrow it)."""
    if not profile_dirs:
        return play_dirs
    if isinstance(profile_dirs, str):
        profile_dirs = profile_dirs.split()
    narrowed = []
    for directory in profile_dirs:
        directory = str(directory)
        if not os.path.isabs(directory):
            raise ValidationError("profile_storage_dirs", f"{directory!r} is not an absolute path")
        try:
            narrowed.append(confine(directory, play_dirs, "profile_storage_dirs"))
        except ValidationError as exc:
            raise ValidationError(
                "profile_storage_dirs",
                f"{exc.message}. A hypervisor profile (xen.storagedirs) may only narrow the "
                "play's storage directories; to allow it, add it to the play's storage_dirs "
                "(guest_storage_dirs)",
            ) from None
    return narrowed


def missing_directories(directory: str, dirs: list[str]) -> list[tuple[str, int]]:
    """[(directory, mode)] to create, top down, so that ``directory`` exists.

    Directories at or below a storage directory get DIR_MODE; missing parents above a
    storage directory (``/data`` of ``/data/guests``) get ANCESTOR_MODE. Anything else
    is never created (the caller confined ``directory`` already).
    """
    missing = []
    current = os.path.normpath(directory)
    while not os.path.lexists(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    if os.path.lexists(current) and not os.path.isdir(current):
        raise Conflict(f"{current} exists but is not a directory: choose another path")
    steps = []
    for path in reversed(missing):
        if any(path == d or path.startswith(d.rstrip("/") + "/") for d in dirs):
            steps.append((path, DIR_MODE))
        elif any(d.startswith(path.rstrip("/") + "/") for d in dirs):
            steps.append((path, ANCESTOR_MODE))
        else:  # pragma: no cover - confine() rules this out
            raise ValidationError("path", f"{path} is outside the storage directories")
    return steps
