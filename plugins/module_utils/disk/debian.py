# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Bootable Debian template images (xen_disk state=template, os=debian).

A root filesystem is made once with debootstrap (minbase plus a kernel, openssh-server,
qemu-guest-agent, python3 and systemd-networkd with DHCP), configured from Python and kept
as a tar file in a cache directory named by a hash of the build inputs (suite, mirror,
packages, this builder's version), so a second template, or a template removed and built
again, costs only the copy into the image. The image is built with libguestfs like the
empty LCFG template (guestfs.template_layout): partition 1 (ext2, label ``lcfgboot``)
holds /boot and extlinux with syslinux's MBR, which SeaBIOS boots; the profile's partition
(ext4, label ``lcfgroot``) holds the root filesystem, so the LCFG settings injected into a
clone land in the guest's own /etc. Root logs in with an SSH key only (root's password is
locked); each clone makes its own SSH host keys at first boot.

The Debian mirror is the play's (``mirror``) or the first apt source of the managed host
that carries the suite; nothing here names a mirror host. Commands run as argument lists;
the tar file and the image appear under their final names only when complete.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import Any

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import XenError

__all__ = [
    "BUILDER_VERSION",
    "DEFAULT_CACHE_DIR",
    "PACKAGES",
    "apt_mirror",
    "host_suite",
    "cache_key",
    "extlinux_config",
    "rootfs_files",
    "rootfs_tarball",
    "install_rootfs",
]

BUILDER_VERSION = "1"
DEFAULT_CACHE_DIR = "/var/cache/lcfg-xen"
#: seconds a template build waits for another build of the same root filesystem (debootstrap
#: takes minutes; a stalled mirror must not hold the module for ever)
LOCK_WAIT = 1800.0
BOOT_LABEL = "lcfgboot"
ROOT_LABEL = "lcfgroot"
SYSLINUX_MBR = "/usr/lib/syslinux/mbr/mbr.bin"

# debootstrap installs no Recommends: everything the guest needs at run time is listed.
PACKAGES = (
    "systemd-sysv",
    "udev",
    "kmod",
    "iproute2",
    "openssh-server",
    "qemu-guest-agent",
    "python3",
    "linux-image-amd64",  # the cloud kernel lacks AHCI and rtl8139, QEMU's default disk and NIC
    "initramfs-tools",
    "procps",
)

_SUITE_RE = re.compile(r"^[a-z][a-z0-9.-]{1,30}\Z")
_MIRROR_RE = re.compile(r"^(https?|file)://[^\s'\"]+\Z")

Runner = Callable[[list[str]], None]


def host_suite(os_release: str = "/etc/os-release") -> str:
    """The managed host's Debian codename (VERSION_CODENAME of os-release)."""
    try:
        with open(os_release, encoding="utf-8") as handle:
            for line in handle:
                key, _sep, value = line.strip().partition("=")
                if key == "VERSION_CODENAME" and value.strip("\"'"):
                    return value.strip("\"'")
    except OSError:
        pass
    raise XenError(f"{os_release} names no VERSION_CODENAME: set 'suite' (e.g. bookworm)")


def _deb822_mirrors(text: str, suite: str) -> list[str]:
    found = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.lstrip().startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _sep, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        if "deb" in fields.get("types", "").split() and suite in fields.get("suites", "").split():
            uris = fields.get("uris", "").split()
            found.extend(uris[:1])
    return found


def _one_line_mirrors(text: str, suite: str) -> list[str]:
    found = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if len(words) >= 2 and words[1] == suite:
            found.append(words[0])
    return found


def apt_mirror(suite: str, etc_apt: str = "/etc/apt") -> str:
    """The first mirror of the host's apt sources that carries ``suite`` itself (not
    -updates/-security): deb822 ``*.sources`` first, then one-line ``sources.list`` files."""
    deb822 = sorted(glob.glob(os.path.join(etc_apt, "sources.list.d", "*.sources")))
    one_line = [os.path.join(etc_apt, "sources.list")] + sorted(
        glob.glob(os.path.join(etc_apt, "sources.list.d", "*.list"))
    )
    for files, parse in ((deb822, _deb822_mirrors), (one_line, _one_line_mirrors)):
        for name in files:
            try:
                with open(name, encoding="utf-8") as handle:
                    mirrors = parse(handle.read(), suite)
            except OSError:
                continue
            if mirrors:
                return mirrors[0]
    raise XenError(
        f"no apt source of the managed host carries suite {suite!r} ({etc_apt}/sources.list{{,.d}}): "
        "set 'mirror' to a Debian mirror URL"
    )


