# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""libguestfs access to guest filesystems: LCFG injection, read-back, template images.

Guest filesystems are never mounted in the host kernel: libguestfs boots a small
appliance VM that does the filesystem work. ``LIBGUESTFS_BACKEND=direct`` is set
when unset (no libvirt-run appliance needed). When the appliance fails to boot
with hardware acceleration (seen on nested KVM hosts whose CPU model QEMU cannot
fully program), the launch is retried once with software emulation (TCG) and the
result says so.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import XenError
from ansible_collections.lcfg.xen.plugins.module_utils.common.imports import optional_import

guestfs = optional_import("guestfs")[0]
HAS_GUESTFS = guestfs is not None

__all__ = [
    "HAS_GUESTFS",
    "GuestfsSession",
    "inject_files",
    "read_files",
    "make_template",
    "template_layout",
    "MIN_TEMPLATE_BYTES",
]

MIN_TEMPLATE_BYTES = 128 * 1024 * 1024
PRIVATE_DIRS = ("/root/.ssh",)  # owner-only directories of injected files (authorized_keys)
_SECTOR = 512
_MIB_SECTORS = 2048  # partitions start on MiB boundaries
_BOOT_SECTORS = 100 * _MIB_SECTORS  # partition 1: a 100 MiB placeholder (like /boot)

_MISSING = (
    "the libguestfs Python binding is missing on the managed host: install python3-guestfs "
    "and libguestfs-tools (apt), or run the lcfg.xen.hypervisor role"
)


class GuestfsSession:
    """A launched libguestfs handle on one image; use as a context manager.

    ``notes`` collects human-readable remarks (e.g. the TCG fallback) for the module's
    warnings; ``seconds`` is the appliance launch time.
    """

    def __init__(self, path: str, fmt: str, readonly: bool) -> None:
        if not HAS_GUESTFS:
            raise XenError(_MISSING)
        os.environ.setdefault("LIBGUESTFS_BACKEND", "direct")
        self.path = path
        self.fmt = fmt
        self.readonly = readonly
        self.notes: list[str] = []
        self.seconds = 0.0
        self.handle: Any = None

    def _launch(self, force_tcg: bool) -> Any:
        handle = guestfs.GuestFS(python_return_dict=True)
        if force_tcg:
            settings = list(handle.get_backend_settings())
            handle.set_backend_settings(settings + ["force_tcg"])
        handle.add_drive_opts(self.path, format=self.fmt, readonly=self.readonly)
        try:
            handle.launch()
        except RuntimeError:
            handle.close()
            raise
        return handle

    def __enter__(self) -> GuestfsSession:
        start = time.monotonic()
        try:
            self.handle = self._launch(force_tcg=False)
        except RuntimeError as first:
            try:
                self.handle = self._launch(force_tcg=True)
            except RuntimeError as second:
                raise XenError(
                    f"libguestfs could not start its appliance for {self.path}: {second} "
                    f"(with hardware acceleration: {first}). Run libguestfs-test-tool on the "
                    "host to see why"
                ) from second
            self.notes.append(
                "libguestfs appliance failed to start with KVM; used software emulation (TCG), "
                "which is slower. Run libguestfs-test-tool on the host to see why"
            )
        self.seconds = time.monotonic() - start
        return self

    def __exit__(self, *exc: object) -> None:
        handle, self.handle = self.handle, None
        if handle is None:
            return
        try:
            if exc[0] is None:
                handle.umount_all()
                handle.shutdown()
        finally:
            handle.close()

    def device(self, partition: int) -> str:
        """The appliance device of ``partition`` on the image, or XenError naming the choices."""
        wanted = f"/dev/sda{partition}"
        partitions = list(self.handle.list_partitions())
        if wanted not in partitions:
            found = ", ".join(p.replace("/dev/sda", "") for p in partitions) or "none"
            raise XenError(
                f"{self.path} has no partition {partition} (partitions: {found}): set 'partition' "
                "to the partition holding the guest's root filesystem"
            )
        return wanted

    def mount(self, partition: int) -> None:
        device = self.device(partition)
        try:
            if self.readonly:
                self.handle.mount_ro(device, "/")
            else:
                self.handle.mount(device, "/")
        except RuntimeError as exc:
            raise XenError(self.mount_failure(partition, device, exc)) from exc

    def mount_failure(self, partition: int, device: str, exc: Exception) -> str:
        """Why ``device`` did not mount, from what libguestfs finds on the image: blame
        ``partition`` only when another partition holds a filesystem and this one none."""
        fstype = self._fstype(device)
        filesystems = self._filesystems()
        listed = (
            ", ".join(f"{dev.replace('/dev/sda', 'partition ')}: {kind}" for dev, kind in sorted(filesystems.items()))
            or "none"
        )
        usable = [dev for dev, kind in filesystems.items() if kind not in ("unknown", "swap", "")]
        head = f"cannot mount partition {partition} of {self.path} ({exc})"
        if fstype not in ("none", "unknown"):
            return (
                f"{head}: it holds a {fstype} filesystem that does not mount, so the filesystem or the "
                f"image is damaged (filesystems found: {listed}); run e2fsck/qemu-img check on the template"
            )
        if usable:
            return (
                f"{head}: it holds no filesystem libguestfs recognises (filesystems found: {listed}): set "
                "'partition' to the partition holding the guest's root filesystem"
            )
        return (
            f"{head}: the image holds no filesystem libguestfs recognises on any partition (filesystems "
            f"found: {listed}), so the template is empty or damaged, not the partition number wrong"
        )

    def _filesystems(self) -> dict[str, str]:
        try:
            return {str(dev): str(kind) for dev, kind in dict(self.handle.list_filesystems()).items()}
        except RuntimeError:
            return {}

    def _fstype(self, device: str) -> str:
        try:
            return str(self.handle.vfs_type(device)) or "none"
        except RuntimeError:
            return "unknown"


