# -*- coding: utf-8 -*-
# Copyright: lcfg.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Disk images: validation and planning (pure), and the steps that carry a plan out.

The pure half (``build_request``, ``plan_present``, ``plan_absent``, ``parse_size``,
``image_state``) takes plain data and returns plain data. The effectful half runs
``qemu-img`` with argument lists, or libvirt's storage API when a URI is given, and
libguestfs for the LCFG injection (``_guestfs.py``).

Safety rules, enforced here:

* an existing image is never overwritten; a mismatch is reported, naming the fix;
* a template is only ever read (copied with ``qemu-img convert`` or used as a
  read-only backing file);
* a new image is prepared under a temporary name in the same directory
  (``.<name>.lcfg-xen-partial``), LCFG settings are injected there, and only the
  finished image is linked to the final name (``link`` fails rather than replace
  a file that appeared meanwhile); a leftover temporary file from an interrupted
  run is removed and the work redone.

Confinement (nothing outside the storage directories, ever):

* every image, template, backing file and directory the module touches lies inside
  the storage directories, checked on the resolved path (symbolic links followed), so
  a symlinked directory cannot lead out; an image path that is itself a symbolic link
  is refused;
* the play's ``storage_dirs`` is authoritative; a hypervisor profile's list
  (``profile_storage_dirs``, the ``xen.storagedirs`` resource) may only narrow it;
* a missing directory is created by the module (check mode predicts it), 0700 root
  (0710 root:``storage_group`` when set); an existing directory's owner and mode are
  never changed;
* a new image is 0600 and its format is recorded in the ``trusted.lcfg-xen.format``
  extended attribute (settable by root only). The format of an image is never
  guessed from its contents: it is the declared one, else the recorded one, else raw.
"""

from __future__ import annotations

import contextlib
import grp
import hashlib
import json
import math
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import (
    Conflict,
    NotFound,
    ValidationError,
    XenError,
)
from ansible_collections.lcfg.xen.plugins.module_utils.disk.imagecheck import (
    compare_origin,
    image_problems,
    partition_problem,
    record_origin,
    recorded_origin,
    template_state,
)
from ansible_collections.lcfg.xen.plugins.module_utils.common.lock import flock_by, lock_directory, open_lock_file
from ansible_collections.lcfg.xen.plugins.module_utils.spec.schema import MAX_DISK_GB, MAX_PARTITION, check_text
from ansible_collections.lcfg.xen.plugins.module_utils.common.validate import path_inside

__all__ = [
    "DEFAULT_STORAGE_DIRS",
    "FORMAT_XATTR",
    "IMAGE_MODE",
    "DIR_MODE",
    "GROUP_DIR_MODE",
    "LOCK_TIMEOUT",
    "real_inside",
    "narrow_storage_dirs",
    "missing_directories",
    "recorded_format",
    "image_lock",
    "DEFAULT_LCFG_FILES",
    "FORMATS",
    "CLONE_MODES",
    "TEMP_SUFFIX",
    "GIB",
    "DiskRequest",
    "Plan",
    "parse_size",
    "format_size",
    "temp_path",
    "build_request",
    "normalise_info",
    "image_state",
    "plan_present",
    "plan_absent",
    "describe_step",
    "qemu_img_info",
    "LocalStorage",
    "LibvirtStorage",
    "domains_using",
    "run_disk",
    "list_images",
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

# trusted.* attributes can be set by root only: neither a guest nor the QEMU process
# (which may own the image file while it runs) can change what the format is taken to be.
FORMAT_XATTR = "trusted.lcfg-xen.format"
IMAGE_MODE = 0o600      # guest disks hold the guests' data
DIR_MODE = 0o700
GROUP_DIR_MODE = 0o710  # with storage_group: the hypervisor's user may pass through, not list
ANCESTOR_MODE = 0o755   # missing parents above a storage directory, as mkdir -p would make them
LOCK_TIMEOUT = 600

# Files written into an LCFG-managed clone, keyed by the setting they carry.
DEFAULT_LCFG_FILES = {
    "profile_url": "/etc/lcfg/profile_url",
    "hostname": "/etc/hostname",
}

FORMATS = ("raw", "qcow2")
CLONE_MODES = ("copy", "overlay")
TEMP_SUFFIX = ".lcfg-xen-partial"
GIB = 1024 ** 3

_UNITS = {
    "": 1, "b": 1,
    "k": 1024, "kb": 1000, "kib": 1024,
    "m": 1024 ** 2, "mb": 1000 ** 2, "mib": 1024 ** 2,
    "g": 1024 ** 3, "gb": 1000 ** 3, "gib": 1024 ** 3,
    "t": 1024 ** 4, "tb": 1000 ** 4, "tib": 1024 ** 4,
}
_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")
_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9_-]{0,62}))*$")
_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")


# --------------------------------------------------------------------------- pure

def parse_size(value: object, what: str = "size") -> int:
    """Bytes from an integer (bytes) or a string with a unit.

    Units: none or B (bytes); K, M, G, T and KiB, MiB, GiB, TiB (powers of 1024);
    KB, MB, GB, TB (powers of 1000). Case-insensitive. The result must be a
    positive whole number of 512-byte sectors.
    """
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a size, not a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        raise ValueError(f"{what} {value!r}: give a float with a unit, e.g. '1.5G'")
    else:
        match = _SIZE_RE.match(str(value))
        if not match:
            raise ValueError(f"invalid {what} {value!r}: expected a number with an optional unit, e.g. 10G, 512M, 20GiB")
        unit = match.group(2).lower()
        if unit not in _UNITS:
            raise ValueError(f"invalid {what} {value!r}: unknown unit {match.group(2)!r} (use B, K, M, G, T, KiB..TiB or KB..TB)")
        if len(match.group(1)) > 24:  # float() of thousands of digits is inf, int(inf) raises
            raise ValueError(f"invalid {what} {str(value)[:40]!r}...: the number is too long")
        amount = float(match.group(1)) * _UNITS[unit]
        if amount != int(amount):
            raise ValueError(f"invalid {what} {value!r}: not a whole number of bytes")
        number = int(amount)
    if number <= 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    if number % 512:
        raise ValueError(f"{what} {value!r} = {number} bytes is not a multiple of 512 bytes")
    return number


def format_size(number: int | None) -> str | None:
    """Human-readable binary size: 10737418240 -> '10 GiB', 1536 MiB -> '1.5 GiB'."""
    if number is None:
        return None
    for unit, scale in (("TiB", 1024 ** 4), ("GiB", 1024 ** 3), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if number >= scale:
            text = f"{number / scale:.3f}".rstrip("0").rstrip(".")
            return f"{text} {unit}"
    return f"{number} B"


def temp_path(path: str) -> str:
    """The temporary name a new image is prepared under: ``<dir>/.<name>.lcfg-xen-partial``."""
    directory, base = os.path.split(path)
    return os.path.join(directory, f".{base}{TEMP_SUFFIX}")


@dataclass
class DiskRequest:
    path: str
    state: str = "present"
    format: str | None = None
    size: int | None = None
    template: str | None = None
    clone: str = "copy"
    profile_url: str | None = None
    partition: int | None = None
    hostname: str | None = None
    lcfg_files: dict[str, str] = field(default_factory=dict)
    storage_dirs: list[str] = field(default_factory=lambda: list(DEFAULT_STORAGE_DIRS))
    template_format: str | None = None
    storage_gid: int | None = None
    lock_timeout: float = LOCK_TIMEOUT
    grow: bool = False
    uri: str | None = None
    pool: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def lcfg_managed(self) -> bool:
        return self.profile_url is not None and self.partition is not None

    def lcfg_contents(self) -> dict[str, str]:
        """{guest path: content} of the files injected into an LCFG-managed clone."""
        if not self.lcfg_managed:
            return {}
        values = {"profile_url": self.profile_url, "hostname": self.hostname}
        return {path: f"{values[key]}\n" for key, path in sorted(self.lcfg_files.items()) if path}


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
        raise ValidationError(parameter, f"{exc}; add its directory to the play's 'storage_dirs' or choose a path inside one") from None
    real = real_inside(normal, dirs)
    if real is None:
        raise ValidationError(parameter, f"{normal!r} resolves to {os.path.realpath(normal)!r} (through a symbolic link), "
                                         f"outside the storage directories {', '.join(dirs)}: refused")
    return normal


def storage_dirs_param(dirs: Any, parameter: str = "storage_dirs") -> list[str]:
    """The play's storage directories (default: DEFAULT_STORAGE_DIRS), normalised."""
    if dirs is None:
        dirs = list(DEFAULT_STORAGE_DIRS)
    if not isinstance(dirs, list) or not dirs:
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
            raise ValidationError("profile_storage_dirs",
                                  f"{exc.message}. A hypervisor profile (xen.storagedirs) may only narrow the "
                                  "play's storage directories; to allow it, add it to the play's storage_dirs "
                                  "(guest_storage_dirs)") from None
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