def check_inputs(suite: str, mirror: str) -> None:
    if not _SUITE_RE.match(suite):
        raise XenError(f"suite {suite!r} is not a Debian suite name such as bookworm")
    if not _MIRROR_RE.match(mirror):
        raise XenError(f"mirror {mirror!r} must be an http://, https:// or file:// URL")


def cache_key(suite: str, mirror: str, packages: tuple[str, ...] = PACKAGES) -> str:
    """The root filesystem's cache name: a hash of everything that goes into it."""
    inputs = {"builder": BUILDER_VERSION, "suite": suite, "mirror": mirror, "packages": sorted(packages)}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def extlinux_config(kernel: str, initrd: str) -> str:
    """extlinux.conf on the boot partition: one entry, no menu, the serial console too."""
    return (
        "DEFAULT debian\n"
        "TIMEOUT 1\n"
        "PROMPT 0\n"
        "SERIAL 0 115200\n"
        "LABEL debian\n"
        f"  LINUX /{kernel}\n"
        f"  INITRD /{initrd}\n"
        f"  APPEND root=LABEL={ROOT_LABEL} ro console=tty0 console=ttyS0,115200n8 quiet\n"
    )


# The unit that makes a clone's own SSH host key before sshd first starts: ed25519 only, which
# takes no time even under software emulation (RSA keys take minutes there).
_HOSTKEYS_UNIT = """[Unit]
Description=SSH host key of this clone (lcfg.xen template)
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key

[Install]
WantedBy=multi-user.target
"""


def rootfs_files() -> dict[str, str]:
    """{path in the root filesystem: content} the builder writes after debootstrap."""
    return {
        "etc/fstab": (
            f"LABEL={ROOT_LABEL} / ext4 defaults,errors=remount-ro 0 1\nLABEL={BOOT_LABEL} /boot ext2 defaults 0 2\n"
        ),
        "etc/systemd/network/80-lcfg-dhcp.network": "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n",
        "etc/hostname": "lcfg-template\n",
        "etc/hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        "etc/lcfg/TEMPLATE": "lcfg.xen bootable Debian template image\n",
    }


_CPU_ONLINE_RULE = 'SUBSYSTEM=="cpu", ACTION=="add", TEST=="online", ATTR{online}=="0", ATTR{online}="1"\n'


def image_files() -> dict[str, str]:
    """{path: content} written into each built image over the cached root filesystem (so a
    change here needs no new debootstrap): the SSH host key unit, sshd's one host key, and the
    udev rule that brings hot-added VCPUs online (the kernel adds them offline)."""
    return {
        "/etc/systemd/system/lcfg-ssh-hostkeys.service": _HOSTKEYS_UNIT,
        "/etc/ssh/sshd_config.d/lcfg-xen.conf": "HostKey /etc/ssh/ssh_host_ed25519_key\n",
        "/etc/udev/rules.d/80-lcfg-xen-cpu-online.rules": _CPU_ONLINE_RULE,
    }


def _run(args: list[str]) -> None:
    proc = subprocess.run(args, capture_output=True, text=True, check=False)  # pylint: disable=ansible-bad-function
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
        raise XenError(f"{' '.join(args[:3])} ... failed (exit {proc.returncode}): {' | '.join(tail)}")


def _configure(root: str, run: Runner) -> None:
    for rel, content in rootfs_files().items():
        target = os.path.join(root, rel)
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        if os.path.islink(target):
            os.unlink(target)  # written outside any chroot: never through a link of the tree
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(content)
    unit = os.path.join(root, "etc/systemd/system/lcfg-ssh-hostkeys.service")
    os.makedirs(os.path.dirname(unit), mode=0o755, exist_ok=True)
    with open(unit, "w", encoding="utf-8") as handle:  # enabled here, rewritten by install_rootfs
        handle.write(_HOSTKEYS_UNIT)
    for key in glob.glob(os.path.join(root, "etc/ssh/ssh_host_*")):
        os.unlink(key)
    run(["chroot", root, "systemctl", "enable", "systemd-networkd.service", "lcfg-ssh-hostkeys.service"])
    run(["chroot", root, "passwd", "--lock", "root"])
    machine_id = os.path.join(root, "etc/machine-id")  # each clone gets its own at first boot
    with open(machine_id, "w", encoding="utf-8"):
        pass
    run(["chroot", root, "apt-get", "clean"])


def _wait_for_lock(lock: Any, path: str, wait: float) -> None:
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise XenError(
                    f"another build of this Debian root filesystem has held {path} for more than {wait:g} s; "
                    "let it finish (or stop it) and run again"
                ) from None
            time.sleep(1)


