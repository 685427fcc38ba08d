# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""What a guest spec may reach on the hypervisor host. Pure: no Ansible, no libvirt.

A guest spec comes from an LCFG profile, which is untrusted. By default it may only ask for
things that stay inside the guest: ``extra.xml`` elements from an allow-list
(``GUEST_XML``), the known bootloaders, kernels and ramdisks inside the storage
directories, disk images inside the storage directories and no host block device. The
hypervisor admin widens this with play options (module options / role variables), never
through a profile value: ``HOST_ACCESS_ARGSPEC``, read by ``host_access_from_params``.

- ``check_guest_access(spec, access, prefix="", realpath=None)``: raises ``ValidationError``
  naming the parameter (``guests[2].extra.xml[0]``) and the element or path refused.
- ``check_extra_element(element, where)``: one parsed ``extra.xml`` fragment against the
  allow-list.
- ``check_bootloader``, ``check_boot_file``, ``check_bootloader_args``, ``check_vif_script``:
  the fields whose values the host runs or reads.
- ``profile_value_problem(field, value, access=None)``, ``check_disk_access``,
  ``narrowed_access``: the same rules for the inventory (the model reports the problem at
  the resource's file:line), with the inventory's ``host_access`` option or the defaults.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ansible_collections.lcfg.xen.plugins.module_utils.common.confinement import DEFAULT_STORAGE_DIRS
from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import ValidationError
from ansible_collections.lcfg.xen.plugins.module_utils.common.imports import optional_import
from ansible_collections.lcfg.xen.plugins.module_utils.spec.schema import extra_knobs

etree = optional_import("lxml.etree")[0]

__all__ = [
    "HOST_ACCESS_ARGSPEC",
    "KNOWN_BOOTLOADERS",
    "RNG_SOURCES",
    "HostAccess",
    "host_access_from_params",
    "check_guest_access",
    "check_container",
    "check_container_xml",
    "check_disk_access",
    "narrowed_access",
    "check_extra_element",
    "check_bootloader",
    "check_boot_file",
    "check_cdrom",
    "check_bootloader_args",
    "check_vif_script",
    "check_lifecycle",
    "safe_fragment",
    "profile_value_problem",
]

#: Bootloaders libxl may run in dom0 without an option: pygrub as Debian's xen-utils
#: installs it (/usr/lib/xen-<version>/bin/pygrub, /usr/bin/pygrub), as upstream Xen
#: installs it, and the bare name (libxl looks in its own directory).
KNOWN_BOOTLOADERS = (
    "pygrub",
    "/usr/bin/pygrub",
    "/usr/lib/xen/bin/pygrub",
    "/usr/local/lib/xen/bin/pygrub",
    "/usr/libexec/xen/bin/pygrub",
)
_VERSIONED_PYGRUB_RE = re.compile(r"^/usr/lib/xen-[0-9]+\.[0-9]+/bin/pygrub$")
#: PV kernels that are bootloaders themselves: PV-GRUB2 of Debian's grub-xen-host.
_KNOWN_BOOT_KERNEL_RE = re.compile(r"^/usr/lib/grub-xen/grub-(i386|x86_64)-xen(_pvh)?\.bin$")
#: pygrub options a bootloader's arguments (``cmdline``) may use: choices inside the guest's
#: own disk. Others (--output, --output-directory, positional files) reach host files.
_BOOTLOADER_ARG_RE = re.compile(r"^(--(entry|kernel|ramdisk|args)=\S*|-q|--quiet)$")
RNG_SOURCES = ("/dev/urandom", "/dev/random")

HOST_ACCESS_ARGSPEC: dict = {
    "storage_dirs": {"type": "list", "elements": "path"},
    "allow_host_resources": {"type": "bool", "default": False},
    "allow_containers": {"type": "bool", "default": False},
    "trusted_extra_xml": {"type": "bool", "default": False},
    "allowed_boot_paths": {"type": "list", "elements": "path", "default": []},
    "allowed_block_devices": {"type": "list", "elements": "path", "default": []},
}


@dataclass(frozen=True)
class HostAccess:
    """What the play allows the guest specs to reach (the defaults: only the guest itself)."""

    storage_dirs: tuple = ()
    allow_host_resources: bool = False
    allow_containers: bool = False
    trusted_extra_xml: bool = False
    allowed_boot_paths: tuple = ()
    allowed_block_devices: tuple = ()


def _abs_dirs(values: Any, option: str) -> tuple:
    if values is None:
        return ()
    if not isinstance(values, (list, tuple)):
        raise ValidationError(option, "must be a list of absolute paths")
    out = []
    for value in values:
        text = str(value)
        if not text.startswith("/") or "\0" in text:
            raise ValidationError(option, f"{value!r} is not an absolute path")
        out.append(os.path.normpath(text))
    return tuple(out)


def host_access_from_params(params: dict, default_storage_dirs: list | tuple | None = None) -> HostAccess:
    """The module options of ``HOST_ACCESS_ARGSPEC`` as a HostAccess (``{}``: the defaults).
    ``storage_dirs`` defaults to ``default_storage_dirs``, else the collection's list."""
    if default_storage_dirs is None:
        default_storage_dirs = DEFAULT_STORAGE_DIRS
    dirs = params.get("storage_dirs")
    if dirs is not None and not dirs:
        raise ValidationError("storage_dirs", "must name at least one directory")
    return HostAccess(
        storage_dirs=_abs_dirs(default_storage_dirs if dirs is None else dirs, "storage_dirs"),
        allow_host_resources=bool(params.get("allow_host_resources")),
        allow_containers=bool(params.get("allow_containers")),
        trusted_extra_xml=bool(params.get("trusted_extra_xml")),
        allowed_boot_paths=_abs_dirs(params.get("allowed_boot_paths"), "allowed_boot_paths"),
        allowed_block_devices=_abs_dirs(params.get("allowed_block_devices"), "allowed_block_devices"),
    )


def _under(path: str, roots: tuple) -> bool:
    """``path`` is one of ``roots`` or lies below one (both normalised)."""
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _resolved(path: str, roots: tuple, realpath: Callable[[str], str] | None) -> tuple[str, tuple]:
    """``path`` and ``roots`` as the checks compare them: symlinks resolved on the managed host
    (so a link inside a storage directory cannot lead out), else only normalised."""
    if realpath is None:
        return os.path.normpath(path), roots
    return realpath(path), tuple(realpath(root) for root in roots)


# --------------------------------------------------------------------------- boot fields


def check_bootloader(value: str, where: str, access: HostAccess) -> None:
    """A bootloader runs in dom0: only the known ones unless the play allows its path."""
    if access.allow_host_resources or value in KNOWN_BOOTLOADERS or _VERSIONED_PYGRUB_RE.match(value):
        return
    if value.startswith("/") and _under(os.path.normpath(value), access.allowed_boot_paths):
        return
    raise ValidationError(
        where,
        f"bootloader {value!r} is not a known bootloader (pygrub: "
        f"{', '.join(KNOWN_BOOTLOADERS)}, /usr/lib/xen-<version>/bin/pygrub); it would "
        "run on the host, so only the play can allow it (allowed_boot_paths or "
        "allow_host_resources)",
    )


def check_boot_file(value: str, where: str, access: HostAccess, realpath: Callable[[str], str] | None = None) -> None:
    """A kernel or ramdisk is read by the host: inside the storage directories, a known
    bootloader kernel (PV-GRUB2), or a path the play allows."""
    if access.allow_host_resources:
        return
    if where.endswith("kernel") and _KNOWN_BOOT_KERNEL_RE.match(os.path.normpath(value)):
        return
    if _under(os.path.normpath(value), access.allowed_boot_paths):
        return
    path, dirs = _resolved(value, access.storage_dirs, realpath)
    if _under(path, dirs):
        return
    shown = value if path == os.path.normpath(value) else f"{value} (-> {path})"
    raise ValidationError(
        where,
        f"{shown} is outside the storage directories "
        f"({', '.join(access.storage_dirs) or 'none'}); the host would read it into "
        "the guest, so only the play can allow it (allowed_boot_paths or "
        "allow_host_resources)",
    )


def check_cdrom(value: str, where: str, access: HostAccess, realpath: Callable[[str], str] | None = None) -> None:
    """A CD-ROM image is read by the host into the guest: inside the storage directories,
    symlinks resolved (a link inside them cannot lead out), like a disk image."""
    if access.allow_host_resources:
        return
    path, dirs = _resolved(value, access.storage_dirs, realpath)
    if _under(path, dirs) and path not in dirs:
        return
    shown = value if path == os.path.normpath(value) else f"{value} (-> {path})"
    raise ValidationError(
        where,
        f"CD-ROM image {shown} is outside the storage directories "
        f"({', '.join(access.storage_dirs) or 'none'}); put the ISO image into one of them, or "
        "the play widens them (storage_dirs or allow_host_resources)",
    )


def check_bootloader_args(value: str, where: str, access: HostAccess) -> None:
    """With a bootloader, ``cmdline`` becomes its arguments: only choices inside the guest's disk."""
    if access.allow_host_resources:
        return
    for word in value.split():
        if not _BOOTLOADER_ARG_RE.match(word):
            raise ValidationError(
                where,
                f"bootloader argument {word!r} is not allowed: with a bootloader, "
                "cmdline holds its options and may use --entry=, --kernel=, --ramdisk=, "
                "--args= (one word each) and -q; others choose host files (allow them with "
                "allow_host_resources)",
            )


def check_vif_script(value: str, where: str, access: HostAccess) -> None:
    """A vif script runs in dom0: a plain name, found in Xen's own scripts directory
    (/etc/xen/scripts); a path (or '..') would run any host program."""
    if access.allow_host_resources or re.match(r"^[A-Za-z0-9_.-]+$", value) and value not in (".", ".."):
        return
    raise ValidationError(
        where,
        f"vif script {value!r} is a path; a guest's vif script must be a name from "
        "Xen's scripts directory (vif-bridge, vif-nat, vif-route, ...), since it runs on the "
        "host; only the play can allow a path (allow_host_resources)",
    )


def check_lifecycle(extra: dict, where: str, access: HostAccess) -> None:
    """``extra``'s on_poweroff/on_reboot/on_crash: a coredump action writes the guest's memory
    into the host's dump directory each time (a guest crashing in a loop fills the host's disk)."""
    if access.allow_host_resources or not isinstance(extra, dict):
        return
    for knob in ("on_poweroff", "on_reboot", "on_crash"):
        value = extra.get(knob)
        if isinstance(value, str) and value in _HOST_VALUE_REASONS:
            raise ValidationError(
                f"{where}.{knob}",
                f"{value!r} is refused: it {_HOST_VALUE_REASONS[value]}; "
                "use destroy, restart, preserve or rename-restart, or the play allows it "
                "(allow_host_resources)",
            )


# --------------------------------------------------------------------------- extra.xml

ANY = None  # any attribute value

#: a name libvirt turns into a host file name (a unix channel's socket is
#: ``<libvirt's channel directory>/<domain>/<name>``): one plain file name, never ``..``
_CHANNEL_NAME_RE = re.compile(r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
#: attributes whose values may hold a ``/`` that is not a host path, each with its pattern:
#: ``<clock timezone>`` becomes QEMU's TZ, which reads ``:file`` or ``../`` names as tz files
_SLASH_ATTRS = {"timezone": re.compile(r"^(?!.*\.\.)[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$")}
#: video memory sizes (KiB): QEMU allocates them on the host beside the guest's memory, so at
#: most six digits (under 1 GiB each; real cards use 16-256 MiB)
_VIDEO_KIB_RE = re.compile(r"^[0-9]{1,6}$")
#: values that make the host write or allocate for the guest beyond its memory and disks
_HOST_VALUE_REASONS = {
    "dump": "writes the guest's memory into the host's dump directory on every watchdog expiry",
    "coredump-destroy": "writes the guest's memory into the host's dump directory on every crash",
    "coredump-restart": "writes the guest's memory into the host's dump directory on every crash",
}


@dataclass(frozen=True)
class _Rule:
    """What an allowed element may carry: ``attrs`` name -> allowed values (ANY: any),
    ``children`` name -> rule, ``text`` allowed values (ANY: any text; () none), and
    ``subtree`` True when everything below is guest-side (free attributes and children)."""

    attrs: dict = field(default_factory=dict)
    children: dict = field(default_factory=dict)
    text: tuple | None = ()
    subtree: bool = False


_FREE = _Rule(subtree=True)
_ADDRESSING = {
    "address": _FREE,
    "alias": _Rule(attrs={"name": ANY}),
    "acpi": _Rule(attrs={"index": ANY}),
    "boot": _Rule(attrs={"order": ANY}),
}
_VIRTIO_DRIVER = _Rule(attrs={"iommu": ANY, "ats": ANY, "packed": ANY, "page_per_vq": ANY})
_VIRTIO_MODELS = ("virtio", "virtio-transitional", "virtio-non-transitional")


def _device(attrs: dict, **children: _Rule) -> _Rule:
    return _Rule(attrs=attrs, children=dict(_ADDRESSING, **children))


_PTY_TARGET = _Rule(attrs={"type": ANY, "port": ANY}, children={"model": _Rule(attrs={"name": ANY})})

#: the devices a profile may add: emulated hardware inside the guest, no host resource
_GUEST_DEVICES = {
    "rng": _device(
        {"model": _VIRTIO_MODELS},
        backend=_Rule(attrs={"model": ("random",)}, text=("",) + RNG_SOURCES),
        rate=_Rule(attrs={"period": ANY, "bytes": ANY}),
        driver=_VIRTIO_DRIVER,
    ),
    # not action='dump': a guest that trips its watchdog in a loop fills the host's disk
    "watchdog": _device({"model": ANY, "action": ("reset", "shutdown", "poweroff", "pause", "none", "inject-nmi")}),
    "memballoon": _device(
        {"model": _VIRTIO_MODELS + ("xen", "none"), "autodeflate": ANY, "freePageReporting": ANY},
        stats=_Rule(attrs={"period": ANY}),
        driver=_VIRTIO_DRIVER,
    ),
    "video": _device(
        {},
        model=_Rule(
            attrs={
                "type": ("vga", "cirrus", "vmvga", "qxl", "virtio", "bochs", "ramfb", "none", "xen", "gop"),
                "vram": _VIDEO_KIB_RE,
                "ram": _VIDEO_KIB_RE,
                "vgamem": _VIDEO_KIB_RE,
                "vram64": _VIDEO_KIB_RE,
                "heads": ANY,
                "primary": ANY,
            },
            children={
                "acceleration": _Rule(attrs={"accel3d": ANY, "accel2d": ANY}),
                "resolution": _Rule(attrs={"x": ANY, "y": ANY}),
            },
        ),
        driver=_Rule(attrs={"vgaconf": ANY, "iommu": ANY, "ats": ANY, "packed": ANY}),
    ),
    "input": _device(
        {"type": ("mouse", "tablet", "keyboard"), "bus": ("ps2", "usb", "virtio", "xen"), "model": ANY},
        driver=_VIRTIO_DRIVER,
    ),
    "sound": _device({"model": ANY}, codec=_Rule(attrs={"type": ANY})),
    "serial": _device({"type": ("pty",)}, target=_PTY_TARGET),
    "console": _device({"type": ("pty",)}, target=_PTY_TARGET),
    # a guest agent channel: libvirt puts the socket in its own directory, named by the
    # target name, so the name is one plain file name (``../`` would place it anywhere)
    "channel": _device(
        {"type": ("pty", "unix")},
        source=_Rule(attrs={"mode": ("bind",)}),
        target=_Rule(attrs={"type": ("virtio", "xen"), "name": _CHANNEL_NAME_RE}),
    ),
    "controller": _FREE,
    "panic": _device({"model": ANY}),
    "hub": _device({"type": ("usb",)}),
    "iommu": _FREE,
    "tpm": _device(
        {"model": ANY},
        backend=_Rule(
            attrs={"type": ("emulator",), "version": ANY, "persistent_state": ANY}, children={"active_pcr_banks": _FREE}
        ),
    ),
}

_FEATURES = (
    "acpi",
    "apic",
    "pae",
    "hap",
    "viridian",
    "privnet",
    "hyperv",
    "kvm",
    "pvspinlock",
    "gic",
    "ioapic",
    "smm",
    "vmport",
    "htm",
    "nested-hv",
    "vmcoreinfo",
    "msrs",
    "hpt",
    "ccf-assist",
    "cfpc",
    "sbbc",
    "ibs",
    "async-teardown",
    "ras",
    "ps2",
)  # not tcg: see _HOST_REASONS
# not coredump-*: every crash would write the guest's memory to the host's disk
_LIFECYCLE = ("destroy", "restart", "preserve", "rename-restart")

#: top-level elements an ``extra.xml`` fragment may be, with what they may hold
GUEST_XML: dict = {
    # <features><xen> is left out: its passthrough and e820_host reach host devices
    "features": _Rule(children={name: _FREE for name in _FEATURES}),
    "clock": _FREE,
    "cpu": _Rule(
        attrs={
            "mode": ("custom", "host-model", "host-passthrough", "maximum"),
            "match": ANY,
            "check": ANY,
            "migratable": ANY,
        },
        children={name: _FREE for name in ("model", "vendor", "topology", "feature", "cache", "numa", "maxphysaddr")},
    ),
    "on_poweroff": _Rule(text=_LIFECYCLE),
    "on_reboot": _Rule(text=_LIFECYCLE),
    "on_crash": _Rule(text=_LIFECYCLE),
    "pm": _FREE,
    "description": _Rule(text=ANY),
    "title": _Rule(text=ANY),
    "sysinfo": _Rule(
        attrs={"type": ("smbios",)},
        children={
            name: _FREE for name in ("bios", "system", "baseBoard", "chassis", "processor", "memory", "oemStrings")
        },
    ),
    "devices": _Rule(children=_GUEST_DEVICES),
}

#: why the usual host-reaching elements are refused (the rest: "not in the allow-list")
_HOST_REASONS = {
    "hostdev": "passes a host device through",
    "disk": "attaches a host file or block device (use disks)",
    "filesystem": "shares a host directory",
    "interface": "connects to the host's network (use vifs)",
    "shmem": "shares host memory",
    "redirdev": "redirects a USB device from the host or network",
    "smartcard": "uses the host's smartcard or a host channel",
    "graphics": "listens on the host",
    "emulator": "runs a host program",
    "seclabel": "changes the guest's confinement on the host",
    "audio": "writes to or plays on the host",
    "vsock": "opens a channel to host processes",
    "parallel": "uses a host character device",
    "lease": "takes a host lock file",
    "memoryBacking": "maps host memory or files",
    "bootloader": "runs a program on the host",
    "bootloader_args": "chooses the bootloader's host files",
    "crypto": "uses the host's crypto device",
    "qemu:commandline": "runs host commands",
    "cputune": "pins to host CPUs (use cpus)",
    "numatune": "binds to host NUMA nodes",
    "blkiotune": "tunes host block devices",
    "resource": "places the guest in host cgroups",
    "perf": "reads host perf counters",
    "tcg": "sizes QEMU's translation cache in host memory, beyond the guest's memory",
}
_EXTRA_HINT = (
    "a profile's extra.xml may hold only guest-side elements ({allowed}; see docs/domains.md); "
    "the hypervisor admin can allow anything with trusted_extra_xml or allow_host_resources"
)


def _describe(element: Any) -> str:
    qname = etree.QName(element)
    prefix = element.prefix
    name = f"{prefix}:{qname.localname}" if prefix else qname.localname
    attrs = " ".join(f"{k}={v!r}" for k, v in element.attrib.items() if k == "type")
    return f"<{name}{' ' + attrs if attrs else ''}>"


def _refuse(where: str, path: list[str], problem: str) -> None:
    allowed = ", ".join(f"<{name}>" for name in GUEST_XML)
    raise ValidationError(where, f"{' in '.join(reversed(path))} {problem}; {_EXTRA_HINT.format(allowed=allowed)}")


def _rule_for(element: Any, rules: dict, where: str, path: list[str]) -> _Rule:
    """The rule of ``element`` among ``rules``; refuses foreign namespaces and unlisted names."""
    name = etree.QName(element).localname
    if etree.QName(element).namespace:
        _refuse(
            where,
            path,
            "is in a foreign XML namespace ("
            + _HOST_REASONS.get(f"{element.prefix}:{name}", "not libvirt's own domain XML")
            + ")",
        )
    rule = rules.get(name)
    if rule is None:
        reason = _HOST_REASONS.get(name, "is not in the allow-list")
        _refuse(where, path, reason if reason.startswith("is ") else f"is refused: it {reason}")
    return rule


def _check_element(element: Any, rule: _Rule, where: str, path: list[str]) -> None:
    for key, value in element.attrib.items():
        if key.startswith("{"):
            _refuse(where, path, f"has the namespaced attribute {key!r}")
        pattern = _SLASH_ATTRS.get(key)
        if "/" in value and pattern is None or pattern is not None and not pattern.match(value):
            # no allowed attribute takes a path, not even a relative one (libvirt and QEMU
            # join some values to their own directories): a '/' names a host file or device
            _refuse(where, path, f"may not name the host path {key}={value!r}")
        if rule.subtree:
            continue
        if key not in rule.attrs:
            _refuse(where, path, f"may not set {key}= (reaches beyond the guest or is not allowed)")
        allowed = rule.attrs[key]
        if isinstance(allowed, re.Pattern):
            if not allowed.match(value):
                _refuse(
                    where,
                    path,
                    f"may not set {key}={value!r} (one plain name of letters, digits, "
                    "'_.-', no '..': libvirt makes a host file of it)",
                )
        elif allowed is not ANY and value not in allowed:
            if value in _HOST_VALUE_REASONS:
                _refuse(where, path, f"may not set {key}={value!r}: it {_HOST_VALUE_REASONS[value]}")
            _refuse(where, path, f"may not set {key}={value!r} (allowed: {', '.join(allowed)})")
    text = (element.text or "").strip()
    if rule.subtree and text.startswith("/"):
        _refuse(where, path, f"may not name the host path {text!r}")
    if text and not rule.subtree and rule.text is not ANY and text not in rule.text:
        if text in _HOST_VALUE_REASONS:
            _refuse(where, path, f"may not contain {text!r}: it {_HOST_VALUE_REASONS[text]}")
        allowed = f" (allowed: {', '.join(v for v in rule.text if v)})" if rule.text else ""
        _refuse(where, path, f"may not contain {text!r}{allowed}")
    for child in element:
        if not isinstance(child.tag, str):
            continue  # comments and processing instructions carry nothing to libvirt
        inner = path + [_describe(child)]
        children = {etree.QName(child).localname: _FREE} if rule.subtree else rule.children
        _check_element(child, _rule_for(child, children, where, inner), where, inner)


def check_extra_element(element: Any, where: str) -> None:
    """Raise ValidationError unless the fragment ``element`` is on the guest-side allow-list."""
    path = [_describe(element)]
    _check_element(element, _rule_for(element, GUEST_XML, where, path), where, path)


def safe_fragment(text: str) -> Any:
    """Parse one XML fragment without DTDs or entities (an external entity would read a host
    file into the definition). Raises ValueError with the problem."""
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise ValueError("DOCTYPE and entity declarations are not allowed")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        return etree.fromstring(text.strip().encode(), parser)
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"not well-formed XML: {exc}") from None


# --------------------------------------------------------------------------- whole spec


def check_disk_access(disk: dict, where: str, access: HostAccess, realpath: Callable[[str], str] | None = None) -> None:
    """A ``phy`` disk is a host block device: only one the play allows; an image lies inside
    the storage directories."""
    if access.allow_host_resources:
        return
    if disk.get("type") == "phy":
        if not _under(os.path.normpath(disk["path"]), access.allowed_block_devices):
            raise ValidationError(
                where,
                f"{disk['path']} is a host block device; only the play can give one "
                "to a guest (allowed_block_devices or allow_host_resources)",
            )
        return
    path, dirs = _resolved(disk["path"], access.storage_dirs, realpath)
    if not _under(path, dirs):
        shown = disk["path"] if path == os.path.normpath(disk["path"]) else f"{disk['path']} (-> {path})"
        raise ValidationError(
            where,
            f"disk image {shown} is outside the storage directories "
            f"({', '.join(access.storage_dirs) or 'none'}); add the directory to "
            "storage_dirs or use allow_host_resources",
        )


def narrowed_access(access: HostAccess, profile_dirs: list | tuple | None) -> HostAccess:
    """``access`` with the storage directories a hypervisor profile narrows them to
    (``xen.storagedirs``); raises ValueError for a directory outside the play's list, which a
    profile may never widen (xen_disk's ``profile_storage_dirs`` rule, on normalised paths)."""
    if not profile_dirs:
        return access
    for directory in profile_dirs:
        if not _under(os.path.normpath(directory), access.storage_dirs):
            raise ValueError(
                f"{directory} is not inside the play's storage directories "
                f"({', '.join(access.storage_dirs)}): a hypervisor profile may only narrow them; "
                "the admin widens them with storage_dirs (inventory option host_access, role "
                "variable guest_storage_dirs)"
            )
    return replace(access, storage_dirs=tuple(os.path.normpath(d) for d in profile_dirs))


def check_guest_access(
    spec: dict, access: HostAccess, prefix: str = "", realpath: Callable[[str], str] | None = None
) -> None:
    """Refuse the parts of a validated guest spec that reach the host beyond what ``access``
    allows. ``realpath`` resolves symlinks (given when the module runs on the hypervisor)."""
    if spec.get("type") in ("container", "lxc"):
        check_container(f"{prefix}type", access)
        check_container_xml(spec, access, prefix)
    if access.allow_host_resources:
        return
    for index, disk in enumerate(spec.get("disks") or []):
        check_disk_access(disk, f"{prefix}disks[{index}].path", access, realpath)
    for index, vif in enumerate(spec.get("vifs") or []):
        if vif.get("script"):
            check_vif_script(vif["script"], f"{prefix}vifs[{index}].script", access)
    for name in ("kernel", "ramdisk"):
        if spec.get(name):
            check_boot_file(spec[name], f"{prefix}{name}", access, realpath)
    if spec.get("cdrom"):
        check_cdrom(spec["cdrom"], f"{prefix}cdrom", access, realpath)
    if spec.get("bootloader"):
        check_bootloader(spec["bootloader"], f"{prefix}bootloader", access)
        if spec.get("cmdline"):
            check_bootloader_args(spec["cmdline"], f"{prefix}cmdline", access)
    check_lifecycle(spec.get("extra") or {}, f"{prefix}extra", access)
    if access.trusted_extra_xml:
        return
    for index, text in enumerate((spec.get("extra") or {}).get("xml") or []):
        where = f"{prefix}extra.xml[{index}]"
        try:
            element = safe_fragment(text)
        except ValueError as exc:
            raise ValidationError(where, str(exc)) from None
        check_extra_element(element, where)


def _extra_fragments(text: str) -> list:
    """The XML fragments of an ``extra_$`` text in any of its forms (XML fragments, or a JSON
    object with ``xml``; see domain.desired.parse_extra_text). Text that does not parse is the
    schema's to report, not a host access."""
    stripped = text.strip()
    if stripped.startswith("<"):
        try:
            wrapper = etree.fromstring(f"<extra>{stripped}</extra>".encode(), etree.XMLParser(resolve_entities=False))
        except etree.XMLSyntaxError:
            return [stripped]  # safe_fragment names the problem
        return [
            etree.tostring(child, encoding="unicode", with_tail=False)
            for child in wrapper
            if isinstance(child.tag, str)
        ]
    if stripped.startswith("{"):
        try:
            value = json.loads(stripped)
        except ValueError:
            return []
        fragments = value.get("xml") if isinstance(value, dict) else None
        if isinstance(fragments, str):
            return [fragments]
        return [f for f in fragments if isinstance(f, str)] if isinstance(fragments, list) else []
    return []


def check_container(where: str, access: HostAccess) -> None:
    """A container only where the play allows them: libvirt's LXC driver runs it without a
    user namespace (a loop-mounted root filesystem cannot be mounted in one), so its root user
    is root on the host, held in only by dropped capabilities and namespaces - not a boundary
    against whoever controls the guest, as a VM is."""
    if not (access.allow_containers or access.allow_host_resources):
        raise ValidationError(
            where,
            "a container runs as a privileged container (its root user is root on the host, "
            "unlike a VM's), so only the play can allow containers: allow_containers: true "
            "(guest role: guest_allow_containers; inventory: host_access.allow_containers)",
        )


def check_container_xml(spec: dict, access: HostAccess, prefix: str = "") -> None:
    """A container takes no ``extra.xml`` unless the play trusts it: on libvirt's LXC driver
    even guest-side elements reach the host (a ``<clock>`` timer becomes the host's
    ``/dev/rtc0`` or ``/dev/hpet`` in the container)."""
    fragments = (spec.get("extra") or {}).get("xml") or []
    if fragments and not (access.trusted_extra_xml or access.allow_host_resources):
        raise ValidationError(
            f"{prefix}extra.xml[0]",
            "a container takes no extra XML (on libvirt's LXC driver even a <clock> timer hands it a host "
            "device); only the play can allow it (trusted_extra_xml)",
        )


def profile_value_problem(field_name: str, value: Any, access: HostAccess | None = None) -> None:
    """The rules for one guest field as a profile gives it (inventory): raises ValueError with
    the problem. ``extra`` is the text of ``extra_$``, ``bootloader_args`` the ``cmdline`` of a
    guest with a bootloader; ``access`` is the inventory's ``host_access`` (default: the
    modules' defaults, with the collection's storage directories)."""
    if access is None:
        access = host_access_from_params({})
    try:
        if field_name == "type":
            if str(value).strip().lower() in ("container", "lxc"):
                check_container(field_name, access)
        elif field_name == "bootloader":
            check_bootloader(str(value), field_name, access)
        elif field_name == "script":
            check_vif_script(str(value), field_name, access)
        elif field_name == "bootloader_args":
            check_bootloader_args(str(value), "cmdline", access)
        elif field_name in ("kernel", "ramdisk"):
            check_boot_file(str(value), field_name, access)
        elif field_name == "cdrom":
            check_cdrom(str(value), field_name, access)
        elif (
            field_name == "extra"
            and etree is not None
            and not (access.trusted_extra_xml or access.allow_host_resources)
        ):
            for index, text in enumerate(_extra_fragments(str(value))):
                try:
                    element = safe_fragment(text)
                except ValueError as exc:
                    raise ValidationError(f"extra.xml[{index}]", str(exc)) from None
                check_extra_element(element, f"extra.xml[{index}]")
        if field_name == "extra" and not str(value).strip().startswith("<"):
            try:
                knobs = extra_knobs(str(value))
            except ValueError:
                knobs = {}  # not readable: the schema names the problem
            check_lifecycle(knobs, "extra", access)
    except ValidationError as exc:
        raise ValueError(exc.message) from None