def build_request(params: dict[str, Any]) -> DiskRequest:
    """Validate module parameters into a DiskRequest; ValidationError names the parameter."""
    for key, value in params.items():  # no path, name or URL holds a control character (NUL reaches no system call)
        for item in value if isinstance(value, list) else (value.values() if isinstance(value, dict) else [value]):
            if isinstance(item, str):
                try:
                    check_text(item)
                except ValueError as exc:
                    raise ValidationError(key, str(exc)) from None
    dirs = narrow_storage_dirs(storage_dirs_param(params.get("storage_dirs")), params.get("profile_storage_dirs"))

    raw_path = params.get("path")
    if not raw_path:
        raise ValidationError("path", "is required")
    path = confine(str(raw_path), dirs, "path")
    base = os.path.basename(path)
    if path in dirs or not base or base.startswith(".") or str(raw_path).endswith("/"):
        raise ValidationError("path", f"{raw_path!r} must name an image file (not a directory or a hidden file)")
    if os.path.islink(path):
        raise ValidationError("path", f"{path} is a symbolic link: images are never opened through links; use the real path")

    req = DiskRequest(path=path, storage_dirs=dirs)
    group = params.get("storage_group")
    if group:
        try:
            req.storage_gid = grp.getgrnam(str(group)).gr_gid
        except KeyError:
            raise ValidationError("storage_group", f"no group {group!r} on this host: create it or leave storage_group unset") from None
    timeout = params.get("lock_timeout")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 <= timeout <= 86400:
            raise ValidationError("lock_timeout", f"must be a number of seconds from 0 to 86400, got {timeout!r}")
        req.lock_timeout = float(timeout)
    template_format = params.get("template_format")
    if template_format is not None and template_format not in FORMATS:
        raise ValidationError("template_format", f"must be one of {', '.join(FORMATS)}, got {template_format!r}")
    req.template_format = template_format
    req.state = params.get("state") or "present"
    if req.state not in ("present", "absent"):
        raise ValidationError("state", f"must be present or absent, got {req.state!r}")
    req.uri = params.get("uri") or None
    req.pool = params.get("pool") or None
    req.grow = bool(params.get("grow"))

    fmt = params.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise ValidationError("format", f"must be one of {', '.join(FORMATS)}, got {fmt!r}")
    req.format = fmt

    size_gb = params.get("size_gb")
    size = params.get("size")
    if size_gb is not None and size is not None:
        raise ValidationError("size", "give either size_gb or size, not both")
    if size_gb is not None:
        if isinstance(size_gb, bool):
            raise ValidationError("size_gb", "must be a number of GiB")
        try:
            amount = float(size_gb)
        except (TypeError, ValueError, OverflowError):
            raise ValidationError("size_gb", f"must be a number of GiB, got {str(size_gb)[:40]!r}") from None
        if not math.isfinite(amount) or amount > MAX_DISK_GB:
            raise ValidationError("size_gb", f"must be a finite number of GiB up to {MAX_DISK_GB}, got {size_gb!r}")
        if amount <= 0 or amount * GIB != int(amount * GIB) or int(amount * GIB) % 512:
            raise ValidationError("size_gb", f"must be a positive number of GiB (a multiple of 512 bytes), got {size_gb!r}")
        req.size = int(amount * GIB)
    elif size is not None:
        try:
            req.size = parse_size(size)
        except ValueError as exc:
            raise ValidationError("size", str(exc)) from None

    template = params.get("template")
    if template:
        req.template = confine(str(template), dirs, "template")
        if req.template == path:
            raise ValidationError("template", "is the image itself: a template is never written to; choose another path")
        cloned_from = recorded_origin(req.template)
        if cloned_from is not None:  # a clone is some guest's disk: cloning it copies that guest's data
            raise ValidationError("template", f"{req.template} is a guest's disk image (xen_disk cloned it from "
                                  f"{cloned_from.get('template')}), not a template: a clone never copies another "
                                  "guest's data; name the template itself")
    clone = params.get("clone") or "copy"
    if clone not in CLONE_MODES:
        raise ValidationError("clone", f"must be one of {', '.join(CLONE_MODES)}, got {clone!r}")
    req.clone = clone
    if params.get("clone") and not req.template and req.state == "present":
        raise ValidationError("clone", "only applies with 'template'")
    if req.template and clone == "overlay":
        if fmt == "raw":
            raise ValidationError("format", "an overlay is always qcow2: drop 'format' or set it to qcow2")
        req.format = "qcow2"

    profile_url = params.get("profile_url")
    partition = params.get("partition")
    if profile_url is not None and str(profile_url).strip() == "":
        profile_url = None
    if partition is not None:
        if isinstance(partition, bool) or not str(partition).isdigit() or len(str(partition)) > 4 \
                or not 1 <= int(partition) <= MAX_PARTITION:
            raise ValidationError("partition", f"must be a partition number (1, 2, ... 5 for the first logical partition), got {partition!r}")
        partition = int(partition)
    if profile_url is not None:
        if not _URL_RE.match(str(profile_url)):
            raise ValidationError("profile_url", f"must be a URL such as http://lcfg.example.org/profiles/, got {profile_url!r}")
        if partition is None:
            raise ValidationError("partition", "is required with profile_url: the partition whose filesystem receives the LCFG settings")
        if not req.template:
            raise ValidationError("profile_url", "LCFG settings are injected into clones only: set 'template' too")
    elif partition is not None and req.template:
        req.warnings.append(f"partition {partition} is ignored without profile_url: nothing is injected into {path}")
    req.profile_url = str(profile_url) if profile_url is not None else None
    req.partition = partition if req.profile_url is not None else None

    hostname = params.get("hostname")
    if hostname is None:
        hostname = os.path.splitext(base)[0]
        what = f"the host name taken from the file name ({hostname!r})"
    else:
        what = repr(hostname)
    if req.lcfg_managed and not _HOSTNAME_RE.match(str(hostname)):
        raise ValidationError("hostname", f"{what} is not a valid host name: set 'hostname'")
    req.hostname = str(hostname)

    files = dict(DEFAULT_LCFG_FILES)
    given = params.get("lcfg_files") or {}
    if not isinstance(given, dict):
        raise ValidationError("lcfg_files", "must be a dictionary like {profile_url: /etc/lcfg/profile_url}")
    for key, guest_path in given.items():
        if key not in DEFAULT_LCFG_FILES:
            raise ValidationError("lcfg_files", f"unknown key {key!r}: use {', '.join(sorted(DEFAULT_LCFG_FILES))}")
        if guest_path in (None, ""):
            files[key] = ""
            continue
        guest_path = str(guest_path)
        if not os.path.isabs(guest_path) or guest_path.endswith("/") or ".." in guest_path.split("/"):
            raise ValidationError("lcfg_files", f"{key}: {guest_path!r} must be an absolute file path inside the guest without '..'")
        files[key] = os.path.normpath(guest_path)
    req.lcfg_files = files
    return req