def rootfs_tarball(
    suite: str, mirror: str, cache_dir: str = DEFAULT_CACHE_DIR, run: Runner = _run, lock_wait: float = LOCK_WAIT
) -> dict[str, Any]:
    """The cached root filesystem tar for (suite, mirror): built with debootstrap when missing.
    A build in progress elsewhere (same cache) is waited for, at most ``lock_wait`` seconds.

    Returns ``{"path": tar file, "built": bool, "key": cache key}``."""
    check_inputs(suite, mirror)
    if shutil.which("debootstrap") is None:
        raise XenError("debootstrap is missing on the managed host: install the Debian package debootstrap")
    key = cache_key(suite, mirror)
    os.makedirs(cache_dir, mode=0o700, exist_ok=True)
    tarball = os.path.join(cache_dir, f"debian-{suite}-{key}.tar")
    # One build at a time per cache: a second play (or make test's prebuild) waits, then
    # finds the tar file the first one made.
    lock_path = os.path.join(cache_dir, f"debian-{suite}-{key}.tar.lock")
    with open(lock_path, "w", encoding="utf-8") as lock:
        _wait_for_lock(lock, lock_path, lock_wait)
        if os.path.isfile(tarball):
            return {"path": tarball, "built": False, "key": key}
        _build_rootfs(suite, mirror, cache_dir, tarball, run)
    return {"path": tarball, "built": True, "key": key}


def _build_rootfs(suite: str, mirror: str, cache_dir: str, tarball: str, run: Runner) -> None:
    debs = os.path.join(cache_dir, "debs")
    os.makedirs(debs, mode=0o700, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".debian-{suite}-", dir=cache_dir)
    try:
        root = os.path.join(work, "root")
        run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--cache-dir={debs}",
                f"--include={','.join(PACKAGES)}",
                suite,
                root,
                mirror,
            ]
        )
        _configure(root, run)
        partial = os.path.join(work, "rootfs.tar")
        run(["tar", "--numeric-owner", "--xattrs", "-C", root, "-cf", partial, "."])
        os.replace(partial, tarball)
    finally:
        _unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)


def mounts_under(path: str, mounts_text: str) -> list[str]:
    """Mount points at or below ``path`` in /proc/self/mounts text, deepest first."""
    prefix = path.rstrip("/") + "/"
    points = []
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) > 1:
            point = fields[1].replace("\\040", " ")
            if point == path or point.startswith(prefix):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def _unmount_under(path: str) -> None:
    """Unmount what an interrupted debootstrap left mounted in its chroot (proc, sys) before
    the work directory is removed, so removal never reaches the host's filesystems."""
    try:
        with open("/proc/self/mounts", encoding="utf-8") as handle:
            points = mounts_under(path, handle.read())
    except OSError:
        return
    for point in points:
        subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)  # pylint: disable=ansible-bad-function


def boot_files(names: list[str]) -> tuple[str, str]:
    """The newest kernel and its initrd among the names of /boot."""
    kernels = sorted(n for n in names if n.startswith("vmlinuz-"))
    for kernel in reversed(kernels):
        initrd = "initrd.img-" + kernel[len("vmlinuz-") :]
        if initrd in names:
            return kernel, initrd
    raise XenError(
        f"the root filesystem's /boot holds no kernel with its initrd (found: {', '.join(names) or 'nothing'})"
    )


def install_rootfs(g: Any, partition: int, tarball: str) -> None:
    """Format the template's partitions (already laid out on /dev/sda of the libguestfs
    handle ``g``), unpack ``tarball`` and make partition 1 boot it with extlinux."""
    try:
        with open(SYSLINUX_MBR, "rb") as handle:
            mbr = handle.read(440)
    except OSError as exc:
        raise XenError(
            f"cannot read syslinux's MBR {SYSLINUX_MBR} ({exc}): install the Debian package syslinux-common"
        ) from exc
    boot, root = "/dev/sda1", f"/dev/sda{partition}"
    g.mkfs("ext2", boot)
    g.set_label(boot, BOOT_LABEL)
    g.mkfs("ext4", root)
    g.set_label(root, ROOT_LABEL)
    g.mount(root, "/")
    g.mkdir_p("/boot")
    g.mount(boot, "/boot")
    g.tar_in(tarball, "/", xattrs=True)
    for path, content in image_files().items():
        g.mkdir_p(os.path.dirname(path))
        g.write(path, content.encode())
    kernel, initrd = boot_files(list(g.ls("/boot")))
    g.write("/boot/extlinux.conf", extlinux_config(kernel, initrd).encode())
    g.extlinux("/boot")
    g.part_set_bootable("/dev/sda", 1, True)
    g.pwrite_device("/dev/sda", mbr, 0)
    g.sync()