def inject_files(path: str, fmt: str, partition: int, files: dict[str, str]) -> dict[str, Any]:
    """Write ``files`` ({guest path: content}) into the filesystem on ``partition``.

    Parent directories are created (mode 0755), files are written with mode 0644; in
    PRIVATE_DIRS (root's ~/.ssh) the directory is 0700 and its files 0600.
    Returns ``{"seconds": total, "launch_seconds": ..., "notes": [...]}``.
    """
    start = time.monotonic()
    with GuestfsSession(path, fmt, readonly=False) as session:
        session.mount(partition)
        handle = session.handle
        for guest_path, content in files.items():
            parent = os.path.dirname(guest_path)
            private = parent in PRIVATE_DIRS
            if parent and parent != "/":
                handle.mkdir_p(parent)
                if private:
                    handle.chmod(0o700, parent)
            handle.write(guest_path, content.encode("utf-8"))
            handle.chmod(0o600 if private else 0o644, guest_path)
        handle.sync()
        notes = list(session.notes)
        launch = session.seconds
    return {"seconds": round(time.monotonic() - start, 3), "launch_seconds": round(launch, 3), "notes": notes}


def read_files(path: str, fmt: str, partition: int, paths: list[str]) -> dict[str, str | None]:
    """Read ``paths`` from the filesystem on ``partition`` (read-only); None where missing."""
    result: dict[str, str | None] = {}
    with GuestfsSession(path, fmt, readonly=True) as session:
        session.mount(partition)
        for guest_path in paths:
            if session.handle.is_file(guest_path):
                result[guest_path] = session.handle.read_file(guest_path).decode("utf-8", "replace")
            else:
                result[guest_path] = None
    return result