def normalise_info(info: dict[str, Any]) -> dict[str, Any]:
    """Reduce ``qemu-img info --output=json`` to the fields we compare and report."""
    backing = info.get("full-backing-filename") or info.get("backing-filename")
    return {
        "format": info.get("format"),
        "virtual_size": int(info.get("virtual-size", 0)),
        "actual_size": int(info.get("actual-size", 0)) if info.get("actual-size") is not None else None,
        "backing_file": os.path.normpath(backing) if backing else None,
        "backing_format": info.get("backing-filename-format") if backing else None,
    }


def image_state(path: str, info: dict[str, Any] | None, lcfg: dict[str, str] | None = None) -> dict[str, Any]:
    """The module's vocabulary for one image (diff before/after and the ``image`` result)."""
    if info is None:
        return {"path": path, "exists": False, "format": None, "virtual_size": None, "size": None,
                "backing_file": None, "backing_format": None, "lcfg_files": None}
    return {
        "path": path,
        "exists": True,
        "format": info["format"],
        "virtual_size": info["virtual_size"],
        "size": format_size(info["virtual_size"]),
        "backing_file": info["backing_file"],
        "backing_format": info["backing_format"],
        "lcfg_files": dict(lcfg) if lcfg else None,
    }


@dataclass
class Plan:
    steps: list[dict[str, Any]]
    before: dict[str, Any]
    after: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def plan_present(req: DiskRequest, current: dict[str, Any] | None, template: dict[str, Any] | None,
                 temp_exists: bool) -> Plan:
    """Steps that make ``req.path`` present, or Conflict/NotFound/ValidationError.

    ``current`` and ``template`` are ``normalise_info`` results or None when missing.
    """
    before = image_state(req.path, current)
    for what, info in (("image", current), ("template", template)):
        backing = info and info["backing_file"]
        if backing and real_inside(backing, req.storage_dirs) is None:
            raise Conflict(f"the {what} {req.template if what == 'template' else req.path} is a qcow2 image backed by "
                           f"{backing}, outside the storage directories: refused (the guest would read that host "
                           "file through it). Move the backing file into a storage directory")
    steps: list[dict[str, Any]] = []
    warnings: list[str] = list(req.warnings)
    temp = temp_path(req.path)
    if temp_exists:
        steps.append({"action": "remove-partial", "path": temp})

    if current is None:
        if req.template:
            if template is None:
                raise NotFound(f"template image {req.template} does not exist: create it first or fix 'template'")
            tsize = template["virtual_size"]
            if req.size is not None and req.size < tsize:
                raise ValidationError(
                    "size_gb" if req.size % GIB == 0 else "size",
                    f"{format_size(req.size)} is smaller than the template {req.template} "
                    f"({format_size(tsize)}): a clone can only be the same size or larger",
                )
            size = req.size if req.size is not None else tsize
            if req.clone == "overlay":
                fmt = "qcow2"
                steps.append({"action": "overlay", "template": req.template,
                              "template_format": template["format"], "size": size, "path": temp})
                backing, backing_format = req.template, template["format"]
            else:
                fmt = req.format or template["format"]
                steps.append({"action": "copy", "template": req.template,
                              "template_format": template["format"], "format": fmt, "path": temp})
                if size > tsize:
                    steps.append({"action": "grow", "path": temp, "format": fmt, "size": size})
                backing, backing_format = None, None
            lcfg = req.lcfg_contents()
            if lcfg:
                steps.append({"action": "inject", "path": temp, "format": fmt, "template": req.template,
                              "final": req.path, "partition": req.partition, "files": lcfg})
        else:
            if req.size is None:
                raise ValidationError("size_gb", f"is required to create {req.path} (or set 'template' to clone one)")
            fmt = req.format or "raw"
            size = req.size
            steps.append({"action": "create", "path": temp, "format": fmt, "size": size})
            backing, backing_format, lcfg = None, None, {}
        steps.append({"action": "rename", "from": temp, "to": req.path, "format": fmt, "size": size})
        after = image_state(req.path, {"format": fmt, "virtual_size": size, "backing_file": backing,
                                       "backing_format": backing_format}, lcfg or None)
        return Plan(steps, before, after, warnings)

    # The image exists: check it matches, never overwrite it.
    problems: list[str] = []
    wanted_format = req.format or (template["format"] if req.template and template and req.clone == "copy" else None)
    if wanted_format and current["format"] != wanted_format:
        problems.append(f"its format is {current['format']}, not {wanted_format}")
    if req.template and req.clone == "overlay" and current["backing_file"] != req.template:
        problems.append(f"it is not an overlay of {req.template} (backing file: {current['backing_file'] or 'none'})")
    if req.template and req.clone == "copy" and current["backing_file"]:
        problems.append(f"it is an overlay of {current['backing_file']}, not a full copy")
    if problems:
        raise Conflict(
            f"{req.path} already exists and differs from the request: {'; '.join(problems)}. "
            "It is never overwritten: change the parameters to match it, or remove it first "
            "(state: absent) if its contents may be lost",
            image=before,
        )
    size = current["virtual_size"]
    if req.size is not None and req.size > size:
        if not req.grow:
            raise Conflict(
                f"{req.path} is {format_size(size)}, smaller than the requested {format_size(req.size)}: "
                "set grow: true to enlarge it (the filesystems inside are not resized)",
                image=before,
            )
        steps.append({"action": "grow", "path": req.path, "format": current["format"], "size": req.size})
        size = req.size
    elif req.size is not None and req.size < size:
        warnings.append(f"{req.path} is {format_size(size)}, larger than the requested "
                        f"{format_size(req.size)}; images are never shrunk")
    after = dict(before)
    after["virtual_size"] = size
    after["size"] = format_size(size)
    return Plan(steps, before, after, warnings)


