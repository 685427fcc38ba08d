# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The request of one xen_disk run: the module's parameters, checked, as a DiskRequest.

AnsibleModule has already enforced the argument spec of ``plugins/modules/xen_disk.py``
(types, choices, ``size_gb``/``size`` mutually exclusive, the sub-options of
``lcfg_files``). What is checked here are the values themselves, which may come from
untrusted LCFG profiles: paths confined to the storage directories, no control
characters, sizes, partition numbers, URLs, host names, and rules across parameters.
"""

from __future__ import annotations

import grp
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.lcfg.xen.plugins.module_utils.common.confinement import (
    DEFAULT_STORAGE_DIRS,
    confine,
    narrow_storage_dirs,
    storage_dirs_param,
)
from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import ValidationError
from ansible_collections.lcfg.xen.plugins.module_utils.common.validate import HOSTNAME_UNDERSCORE_RE
from ansible_collections.lcfg.xen.plugins.module_utils.disk.imagecheck import recorded_origin
from ansible_collections.lcfg.xen.plugins.module_utils.disk.sizes import GIB, parse_size
from ansible_collections.lcfg.xen.plugins.module_utils.spec.schema import MAX_DISK_GB, MAX_PARTITION, check_text

__all__ = [
    "FORMATS",
    "CLONE_MODES",
    "DEFAULT_LCFG_FILES",
    "AUTHORIZED_KEYS",
    "LOCK_TIMEOUT",
    "DiskRequest",
    "build_request",
]

FORMATS = ("raw", "qcow2")
CLONE_MODES = ("copy", "overlay")
LOCK_TIMEOUT = 600

# Files written into an LCFG-managed clone, keyed by the setting they carry.
DEFAULT_LCFG_FILES = {
    "profile_url": "/etc/lcfg/profile_url",
    "hostname": "/etc/hostname",
}

#: the LCFG host name a clone's files get ('_' allowed: common/validate.py's documented variant)
_HOSTNAME_RE = HOSTNAME_UNDERSCORE_RE
_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")


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
    # bootable templates and login keys (issue 13): play-side options only
    os: str | None = None
    suite: str | None = None
    mirror: str | None = None
    cache_dir: str | None = None
    authorized_keys: list[str] = field(default_factory=list)

    @property
    def lcfg_managed(self) -> bool:
        return self.profile_url is not None and self.partition is not None

    def lcfg_contents(self) -> dict[str, str]:
        """{guest path: content} of the files injected into an LCFG-managed clone."""
        if not self.lcfg_managed:
            return {}
        values = {"profile_url": self.profile_url, "hostname": self.hostname}
        files = {path: f"{values[key]}\n" for key, path in sorted(self.lcfg_files.items()) if path}
        if self.authorized_keys:
            files[AUTHORIZED_KEYS] = "".join(f"{key}\n" for key in self.authorized_keys)
        return files


def build_request(params: dict[str, Any]) -> DiskRequest:
    """Check the module's parameters (as AnsibleModule validated them) into a DiskRequest;
    ValidationError names the parameter."""
    _check_texts(params)
    dirs = narrow_storage_dirs(storage_dirs_param(params.get("storage_dirs")), params.get("profile_storage_dirs"))
    req = DiskRequest(
        path=_image_path(params.get("path"), dirs),
        storage_dirs=dirs,
        state=params.get("state") or "present",
        format=params.get("format"),
        template_format=params.get("template_format"),
        storage_gid=_group_id(params.get("storage_group")),
        lock_timeout=_lock_timeout(params.get("lock_timeout")),
        grow=bool(params.get("grow")),
        uri=params.get("uri") or None,
        pool=params.get("pool") or None,
        size=_size(params.get("size_gb"), params.get("size")),
    )
    if req.state == "template":
        _check_template_build(req, params)
    _set_template(req, params.get("template"), params.get("clone") or "copy")
    _set_lcfg_settings(req, params)
    _set_login(req, params)
    return req


AUTHORIZED_KEYS = "/root/.ssh/authorized_keys"
_SSH_KEY_RE = re.compile(r"^(ssh-[a-z0-9-]+|ecdsa-sha2-nistp\d+|sk-[a-z0-9@.-]+) [A-Za-z0-9+/=]+( [^\r\n]*)?$")


def _set_login(req: DiskRequest, params: dict[str, Any]) -> None:
    """os/suite/mirror/cache_dir (a bootable template) and authorized_keys (root's SSH keys
    written into an LCFG-managed clone with its LCFG settings): the play's, never a profile's."""
    req.os = params.get("os") or None
    req.suite = params.get("suite") or None
    req.mirror = params.get("mirror") or None
    req.cache_dir = params.get("cache_dir") or None
    if req.os is None:
        for key in ("suite", "mirror"):
            if params.get(key):
                raise ValidationError(key, "only a bootable template (state=template, os=debian) uses it: set 'os'")
    elif req.state != "template":
        raise ValidationError("os", "builds a bootable template image: use it with state=template")
    if req.cache_dir is not None and not os.path.isabs(req.cache_dir):
        raise ValidationError("cache_dir", f"must be an absolute path, got {req.cache_dir!r}")
    keys = [str(key).strip() for key in params.get("authorized_keys") or [] if str(key).strip()]
    for key in keys:
        if not _SSH_KEY_RE.match(key):
            raise ValidationError(
                "authorized_keys", f"{key[:40]!r}... is not one SSH public key line (type, base64 key, comment)"
            )
    if keys and not req.lcfg_managed:
        raise ValidationError(
            "authorized_keys",
            "keys are written into a clone with its LCFG settings: set template, profile_url and partition",
        )
    req.authorized_keys = keys


def _check_template_build(req: DiskRequest, params: dict[str, Any]) -> None:
    """state=template builds a raw template itself: it clones nothing and writes no LCFG settings."""
    for key in ("template", "profile_url"):
        if params.get(key):
            raise ValidationError(key, "state=template builds an empty template image: leave it unset")
    if req.format not in (None, "raw"):
        raise ValidationError("format", "a built template image is raw: drop 'format' or set it to raw")


def _check_texts(params: dict[str, Any]) -> None:
    """No path, name or URL holds a control character (NUL reaches no system call)."""
    for key, value in params.items():
        for item in value if isinstance(value, list) else (value.values() if isinstance(value, dict) else [value]):
            if isinstance(item, str):
                try:
                    check_text(item)
                except ValueError as exc:
                    raise ValidationError(key, str(exc)) from None


def _image_path(raw_path: Any, dirs: list[str]) -> str:
    """The image's path, confined to ``dirs``: a file name, never a directory, hidden file or link."""
    path = confine(str(raw_path), dirs, "path")
    base = os.path.basename(path)
    if path in dirs or not base or base.startswith(".") or str(raw_path).endswith("/"):
        raise ValidationError("path", f"{raw_path!r} must name an image file (not a directory or a hidden file)")
    if os.path.islink(path):
        raise ValidationError(
            "path", f"{path} is a symbolic link: images are never opened through links; use the real path"
        )
    return path


