# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Where images are read and made: ``qemu-img`` with argument lists and plain file operations
on this host (LocalStorage), or libvirt's storage API when a URI is given (LibvirtStorage).

* an image is always read as a declared format (declared, else recorded in the
  ``trusted.lcfg-xen.format`` extended attribute, settable by root only, else raw), never
  as a format guessed from its contents;
* a new image is 0600, sealed (format and a clone's origin recorded) and then linked to its
  final name: ``link`` fails rather than replace a file that appeared meanwhile.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from ansible_collections.lcfg.xen.plugins.module_utils.common.confinement import (
    DIR_MODE,
    GROUP_DIR_MODE,
    missing_directories,
)
from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import (
    Conflict,
    LibvirtFailure,
    NotFound,
    XenError,
)
from ansible_collections.lcfg.xen.plugins.module_utils.common.imports import optional_import
from ansible_collections.lcfg.xen.plugins.module_utils.common.libvirt import is_missing, libvirt
from ansible_collections.lcfg.xen.plugins.module_utils.common.validate import safe_name
from ansible_collections.lcfg.xen.plugins.module_utils.disk.imagecheck import record_origin
from ansible_collections.lcfg.xen.plugins.module_utils.disk.plan import IMAGE_MODE, Directory, Pool
from ansible_collections.lcfg.xen.plugins.module_utils.disk.request import FORMATS, DiskRequest

__all__ = [
    "FORMAT_XATTR",
    "recorded_format",
    "normalise_info",
    "qemu_img_info",
    "LocalStorage",
    "LibvirtStorage",
    "domains_using",
]

# lxml is needed only with a libvirt URI (LibvirtStorage, domains_using): optional here.
etree, LXML_IMPORT_ERROR = optional_import("lxml.etree")

# trusted.* attributes can be set by root only: neither a guest nor the QEMU process
# (which may own the image file while it runs) can change what the format is taken to be.
FORMAT_XATTR = "trusted.lcfg-xen.format"


def _run(args: list[str], what: str) -> str:
    try:
        # pylint: disable-next=ansible-bad-function  # an engine: no AnsibleModule.run_command here
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


def _need_lxml() -> None:
    if etree is None:
        raise XenError(f"the Python library lxml is needed with 'uri' on the managed host ({LXML_IMPORT_ERROR})")


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalStorage:
    """Images handled with qemu-img and plain file operations on this host."""

    def missing_directories(self, req: DiskRequest) -> list[Directory]:
        """The missing directories of the image, created by the module (predicted in check mode)."""
        found = []
        for path, mode in missing_directories(os.path.dirname(req.path), req.storage_dirs):
            gid = req.storage_gid if mode == DIR_MODE else None
            found.append(Directory(path, GROUP_DIR_MODE if gid is not None else mode, gid))
        return found

    def missing_pools(self, req: DiskRequest) -> list[Pool]:  # pylint: disable=unused-argument
        """No storage pools without libvirt."""
        return []

    def make_directory(self, path: str, mode: int, gid: int | None) -> None:
        os.mkdir(path, 0o700)  # never wider than asked, whatever the umask
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            if gid is not None:
                os.fchown(fd, -1, gid)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)

    def define_pool(self, pool: Pool) -> None:  # pragma: no cover - never planned locally
        raise XenError(f"no libvirt connection for the storage pool {pool.name}")

    def create(self, path: str, fmt: str, size: int) -> None:
        _run(["qemu-img", "create", "-q", "-f", fmt, path, str(size)], f"create {path}")

    def copy(self, template: str, template_format: str, path: str, fmt: str) -> None:
        # convert writes only non-zero data, so a raw result stays sparse.
        _run(
            ["qemu-img", "convert", "-q", "-f", template_format, "-O", fmt, template, path],
            f"copy {template} to {path}",
        )

    def overlay(self, template: str, template_format: str, path: str, size: int) -> None:
        _run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-b", template, "-F", template_format, path, str(size)],
            f"create overlay {path}",
        )

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
                warning = (
                    f"cannot record the format of {path} ({exc.strerror}): it will be read as raw unless "
                    f"the guest's disk declares format: {fmt}"
                )
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
        _need_lxml()
        self.conn = conn
        self.pool_name = pool_name

    def _pools_by_dir(self) -> dict[str, Any]:
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
        return "lcfg-xen" + safe_name(directory, "-")

    def missing_pools(self, req: DiskRequest) -> list[Pool]:
        """Pools to define or start for the image's directory (and a copied template's)."""
        found = []
        wanted = {os.path.dirname(req.path)}
        if req.template and req.clone == "copy":
            wanted.add(os.path.dirname(req.template))
        pools = self._pools_by_dir()
        for directory in sorted(wanted):
            pool = pools.get(directory)
            if pool is None:
                found.append(Pool(self.pool_name_for(directory), directory))
            elif not pool.isActive():
                found.append(Pool(pool.name(), directory))
        return found

    def define_pool(self, pool: Pool) -> None:
        existing = self._pools_by_dir().get(pool.directory)
        if existing is None:
            root = etree.Element("pool", type="dir")
            etree.SubElement(root, "name").text = pool.name
            target = etree.SubElement(root, "target")
            etree.SubElement(target, "path").text = pool.directory
            existing = self._call(
                lambda: self.conn.storagePoolDefineXML(etree.tostring(root).decode(), 0),
                f"define storage pool {pool.name} for {pool.directory}",
            )
            self._call(lambda: existing.setAutostart(1), f"set autostart on storage pool {pool.name}")
        if not existing.isActive():
            self._call(lambda: existing.create(0), f"start storage pool {existing.name()}")

    def _call(self, func: Any, what: str) -> Any:
        try:
            return func()
        except libvirt.libvirtError as exc:
            raise LibvirtFailure(f"cannot {what}: {exc.get_error_message()}") from exc

    def _pool(self, directory: str) -> Any:
        pool = self._pools_by_dir().get(directory)
        if pool is None or not pool.isActive():
            raise NotFound(f"no active libvirt storage pool for {directory}")
        self._call(lambda: pool.refresh(0), f"refresh storage pool {pool.name()}")
        return pool

    def _volume_xml(self, name: str, fmt: str, size: int, backing: tuple[str, str] | None = None) -> str:
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
        source = self._call(
            lambda: source_pool.storageVolLookupByName(os.path.basename(template)), f"find template volume {template}"
        )
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
    _need_lxml()
    used: dict[str, list[dict[str, Any]]] = {}
    for domain in conn.listAllDomains(0):
        try:
            root = etree.fromstring(domain.XMLDesc(0).encode())
            active = bool(domain.isActive())
        except libvirt.libvirtError as exc:
            if is_missing(exc):  # undefined since it was listed: it uses nothing now
                continue
            raise LibvirtFailure(
                f"cannot read the definition of domain {domain.name()}: {exc.get_error_message()}"
            ) from exc
        for source in root.iterfind("devices/disk/source"):
            path = source.get("file") or source.get("dev")
            if path:
                used.setdefault(os.path.normpath(path), []).append({"name": domain.name(), "active": active})
    return used