def plan_absent(req: DiskRequest, current: dict[str, Any] | None, temp_exists: bool) -> Plan:
    before = image_state(req.path, current)
    steps: list[dict[str, Any]] = []
    if temp_exists:
        steps.append({"action": "remove-partial", "path": temp_path(req.path)})
    if current is not None:
        steps.append({"action": "delete", "path": req.path})
    return Plan(steps, before, image_state(req.path, None), list(req.warnings))


def describe_step(step: dict[str, Any]) -> str:
    """One line per step, for the ``actions`` result."""
    action = step["action"]
    if action == "remove-partial":
        return f"remove the partial image {step['path']} left by an interrupted run"
    if action == "mkdir":
        owner = f"root:{step['group']}" if step.get("group") is not None else "root:root"
        return f"create directory {step['path']} (mode {step['mode']:04o}, owner {owner})"
    if action == "define-pool":
        return f"define and start libvirt storage pool {step['name']} for {step['directory']}"
    if action == "create":
        return f"create {step['format']} image {step['path']} of {format_size(step['size'])}"
    if action == "copy":
        return f"copy template {step['template']} ({step['template_format']}) to {step['format']} image {step['path']}"
    if action == "overlay":
        return (f"create qcow2 overlay {step['path']} of {format_size(step['size'])} backed by "
                f"{step['template']} ({step['template_format']})")
    if action == "grow":
        return f"grow {step['path']} to {format_size(step['size'])}"
    if action == "inject":
        files = ", ".join(sorted(step["files"]))
        return f"write LCFG settings ({files}) into partition {step['partition']} of {step['path']}"
    if action == "rename":
        return (f"move the finished image {step['from']} to {step['to']} "
                f"(mode {IMAGE_MODE:04o}, format {step['format']} recorded)")
    if action == "delete":
        return f"delete image {step['path']}"
    return action


# --------------------------------------------------------------------------- effects