def _group_id(group: str | None) -> int | None:
    if not group:
        return None
    try:
        return grp.getgrnam(str(group)).gr_gid
    except KeyError:
        raise ValidationError(
            "storage_group", f"no group {group!r} on this host: create it or leave storage_group unset"
        ) from None


def _lock_timeout(timeout: float | None) -> float:
    if timeout is None:
        return LOCK_TIMEOUT
    if not 0 <= timeout <= 86400:  # also refuses nan
        raise ValidationError("lock_timeout", f"must be a number of seconds from 0 to 86400, got {timeout!r}")
    return float(timeout)


def _size(size_gb: float | None, size: str | None) -> int | None:
    """Bytes from ``size_gb`` (a float, GiB) or ``size`` (a string with a unit), or None."""
    if size_gb is not None:
        if not math.isfinite(size_gb) or size_gb > MAX_DISK_GB:
            raise ValidationError("size_gb", f"must be a finite number of GiB up to {MAX_DISK_GB}, got {size_gb!r}")
        if size_gb <= 0 or size_gb * GIB != int(size_gb * GIB) or int(size_gb * GIB) % 512:
            raise ValidationError(
                "size_gb", f"must be a positive number of GiB (a multiple of 512 bytes), got {size_gb!r}"
            )
        return int(size_gb * GIB)
    if size is not None:
        try:
            return parse_size(size)
        except ValueError as exc:
            raise ValidationError("size", str(exc)) from None
    return None


