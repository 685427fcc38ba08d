# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""What a guest may reach on the host, checked before anything is planned.

``check_access(conn, spec, access, ...)``: the play's host-access rules (``common.host_access``)
and the files other guests and clones use (``SharedFiles``): a guest never opens another
guest's disk or a clone's template unless the play allows host resources.
``check_disks_not_claimed_twice``: two guests of one xen_guests call may not share a disk.
"""

from __future__ import annotations

import os

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import ValidationError
from ansible_collections.lcfg.xen.plugins.module_utils.common.host_access import (
    HostAccess,
    check_container,
    check_guest_access,
    host_access_from_params,
)
from ansible_collections.lcfg.xen.plugins.module_utils.common.imports import optional_import
from ansible_collections.lcfg.xen.plugins.module_utils.common.libvirt import driver_name, libvirt
from ansible_collections.lcfg.xen.plugins.module_utils.disk.imagecheck import recorded_origin
from ansible_collections.lcfg.xen.plugins.module_utils.domain import calls
from ansible_collections.lcfg.xen.plugins.module_utils.domain.current import DriverCaps

etree = optional_import("lxml.etree")[0]

__all__ = ["SharedFiles", "check_access", "check_disks_not_claimed_twice", "describe_users"]


# How many files of the storage directories are read for clone records (bounds the walk).
_MAX_SCANNED_FILES = 20000


class SharedFiles:
    """What other guests and clones already use, read once per run and only when needed:
    ``others(name)`` {path: [(guest, "disk"|"kernel"|"ramdisk")]} of every other defined or
    running guest, ``templates()`` {template path: [clone paths]} from the origins xen_disk
    records with its clones in the storage directories. Paths are resolved on a local host."""

    def __init__(self, conn, storage_dirs: list | tuple, local: bool):
        self.conn, self.storage_dirs, self.local = conn, list(storage_dirs), local
        self._users: dict | None = None
        self._templates: dict | None = None

    def key(self, path: str) -> str:
        return os.path.realpath(path) if self.local else os.path.normpath(path)

    def others(self, name: str) -> dict:
        if self._users is None:
            self._users = _files_of_domains(self.conn, self.key)
            if self.local:
                for path, users in _files_of_sibling_drivers(self.conn, self.key).items():
                    self._users.setdefault(path, []).extend(u for u in users if u not in self._users.get(path, []))
        return {
            path: [u for u in users if u[0] != name]
            for path, users in self._users.items()
            if any(u[0] != name for u in users)
        }

    def templates(self) -> dict:
        if self._templates is None:
            self._templates = _recorded_templates(self.storage_dirs) if self.local else {}
        return self._templates


def _files_of_domains(conn, key) -> dict:
    used: dict = {}
    for name, xmls in calls.definitions(conn):  # the persistent definition and, when running, the live one
        for xml in xmls:
            root = etree.fromstring(xml.encode())
            found = [
                (s.get("file") or s.get("dev"), "cdrom" if s.getparent().get("device") == "cdrom" else "disk")
                for s in root.iterfind("devices/disk/source")
            ]
            # a container's root filesystem image
            found += [(s.get("file"), "disk") for s in root.iterfind("devices/filesystem/source")]
            found += [(root.findtext("os/kernel"), "kernel"), (root.findtext("os/initrd"), "ramdisk")]
            for path, role in found:
                if path and (name, role) not in used.setdefault(key(path), []):
                    used[key(path)].append((name, role))
    return used


#: the other local libvirt drivers whose guests may open the same files (the VMs and the
#: containers of one host): their guests' files count as used too
_SIBLING_URIS = {
    "qemu": ("lxc:///system",),
    "kvm": ("lxc:///system",),
    "xen": ("lxc:///system",),
    "lxc": ("qemu:///system", "xen:///system"),
}


def _files_of_sibling_drivers(conn, key) -> dict:
    """``_files_of_domains`` of the host's other drivers that answer (a driver not installed is
    skipped: it has no guests)."""
    used: dict = {}
    for uri in _SIBLING_URIS.get(driver_name(conn), ()):
        try:
            other = libvirt.open(uri)
        except libvirt.libvirtError:
            continue
        try:
            for path, users in _files_of_domains(other, key).items():
                used.setdefault(path, []).extend(users)
        finally:
            other.close()
    return used


def _recorded_templates(storage_dirs: list) -> dict:
    """{resolved template path: [clone paths]} from the clones' ``trusted.lcfg-xen.origin``."""
    templates: dict = {}
    scanned = 0
    for directory in storage_dirs:
        for top, dirs, files in os.walk(directory):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for base in files:
                scanned += 1
                if scanned > _MAX_SCANNED_FILES:
                    return templates
                path = os.path.join(top, base)
                origin = recorded_origin(path) if not os.path.islink(path) else None
                if origin and origin.get("template"):
                    templates.setdefault(os.path.realpath(str(origin["template"])), []).append(path)
    return templates