def _run(args: list[str], what: str) -> str:
    try:
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise XenError(f"cannot {what}: {args[0]}: {exc}. Install qemu-utils on the host") from exc
    if proc.returncode != 0:
        raise XenError(f"cannot {what}: {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def recorded_format(path: str) -> str | None:
    """The format xen_disk recorded when it created ``path`` (FORMAT_XATTR), or None."""
    try:
        value = os.getxattr(path, FORMAT_XATTR, follow_symlinks=False).decode("ascii", "replace")
    except OSError:
        return None
    return value if value in FORMATS else None


def qemu_img_info(path: str, fmt: str | None = None) -> dict[str, Any] | None:
    """``normalise_info`` of ``path`` read as ``fmt``, or None when it does not exist.

    The format is always given to qemu-img (declared, else recorded, else raw): probing it
    from the first bytes would let a guest turn its raw disk into a qcow2 image with a
    backing file of its choosing.
    """
    if not os.path.lexists(path):
        return None
    if os.path.islink(path) or not os.path.isfile(path):
        raise Conflict(f"{path} exists but is not a regular file (or is a symbolic link): choose another path")
    fmt = fmt or recorded_format(path) or "raw"
    out = _run(["qemu-img", "info", "-U", "-f", fmt, "--output=json", path], f"read image {path} as {fmt}")
    return normalise_info(json.loads(out))


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalStorage:
    """Images handled with qemu-img and plain file operations on this host."""

    def pool_steps(self, req: DiskRequest) -> list[dict[str, Any]]:
        """The missing directories of the image, created by the module (predicted in check mode)."""
        if req.state != "present":
            return []
        steps = []
        for path, mode in missing_directories(os.path.dirname(req.path), req.storage_dirs):
            group = req.storage_gid if mode == DIR_MODE else None
            steps.append({"action": "mkdir", "path": path, "group": group,
                          "mode": GROUP_DIR_MODE if group is not None else mode})
        return steps

    def make_directory(self, path: str, mode: int, gid: int | None) -> None:
        os.mkdir(path, 0o700)  # never wider than asked, whatever the umask
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            if gid is not None:
                os.fchown(fd, -1, gid)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)

    def define_pool(self, step: dict[str, Any]) -> None:  # pragma: no cover - never planned locally
        raise XenError("no libvirt connection for a storage pool")

    def create(self, path: str, fmt: str, size: int) -> None:
        _run(["qemu-img", "create", "-q", "-f", fmt, path, str(size)], f"create {path}")

    def copy(self, template: str, template_format: str, path: str, fmt: str) -> None:
        # convert writes only non-zero data, so a raw result stays sparse.
        _run(["qemu-img", "convert", "-q", "-f", template_format, "-O", fmt, template, path],
             f"copy {template} to {path}")

    def overlay(self, template: str, template_format: str, path: str, size: int) -> None:
        _run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", template, "-F", template_format, path, str(size)],
             f"create overlay {path}")

    def grow(self, path: str, fmt: str, size: int) -> None:
        _run(["qemu-img", "resize", "-q", "-f", fmt, path, str(size)], f"grow {path}")

    def delete(self, path: str) -> None:
        os.unlink(path)

    def remove_partial(self, path: str) -> None:
        if os.path.lexists(path):
            os.unlink(path)

    def rename(self, temp: str, path: str, fmt: str, origin: dict[str, Any] | None = None) -> str | None:
        """Seal the finished image (mode 0600, format and a clone's origin recorded), then give
        it its name.

        Returns a warning when the filesystem cannot hold the format record."""
        warning = None
        fd = os.open(temp, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            os.fchmod(fd, IMAGE_MODE)
            try:
                os.setxattr(fd, FORMAT_XATTR, fmt.encode())
                if origin is not None:
                    record_origin(fd, origin)
            except OSError as exc:
                warning = (f"cannot record the format of {path} ({exc.strerror}): it will be read as raw unless "
                           f"the guest's disk declares format: {fmt}")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, path)  # fails instead of replacing a file that appeared meanwhile
        except FileExistsError:
            os.unlink(temp)
            raise Conflict(f"{path} appeared while the image was being prepared; it was left alone") from None
        os.unlink(temp)
        _fsync(os.path.dirname(path))
        return warning

    def refresh(self, directory: str) -> None:
        """Nothing to refresh without libvirt."""