def template_layout(size_bytes: int, partition: int) -> list[tuple[str, int, int]]:
    """The msdos partitions of a template image: ``(kind, first sector, last sector)`` for
    libguestfs ``part_add`` (kind ``p`` primary, ``e`` extended, ``l`` logical), in order.

    Partition 1 is a 100 MiB primary placeholder (like /boot). The filesystem partition
    ``partition`` takes the rest: for 2-4 it is a primary partition after empty primary
    ones of 1 MiB; for 5 or more an extended partition 2 spans the rest and holds logical
    partitions 5, 6, ... of 1 MiB each before the last one, ``partition``, which fills it.
    Pure: raises XenError for a size or partition number that cannot be laid out.
    """
    if size_bytes < MIN_TEMPLATE_BYTES or size_bytes % _SECTOR:
        raise XenError(
            f"template size {size_bytes} bytes: use at least {MIN_TEMPLATE_BYTES // 1024 // 1024} MiB, "
            "a multiple of 512 bytes"
        )
    if not 2 <= partition <= 60:
        raise XenError(f"template partition {partition}: the filesystem goes on partition 2 to 60 (1 is /boot)")
    last = size_bytes // _SECTOR - 1
    start = _MIB_SECTORS + _BOOT_SECTORS
    parts = [("p", _MIB_SECTORS, start - 1)]
    if partition <= 4:
        for _primary in range(2, partition):
            parts.append(("p", start, start + _MIB_SECTORS - 1))
            start += _MIB_SECTORS
        parts.append(("p", start, last))
    else:
        parts.append(("e", start, last))
        for _logical in range(5, partition):  # each logical partition leaves 1 MiB for its EBR
            parts.append(("l", start + _MIB_SECTORS, start + 2 * _MIB_SECTORS - 1))
            start += 2 * _MIB_SECTORS
        parts.append(("l", start + _MIB_SECTORS, last))
    if parts[-1][2] - parts[-1][1] + 1 < 32 * _MIB_SECTORS:
        raise XenError(f"template size {size_bytes} bytes leaves partition {partition} less than 32 MiB")
    return parts


def make_template(
    path: str,
    size_bytes: int,
    data_mb: int = 0,
    label: str = "lcfgroot",
    partition: int = 5,
    populate: Callable[[Any, int], None] | None = None,
) -> bool:
    """Build a small template image unless ``path`` exists; return True when built.

    Layout (``template_layout``): msdos partition table; partition 1 primary (100 MiB,
    unformatted, like a /boot placeholder); by default partition 2 extended over the
    rest and partition 5 logical inside it with an ext4 filesystem labelled ``label``
    holding ``/etc/hostname`` and ``/etc/lcfg/`` and, when ``data_mb`` > 0,
    ``/var/lib/template-data`` with that many MiB of random bytes (content for copy
    tests). The image is raw and sparse, built under a temporary name and linked into
    place (an existing image is never replaced).

    ``populate(handle, partition)``, when given, formats and fills the laid-out partitions
    instead (debian.install_rootfs: a bootable template).
    """
    if os.path.exists(path):
        return False
    layout = template_layout(size_bytes, partition)
    if not HAS_GUESTFS:
        raise XenError(_MISSING)
    directory, base = os.path.split(os.path.abspath(path))
    temp = os.path.join(directory, f".{base}.lcfg-xen-partial")
    if os.path.lexists(temp):
        os.unlink(temp)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.truncate(size_bytes)
    device = f"/dev/sda{partition}"
    try:
        with GuestfsSession(temp, "raw", readonly=False) as session:
            g = session.handle
            g.part_init("/dev/sda", "msdos")
            for kind, first, last in layout:
                g.part_add("/dev/sda", kind, first, last)
            if populate is not None:
                populate(g, partition)
            else:
                _fill_lcfg_template(g, device, label, data_mb)
            g.sync()
        os.link(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return True


def _fill_lcfg_template(g: Any, device: str, label: str, data_mb: int) -> None:
    """The empty LCFG template's filesystem: ext4 on ``device`` with /etc/hostname and /etc/lcfg."""
    g.mkfs("ext4", device)
    g.set_label(device, label)
    g.mount(device, "/")
    g.mkdir_p("/etc/lcfg")
    g.write("/etc/hostname", b"lcfg-template\n")
    g.write("/etc/lcfg/TEMPLATE", b"lcfg.xen template image\n")
    if data_mb > 0:
        g.mkdir_p("/var/lib")
        _fill_random(g, "/var/lib/template-data", data_mb)


def _fill_random(g: Any, guest_path: str, data_mb: int) -> None:
    """Write ``data_mb`` MiB of random bytes to ``guest_path`` in 1 MiB chunks."""
    chunk = 1024 * 1024
    g.write(guest_path, b"")
    for index in range(data_mb):
        data = os.urandom(chunk)
        offset = 0
        while offset < chunk:
            offset += g.pwrite(guest_path, data[offset:], index * chunk + offset)