def _set_template(req: DiskRequest, template: str | None, clone: str) -> None:
    """The template to clone, confined, never the image itself or another guest's clone."""
    req.clone = clone
    if not template:
        return
    req.template = confine(str(template), req.storage_dirs, "template")
    if req.template == req.path:
        raise ValidationError("template", "is the image itself: a template is never written to; choose another path")
    cloned_from = recorded_origin(req.template)
    if cloned_from is not None:  # a clone is some guest's disk: cloning it copies that guest's data
        raise ValidationError(
            "template",
            f"{req.template} is a guest's disk image (xen_disk cloned it from "
            f"{cloned_from.get('template')}), not a template: a clone never copies another "
            "guest's data; name the template itself",
        )
    if clone == "overlay":
        if req.format == "raw":
            raise ValidationError("format", "an overlay is always qcow2: drop 'format' or set it to qcow2")
        req.format = "qcow2"


def _set_lcfg_settings(req: DiskRequest, params: dict[str, Any]) -> None:
    """profile_url, partition, hostname and lcfg_files: what is written into an LCFG-managed clone."""
    profile_url = params.get("profile_url")
    if profile_url is not None and str(profile_url).strip() == "":
        profile_url = None
    partition = params.get("partition")
    if partition is not None and (isinstance(partition, bool) or not 1 <= partition <= MAX_PARTITION):
        raise ValidationError(
            "partition", f"must be a partition number (1, 2, ... 5 for the first logical partition), got {partition!r}"
        )
    if profile_url is not None:
        if not _URL_RE.match(str(profile_url)):
            raise ValidationError(
                "profile_url", f"must be a URL such as http://lcfg.example.org/profiles/, got {profile_url!r}"
            )
        if partition is None:
            raise ValidationError(
                "partition", "is required with profile_url: the partition whose filesystem receives the LCFG settings"
            )
        if not req.template:
            raise ValidationError("profile_url", "LCFG settings are injected into clones only: set 'template' too")
    elif partition is not None and req.template:
        req.warnings.append(
            f"partition {partition} is ignored without profile_url: nothing is injected into {req.path}"
        )
    req.profile_url = str(profile_url) if profile_url is not None else None
    req.partition = partition if req.profile_url is not None or req.state == "template" else None
    req.hostname = _hostname(params.get("hostname"), req)
    req.lcfg_files = _lcfg_files(params.get("lcfg_files") or {})


def _hostname(hostname: str | None, req: DiskRequest) -> str:
    """The host name written into the clone: given, else the image's file name without extension."""
    if hostname is None:
        hostname = os.path.splitext(os.path.basename(req.path))[0]
        what = f"the host name taken from the file name ({hostname!r})"
    else:
        what = repr(hostname)
    if req.lcfg_managed and not _HOSTNAME_RE.match(str(hostname)):
        raise ValidationError("hostname", f"{what} is not a valid host name: set 'hostname'")
    return str(hostname)


def _lcfg_files(given: dict[str, str | None]) -> dict[str, str]:
    """{setting: guest path} of the files that receive the LCFG settings ("" skips one)."""
    files = dict(DEFAULT_LCFG_FILES)
    for key, guest_path in given.items():
        if guest_path in (None, ""):
            files[key] = ""
            continue
        guest_path = str(guest_path)
        if not os.path.isabs(guest_path) or guest_path.endswith("/") or ".." in guest_path.split("/"):
            raise ValidationError(
                "lcfg_files", f"{key}: {guest_path!r} must be an absolute file path inside the guest without '..'"
            )
        files[key] = os.path.normpath(guest_path)
    return files