class LibvirtStorage(LocalStorage):
    """Images created through libvirt's storage API (dir pools), finished locally.

    Creating, copying, overlaying, growing and deleting go through libvirt; the
    temporary image is then finished (LCFG injection, rename) on this host, so the
    module must run on the host that holds the storage directory.
    """

    def __init__(self, conn: Any, pool_name: str | None) -> None:
        self.conn = conn
        self.pool_name = pool_name

    def _pools_by_dir(self) -> dict[str, Any]:
        from lxml import etree

        found: dict[str, Any] = {}
        for pool in self.conn.listAllStoragePools(0):
            root = etree.fromstring(pool.XMLDesc(0).encode())
            if root.get("type") != "dir":
                continue
            target = root.findtext("target/path")
            if target:
                found[os.path.normpath(target)] = pool
        return found

    def pool_name_for(self, directory: str) -> str:
        if self.pool_name:
            return self.pool_name
        return "lcfg-xen" + re.sub(r"[^A-Za-z0-9_.-]", "-", directory)

    def pool_steps(self, req: DiskRequest) -> list[dict[str, Any]]:
        steps = super().pool_steps(req)
        if req.state != "present":
            return []
        wanted = {os.path.dirname(req.path)}
        if req.template and req.clone == "copy":
            wanted.add(os.path.dirname(req.template))
        pools = self._pools_by_dir()
        for directory in sorted(wanted):
            pool = pools.get(directory)
            if pool is None:
                steps.append({"action": "define-pool", "name": self.pool_name_for(directory), "directory": directory})
            elif not pool.isActive():
                steps.append({"action": "define-pool", "name": pool.name(), "directory": directory})
        return steps

    def define_pool(self, step: dict[str, Any]) -> None:
        from lxml import etree

        pool = self._pools_by_dir().get(step["directory"])
        if pool is None:
            root = etree.Element("pool", type="dir")
            etree.SubElement(root, "name").text = step["name"]
            target = etree.SubElement(root, "target")
            etree.SubElement(target, "path").text = step["directory"]
            pool = self._call(lambda: self.conn.storagePoolDefineXML(etree.tostring(root).decode(), 0),
                              f"define storage pool {step['name']} for {step['directory']}")
            self._call(lambda: pool.setAutostart(1), f"set autostart on storage pool {step['name']}")
        if not pool.isActive():
            self._call(lambda: pool.create(0), f"start storage pool {pool.name()}")

    def _call(self, func: Any, what: str) -> Any:
        from ansible_collections.lcfg.xen.plugins.module_utils.common.libvirt import libvirt

        try:
            return func()
        except libvirt.libvirtError as exc:
            from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import LibvirtFailure

            raise LibvirtFailure(f"cannot {what}: {exc.get_error_message()}") from exc

    def _pool(self, directory: str) -> Any:
        pool = self._pools_by_dir().get(directory)
        if pool is None or not pool.isActive():
            raise NotFound(f"no active libvirt storage pool for {directory}")
        self._call(lambda: pool.refresh(0), f"refresh storage pool {pool.name()}")
        return pool

    def _volume_xml(self, name: str, fmt: str, size: int, backing: tuple[str, str] | None = None) -> str:
        from lxml import etree

        root = etree.Element("volume")
        etree.SubElement(root, "name").text = name
        etree.SubElement(root, "capacity", unit="bytes").text = str(size)
        etree.SubElement(root, "allocation", unit="bytes").text = "0"
        target = etree.SubElement(root, "target")
        etree.SubElement(target, "format", type=fmt)
        if backing:
            store = etree.SubElement(root, "backingStore")
            etree.SubElement(store, "path").text = backing[0]
            etree.SubElement(store, "format", type=backing[1])
        return etree.tostring(root).decode()

    def create(self, path: str, fmt: str, size: int) -> None:
        pool = self._pool(os.path.dirname(path))
        xml = self._volume_xml(os.path.basename(path), fmt, size)
        self._call(lambda: pool.createXML(xml, 0), f"create volume {path}")

    def copy(self, template: str, template_format: str, path: str, fmt: str) -> None:
        source_pool = self._pool(os.path.dirname(template))
        source = self._call(lambda: source_pool.storageVolLookupByName(os.path.basename(template)),
                            f"find template volume {template}")
        size = int(source.info()[1])
        pool = self._pool(os.path.dirname(path))
        xml = self._volume_xml(os.path.basename(path), fmt, size)
        self._call(lambda: pool.createXMLFrom(xml, source, 0), f"clone {template} to {path}")

    def overlay(self, template: str, template_format: str, path: str, size: int) -> None:
        pool = self._pool(os.path.dirname(path))
        xml = self._volume_xml(os.path.basename(path), "qcow2", size, (template, template_format))
        self._call(lambda: pool.createXML(xml, 0), f"create overlay {path}")

    def _volume(self, path: str) -> Any:
        pool = self._pool(os.path.dirname(path))
        return self._call(lambda: pool.storageVolLookupByName(os.path.basename(path)), f"find volume {path}")

    def grow(self, path: str, fmt: str, size: int) -> None:
        volume = self._volume(path)
        self._call(lambda: volume.resize(size, 0), f"grow {path}")

    def delete(self, path: str) -> None:
        pool = self._pools_by_dir().get(os.path.dirname(path))
        if pool is None or not pool.isActive():
            super().delete(path)  # no pool covers it: nothing in libvirt to keep in step
            return
        volume = self._volume(path)
        self._call(lambda: volume.delete(0), f"delete {path}")

    def refresh(self, directory: str) -> None:
        pool = self._pools_by_dir().get(directory)
        if pool is not None and pool.isActive():
            self._call(lambda: pool.refresh(0), f"refresh storage pool {pool.name()}")


def domains_using(conn: Any) -> dict[str, list[dict[str, Any]]]:
    """{image path: [{name, active}]} for every domain (running or not) on ``conn``."""
    from lxml import etree

    used: dict[str, list[dict[str, Any]]] = {}
    for domain in conn.listAllDomains(0):
        root = etree.fromstring(domain.XMLDesc(0).encode())
        for source in root.iterfind("devices/disk/source"):
            path = source.get("file") or source.get("dev")
            if path:
                used.setdefault(os.path.normpath(path), []).append(
                    {"name": domain.name(), "active": bool(domain.isActive())})
    return used


def _open(uri: str) -> Any:
    from ansible_collections.lcfg.xen.plugins.module_utils.common.libvirt import open_connection

    return open_connection(uri)


@contextlib.contextmanager
def image_lock(path: str, timeout: float, directory: str | None = None) -> Iterator[None]:
    """Serialise runs on one image (a second run waits, then finds the image made).

    The lock file is named by a hash of the image path in ``lock_directory()``, opened
    without following links; the wait is bounded by ``timeout`` seconds.
    """
    directory = lock_directory(directory)
    name = hashlib.sha256(path.encode()).hexdigest()[:24]
    lock = os.path.join(directory, f"disk-{name}.lock")
    fd = open_lock_file(lock, f" for {path}")
    try:
        if not flock_by(fd, time.monotonic() + timeout):
            raise Conflict(f"another run has been working on {path} for more than {timeout:g} s (lock file "
                           f"{lock}): let it finish and run again, or raise lock_timeout")
        yield
    finally:
        os.close(fd)