def describe_users(users: list) -> str:
    return ", ".join(f"{name} ({role})" for name, role in users)


def check_access(
    conn,
    spec: dict,
    access: HostAccess | None,
    prefix: str = "",
    state: str = "present",
    shared: SharedFiles | None = None,
    template: str | None = None,
    caps: DriverCaps | None = None,
) -> None:
    """Refuse what ``spec`` would reach on the host beyond what the play allows (``access``;
    None: the defaults, the guest itself only). Paths are resolved on the managed host.
    Removing a guest gives it nothing, so ``state: absent`` is not checked. ``shared``
    (made here when not given) tells which files other guests and clones use; ``template``
    is the guest's own template (xen_guests items)."""
    if state == "absent":
        return
    if access is None:
        access = host_access_from_params({})
    caps = caps or DriverCaps(conn)
    local = caps.local
    if caps.basic()["driver"] == "lxc":  # every guest of an LXC connection is a container
        check_container(f"{prefix}type", access)
    _check_image_paths(spec, local, prefix)
    check_guest_access(spec, access, prefix, realpath=os.path.realpath if local else None)
    if not access.allow_host_resources:
        _check_not_shared(spec, shared or SharedFiles(conn, access.storage_dirs, local), prefix, template)


def _check_image_paths(spec: dict, local: bool, prefix: str) -> None:
    """An image disk names a file, never a directory (as xen_disk requires)."""
    for index, disk in enumerate(spec.get("disks") or []):
        path = disk["path"]
        if disk["type"] == "image" and (path.endswith("/") or local and os.path.isdir(path)):
            raise ValidationError(f"{prefix}disks[{index}].path", f"{path!r} must name an image file, not a directory")


def _guest_files(spec: dict, prefix: str) -> list[tuple[str, str, str]]:
    """[(parameter, path, role)] of the files a guest opens: disks, kernel, ramdisk, cdrom."""
    files = [(f"{prefix}disks[{i}].path", d["path"], "disk") for i, d in enumerate(spec.get("disks") or [])]
    files += [
        (f"{prefix}{k}", spec[k], "kernel" if k == "kernel" else "ramdisk")
        for k in ("kernel", "ramdisk")
        if spec.get(k)
    ]
    if spec.get("cdrom"):  # read-only, like a boot file: may be shared with other guests' boot files
        files.append((f"{prefix}cdrom", spec["cdrom"], "cdrom"))
    return files


def _check_not_shared(spec: dict, shared: SharedFiles, prefix: str, template: str | None) -> None:
    """A guest never opens another guest's disk or a clone's template, and no other guest
    opens its disks; only boot files (kernel, ramdisk) may be shared, read-only, with other
    guests' boot files. Only the play shares more (allow_host_resources)."""
    files = _guest_files(spec, prefix)
    if not files:
        return
    others = shared.others(spec["name"])
    own_template = shared.key(template) if template else None
    for where, path, role in files:
        key = shared.key(path)
        users = [u for u in others.get(key, []) if role == "disk" or u[1] == "disk"]
        if users:
            raise ValidationError(
                where,
                f"{path} is already used by guest(s) {describe_users(users)}: a guest "
                "never gets another guest's image (it would read or overwrite its data); only "
                "the play can share it (allow_host_resources)",
            )
        clones = shared.templates().get(key)
        if key == own_template or clones:
            whose = (
                "this guest's own template" if key == own_template else f"the template of {', '.join(sorted(clones))}"
            )
            raise ValidationError(
                where,
                f"{path} is {whose}: a template is never given to a guest (a write "
                "would change every later clone); only the play can (allow_host_resources)",
            )


def check_disks_not_claimed_twice(spec: dict, prefix: str, shared: SharedFiles, claimed: dict) -> None:
    """Two guests of one call may not open the same disk (neither is defined yet)."""
    for where, path, role in _guest_files(spec, prefix):
        owner = claimed.get(shared.key(path))
        if owner and owner[0] != spec["name"] and "disk" in (role, owner[1]):
            raise ValidationError(
                where,
                f"{path} is also {owner[2]} of guest {owner[0]}: a guest never gets "
                "another guest's image; only the play can share it (allow_host_resources)",
            )
        claimed.setdefault(shared.key(path), (spec["name"], role, where))