def run_disk(params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    """Validate, read, plan and (unless ``check_mode``) apply; return the module result."""
    req = build_request(params)
    if check_mode:  # check mode changes nothing, so it takes no lock
        return _run_locked(req, check_mode)
    with image_lock(req.path, req.lock_timeout):
        return _run_locked(req, check_mode)


def _run_locked(req: DiskRequest, check_mode: bool) -> dict[str, Any]:
    conn = _open(req.uri) if req.uri else None
    try:
        storage: LocalStorage = LibvirtStorage(conn, req.pool) if conn is not None else LocalStorage()
        current = _read_existing(req)
        temp = temp_path(req.path)
        temp_exists = os.path.lexists(temp)
        users = domains_using(conn) if conn is not None else {}
        if req.state == "absent":
            plan = plan_absent(req, current, temp_exists)
            in_use = users.get(req.path)
            if current is not None and in_use:
                names = ", ".join(u["name"] for u in in_use)
                raise Conflict(f"{req.path} is used by domain(s) {names}: undefine them (lcfg.xen.xen_domain "
                               "state: absent) before deleting the image")
            overlays = _overlays_of(req.path, req.storage_dirs) if current is not None else []
            if overlays:
                raise Conflict(f"{req.path} is the backing file of {', '.join(overlays)}: delete those "
                               "overlays first (they would become unreadable)")
        else:
            template = None
            template_users = (users.get(req.template) or users.get(os.path.realpath(req.template)) or []) \
                if req.template else []
            if template_users:
                raise ValidationError("template", f"{req.template} is a disk of domain(s) "
                                      f"{', '.join(u['name'] for u in template_users)}, not a template: a clone "
                                      "never copies another guest's data; name the template itself")
            if req.template:
                template = qemu_img_info(os.path.realpath(req.template),
                                         req.template_format or recorded_format(os.path.realpath(req.template)))
            plan = plan_present(req, current, template, temp_exists)
            origin = _check_origin(req, current, template, plan)
            if any(s["action"] != "remove-partial" for s in plan.steps):
                plan.steps[0:0] = storage.pool_steps(req)
            running = [u["name"] for u in users.get(req.path, []) if u["active"]]
            if running and any(s["action"] == "grow" for s in plan.steps):
                raise Conflict(f"{req.path} is in use by running domain(s) {', '.join(running)}: shut them "
                               "down before growing it (or grow it live with virsh blockresize)")
        result: dict[str, Any] = {
            "changed": bool(plan.steps),
            "actions": [describe_step(s) for s in plan.steps],
            "image": plan.after,
            "diff": {"before": plan.before, "after": plan.after},
            "warnings": plan.warnings,
        }
        if req.state == "present" and req.template:
            result.update(origin)
        if check_mode or not plan.steps:
            return result
        _apply(plan, req, storage, result)
        return result
    finally:
        if conn is not None:
            conn.close()


def image_format(req: DiskRequest) -> str | None:
    """The format an existing image is read as: declared (the request's format, or a copy's
    declared template format), else recorded by xen_disk, else raw -- never probed."""
    if req.format:
        return req.format
    if req.template and req.clone == "copy" and req.template_format:
        return req.template_format
    return None  # qemu_img_info: recorded, else raw


def _read_existing(req: DiskRequest) -> dict[str, Any] | None:
    """The existing image read as its recorded format (a declared one that differs is then a
    conflict the plan names), else as the declared one, else as raw."""
    fmt = recorded_format(req.path) or image_format(req) or "raw"
    try:
        return qemu_img_info(req.path, fmt)
    except Conflict:
        raise
    except XenError as exc:
        raise Conflict(f"{req.path} already exists and cannot be read as {fmt} ({exc.message}). It is never "
                       "overwritten: declare its real format, or remove it first (state: absent) if its "
                       "contents may be lost") from None


def _check_origin(req: DiskRequest, current: dict[str, Any] | None, template: dict[str, Any] | None,
                  plan: Plan) -> dict[str, Any]:
    """Refuse a template unfit to clone (nothing is created) and an existing image that is
    damaged (never overwritten); report a clone whose template changed or broke since.

    Returns the result's ``origin``, ``template_state`` and ``template_changed``."""
    if current is not None:
        damaged = image_problems(req.path, current["format"], whole_sectors=False)  # other tools' sizes vary
        if damaged:
            raise Conflict(f"{req.path} exists but is damaged: {'; '.join(damaged)}. It is never overwritten or "
                           "repaired: remove it (state: absent) and run again to clone it anew (its contents are "
                           "lost), or repair it yourself", image=plan.before)
    if not req.template or template is None:
        return {"origin": recorded_origin(req.path) if current is not None else None,
                "template_state": "missing" if current is not None else None, "template_changed": False}
    real = os.path.realpath(req.template)
    problems = image_problems(real, template["format"], template["virtual_size"])
    if current is None:
        if not problems and req.lcfg_managed:
            problem = partition_problem(real, req.partition, template["format"], template["virtual_size"])
            if problem:
                problems.append(f"{problem}: set 'partition' to the partition holding the guest's root filesystem")
        if problems:
            raise Conflict(f"template {req.template} (read as {template['format']}) cannot be cloned: "
                           f"{'; '.join(problems)}. Nothing was created: repair or replace the template (it is "
                           "only ever read), or declare its real format (template_format)", image=plan.before)
        origin = template_state(real, template["format"])
        for step in plan.steps:
            if step["action"] == "rename":
                step["origin"] = origin
        return {"origin": origin, "template_state": "unchanged", "template_changed": False}
    recorded = recorded_origin(req.path)
    state, differs = compare_origin(recorded, template_state(real, template["format"]))
    overlay = current["backing_file"] is not None
    if problems:
        if overlay:
            raise Conflict(f"{req.path} is an overlay of {req.template}, which is now damaged: "
                           f"{'; '.join(problems)}. The guest reads its disk through the template: restore the "
                           "template as it was, or remove the overlay (state: absent) and clone again",
                           image=plan.before)
        plan.warnings.append(f"the template {req.template} of {req.path} is now damaged ({'; '.join(problems)}); "
                             "the copy is independent of it, but new clones will be refused until it is repaired")
        state = "broken"
    elif state in ("changed", "other") and recorded is not None:
        why = "; ".join(differs)
        consequence = ("an overlay reads the unchanged blocks through its template, so the guest now sees a mix "
                       "of old and new data: restore the template, or remove the overlay (state: absent) and "
                       "clone again" if overlay else
                       "the copy is independent and unaffected; remove it (state: absent) and run again for a "
                       "clone of the template as it is now")
        if state == "other":
            what = f"{req.path} was cloned from {recorded.get('template')}, not from {req.template}"
        else:
            what = f"{req.path} was cloned from {req.template} as it was before it changed ({why})"
        plan.warnings.append(f"{what}: {consequence}")
    return {"origin": recorded, "template_state": state, "template_changed": state in ("changed", "other", "broken")}


def _overlays_of(path: str, dirs: list[str]) -> list[str]:
    """Images in the storage directories whose backing file is ``path``."""
    found = []
    for image in list_images(dirs, [], None):
        if image.get("backing_file") == path:
            found.append(image["path"])
    return found


def _apply(plan: Plan, req: DiskRequest, storage: LocalStorage, result: dict[str, Any]) -> None:
    temp = temp_path(req.path)
    umask = os.umask(0o077)  # nothing we create is readable by others, even for a moment
    try:
        _apply_steps(plan, storage, result)
    except BaseException:
        # Never leave a partial image behind a failed run (the final name is untouched).
        if os.path.lexists(temp):
            storage.remove_partial(temp)
        raise
    finally:
        os.umask(umask)
    storage.refresh(os.path.dirname(req.path))
    # Report what is really there now.
    final = qemu_img_info(req.path, image_format(req))
    lcfg = result["image"].get("lcfg_files")
    result["image"] = image_state(req.path, final, lcfg)
    result["image"]["actual_size"] = final["actual_size"] if final else None


def _apply_steps(plan: Plan, storage: LocalStorage, result: dict[str, Any]) -> None:
    from ansible_collections.lcfg.xen.plugins.module_utils.disk.guestfs import inject_files

    for step in plan.steps:
        action = step["action"]
        if action == "remove-partial":
            storage.remove_partial(step["path"])
        elif action == "mkdir":
            storage.make_directory(step["path"], step["mode"], step["group"])
        elif action == "define-pool":
            storage.define_pool(step)
        elif action == "create":
            storage.create(step["path"], step["format"], step["size"])
        elif action == "copy":
            storage.copy(step["template"], step["template_format"], step["path"], step["format"])
        elif action == "overlay":
            storage.overlay(step["template"], step["template_format"], step["path"], step["size"])
        elif action == "grow":
            storage.grow(step["path"], step["format"], step["size"])
        elif action == "inject":
            try:
                timing = inject_files(step["path"], step["format"], step["partition"], step["files"])
            except XenError as exc:
                damaged = image_problems(step["path"], step["format"])
                found = f" The clone itself is damaged: {'; '.join(damaged)}." if damaged else ""
                raise XenError(f"cannot write the LCFG settings into the clone of {step['template']}: "
                               f"{exc.message}.{found} Nothing was created at {step['final']}") from exc
            result["injection"] = {"seconds": timing["seconds"], "launch_seconds": timing["launch_seconds"]}
            result["warnings"].extend(timing["notes"])
        elif action == "rename":
            damaged = image_problems(step["from"], step["format"], step["size"] if step["format"] == "raw" else None)
            if damaged:  # a clone that does not check out never takes its final name
                raise XenError(f"the new image {step['from']} failed its check: {'; '.join(damaged)}. Nothing was "
                               f"created at {step['to']}")
            warning = storage.rename(step["from"], step["to"], step["format"], step.get("origin"))
            if warning:
                result["warnings"].append(warning)
        elif action == "delete":
            storage.delete(step["path"])


def _origin_now(path: str, templates_now: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
    """``origin`` (recorded when xen_disk cloned ``path``) and ``template_state`` against the
    template as it is now (None for an image that is not a recorded clone)."""
    origin = recorded_origin(path)
    if origin is None:
        return {"origin": None, "template_state": None}
    template = str(origin.get("template"))
    if template not in templates_now:
        try:
            templates_now[template] = template_state(template, str(origin.get("format")))
        except OSError:
            templates_now[template] = None
    return {"origin": origin, "template_state": compare_origin(origin, templates_now[template])[0]}


def list_images(dirs: list[str], paths: list[str], uri: str | None) -> list[dict[str, Any]]:
    """Images in ``dirs`` (regular, non-hidden files, not recursive) plus ``paths``."""
    candidates: list[str] = []
    for directory in dirs:
        if not os.path.isdir(directory):
            continue
        with os.scandir(directory) as entries:
            for entry in entries:
                if not entry.name.startswith(".") and entry.is_file(follow_symlinks=False):
                    candidates.append(os.path.normpath(entry.path))
    for path in paths:
        if not os.path.isabs(path):
            raise ValidationError("paths", f"{path!r} is not an absolute path")
        candidates.append(os.path.normpath(path))
    users: dict[str, list[dict[str, Any]]] = {}
    if uri:
        conn = _open(uri)
        try:
            users = domains_using(conn)
        finally:
            conn.close()
    images = []
    templates_now: dict[str, dict[str, Any] | None] = {}
    for path in sorted(set(candidates)):
        entry: dict[str, Any] = {"path": path, "exists": os.path.lexists(path)}
        if entry["exists"]:
            try:
                info = qemu_img_info(path)
            except XenError as exc:
                entry["error"] = exc.message
            else:
                if info is not None:
                    entry.update(info)
                    entry["size"] = format_size(info["virtual_size"])
            entry.update(_origin_now(path, templates_now))
        if uri:
            entry["used_by"] = [u["name"] for u in users.get(path, [])]
        images.append(entry)
    return images
