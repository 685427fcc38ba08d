# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The desired guest spec: its vocabulary, validation and completion. Pure: no Ansible, no libvirt.

Vocabulary (architecture.md "guest spec"): a plain dict with ``name``, ``uuid``,
``type`` (pv|hvm|pvh), ``memory``/``maxmem`` (MiB), ``vcpus``/``maxvcpus``, ``cpus``
(canonical cpuset or ``""`` for no pinning), ``autostart``, ``disks`` (list of
``{path, type, format, device, tag, name}``), ``vifs`` (list of ``{mac, nettype, bridge,
network, script, model, ip, tag}``), ``kernel``, ``ramdisk``, ``cmdline``, ``bootloader``,
``boot_order`` (list of network|disk|cdrom, None: from the disks), ``firmware`` (bios|uefi),
``cdrom`` (an ISO image path, None: no CD-ROM),
``extra`` (``{on_poweroff, on_reboot, on_crash, domain_type, xml: [fragments]}``).

- ``validate_spec(params, prefix="")``: user parameters -> validated spec (``None`` kept
  as "leave alone"); raises ``ValidationError`` naming the parameter.
- ``check_driver(spec, driver, prefix="")``: driver-specific rules (pvh and bootloader need
  Xen; ``extra.domain_type`` must exist on the driver).
- ``complete_spec(desired, current, driver)``: fill the fields the user left out from the
  current spec (or defaults for a new guest) and adopt generated values (UUID, MACs).

The spec goes on to ``render`` (spec -> XML) and comes back from ``parse`` (XML -> spec).
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import uuid as uuidlib
from typing import Any

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import ValidationError
from ansible_collections.lcfg.xen.plugins.module_utils.common.host_access import safe_fragment
from ansible_collections.lcfg.xen.plugins.module_utils.common.imports import optional_import
from ansible_collections.lcfg.xen.plugins.module_utils.common.validate import (
    canonical_guest_type,
    cpuset_members,
    parse_int,
    valid_guest_name,
    valid_mac,
    valid_uuid,
)
from ansible_collections.lcfg.xen.plugins.module_utils.spec.schema import (
    BOOT_DEVICES,
    BRIDGE_RE,
    DEVICE_RE,
    FIRMWARES,
    MAX_DISKS,
    MODEL_RE,
    NETWORK_RE,
    SCRIPT_RE,
    check_guest,
    extra_knobs,
)

etree = optional_import("lxml.etree")[0]

__all__ = [
    "SPEC_FIELDS",
    "VIF_FIELDS",
    "EXTRA_KNOBS",
    "METADATA_NS",
    "DEFAULT_NETWORKS",
    "LIFECYCLE_ACTIONS",
    "LIFECYCLE_DEFAULTS",
    "validate_spec",
    "parse_extra_text",
    "check_driver",
    "missing_network",
    "complete_spec",
    "canonical_cpuset",
    "detect_format",
    "default_domain_type",
    "generated_uuid",
    "generated_mac",
    "CDROM_TARGET",
]

SPEC_FIELDS = (
    "name",
    "uuid",
    "type",
    "memory",
    "maxmem",
    "vcpus",
    "maxvcpus",
    "cpus",
    "autostart",
    "disks",
    "vifs",
    "kernel",
    "ramdisk",
    "cmdline",
    "bootloader",
    "boot_order",
    "firmware",
    "cdrom",
    "extra",
)
VIF_FIELDS = ("mac", "nettype", "bridge", "network", "script", "model", "ip", "tag")
EXTRA_KNOBS = ("on_poweroff", "on_reboot", "on_crash")
LIFECYCLE_ACTIONS = ("destroy", "restart", "preserve", "rename-restart", "coredump-destroy", "coredump-restart")
DOMAIN_TYPES = ("kvm", "qemu", "xen", "lxc", "test")
METADATA_NS = "urn:lcfg:xen:guest:1"
DEFAULT_NETWORKS = {"nat": "lcfg-nat", "route": "lcfg-route"}
DEFAULT_MEMORY = 512
LIFECYCLE_DEFAULTS = {"on_poweroff": "destroy", "on_reboot": "restart", "on_crash": "destroy"}
_UUID_NAMESPACE = uuidlib.UUID("6a1c5b1e-3f0a-5d7e-9c41-0b1f2e3d4c5b")
#: the CD-ROM's target device (second IDE channel, master): on both drivers' HVM machines
CDROM_TARGET = "hdc"
_MAC_PREFIX = {"xen": "00:16:3e", "qemu": "52:54:00", "kvm": "52:54:00", "test": "52:54:00"}


def _fail(parameter: str, message: str) -> None:
    raise ValidationError(parameter, message)


# --------------------------------------------------------------------------- validation


def canonical_cpuset(value: str) -> str:
    """libvirt's own cpuset form: sorted, ranges compressed (``0,1,2,5`` -> ``0-2,5``)."""
    members = cpuset_members(value)
    if not members:
        raise ValueError(f"CPU list {value!r} selects no CPU")
    parts: list[str] = []
    start = prev = members[0]
    for cpu in members[1:] + [None]:  # type: ignore[list-item]
        if cpu is not None and cpu == prev + 1:
            prev = cpu
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if cpu is not None:
            start = prev = cpu
    return ",".join(parts)


def _abs_path(value: Any, parameter: str) -> str:
    text = str(value)
    if not text.startswith("/") or "\0" in text:
        _fail(parameter, f"path {value!r} must be absolute (start with '/')")
    if any(part == ".." for part in text.split("/")):
        _fail(parameter, f"path {value!r} may not contain '..'")
    return text


def _validate_disk(disk: Any, where: str) -> dict:
    if not isinstance(disk, dict):
        _fail(where, "each disk must be a dict with at least 'path'")
    if not disk.get("path"):
        _fail(f"{where}.path", "a disk needs 'path' (absolute path of the image or block device)")
    out = {
        "path": _abs_path(disk["path"], f"{where}.path"),
        "type": disk.get("type") or "image",
        "format": disk.get("format"),
        "device": disk.get("device"),
        "tag": None if disk.get("tag") is None else str(disk["tag"]),
        "name": None if disk.get("name") is None else str(disk["name"]),
    }
    if out["type"] not in ("image", "phy"):
        _fail(f"{where}.type", f"unknown disk type {out['type']!r}: use image or phy")
    if out["format"] is not None and out["format"] not in ("raw", "qcow2"):
        _fail(f"{where}.format", f"unknown disk format {out['format']!r}: use raw or qcow2")
    if out["type"] == "phy" and out["format"] == "qcow2":
        _fail(f"{where}.format", "a phy (block device) disk is always raw")
    if out["type"] == "phy":
        out["format"] = "raw"
    if out["device"] is not None and not DEVICE_RE.match(str(out["device"])):
        _fail(f"{where}.device", f"invalid target device {out['device']!r}: use e.g. xvda, vda, sda or hda")
    return out


def _validate_vif(vif: Any, where: str) -> dict:
    if not isinstance(vif, dict):
        _fail(where, "each vif must be a dict")
    out = {key: vif.get(key) for key in VIF_FIELDS}
    if out["mac"] is not None:
        try:
            out["mac"] = valid_mac(out["mac"])
        except ValueError as exc:
            _fail(f"{where}.mac", str(exc))
    out["nettype"] = out["nettype"] or "bridge"
    if out["nettype"] not in ("bridge", "nat", "route"):
        _fail(f"{where}.nettype", f"unknown nettype {out['nettype']!r}: use bridge, nat or route")
    if out["nettype"] == "bridge":
        if out["network"] is not None:
            _fail(f"{where}.network", "'network' is for nettype nat or route; a bridge vif uses 'bridge'")
        if out["bridge"] is not None and not BRIDGE_RE.match(str(out["bridge"])):
            _fail(f"{where}.bridge", f"invalid bridge name {out['bridge']!r}")
    else:
        if out["bridge"] is not None:
            _fail(
                f"{where}.bridge",
                f"'bridge' is for nettype bridge; a {out['nettype']} vif uses "
                f"'network' (default {DEFAULT_NETWORKS[out['nettype']]})",
            )
        out["network"] = out["network"] or DEFAULT_NETWORKS[out["nettype"]]
        if not NETWORK_RE.match(str(out["network"])):
            _fail(f"{where}.network", f"invalid network name {out['network']!r}")
    if out["ip"] is not None:
        try:
            out["ip"] = str(ipaddress.ip_address(str(out["ip"]).strip()))
        except ValueError:
            _fail(f"{where}.ip", f"invalid IP address {out['ip']!r}")
    if out["script"] is not None:
        out["script"] = str(out["script"])
        if not SCRIPT_RE.match(out["script"]):
            _fail(f"{where}.script", f"invalid vif script {out['script']!r}")
    if out["model"] is not None and not MODEL_RE.match(str(out["model"])):
        _fail(f"{where}.model", f"invalid NIC model {out['model']!r}")
    if out["tag"] is not None:
        out["tag"] = str(out["tag"])
    return out


def parse_extra_text(text: str, where: str = "extra") -> dict:
    """``extra`` written as text (the LCFG ``extra_$`` resource): XML fragments when it
    starts with ``<``, a JSON object when it starts with ``{``, else ``key=value`` pairs
    separated by commas or blanks (``on_crash=preserve, domain_type=qemu``)."""
    stripped = text.strip()
    if not stripped:
        return {}
    if stripped.startswith("<"):
        try:
            wrapper = etree.fromstring(f"<extra>{stripped}</extra>".encode())
        except etree.XMLSyntaxError as exc:
            _fail(f"{where}", f"not well-formed XML: {exc}")
        return {
            "xml": [
                etree.tostring(child, encoding="unicode", with_tail=False)
                for child in wrapper
                if isinstance(child.tag, str)
            ]
        }
    try:
        knobs = extra_knobs(stripped)
    except ValueError as exc:
        raise ValidationError(where, str(exc)) from None
    return knobs


def _validate_extra(extra: Any, where: str) -> dict:
    if isinstance(extra, str):
        extra = parse_extra_text(extra, where)
    if not isinstance(extra, dict):
        _fail(where, "must be a dict with on_poweroff, on_reboot, on_crash and/or xml")
    unknown = sorted(set(extra) - set(EXTRA_KNOBS) - {"xml", "domain_type"})
    if unknown:
        _fail(f"{where}.{unknown[0]}", "unknown key: extra accepts on_poweroff, on_reboot, on_crash, domain_type, xml")
    out: dict = {}
    if extra.get("domain_type") is not None and extra["domain_type"] not in DOMAIN_TYPES:
        _fail(
            f"{where}.domain_type",
            f"unknown domain type {extra['domain_type']!r}: use kvm or qemu "
            "on KVM/QEMU (xen and test name the other drivers)",
        )
    out["domain_type"] = extra.get("domain_type")
    for knob in EXTRA_KNOBS:
        value = extra.get(knob)
        if value is not None and value not in LIFECYCLE_ACTIONS:
            _fail(f"{where}.{knob}", f"unknown action {value!r}: use one of {', '.join(LIFECYCLE_ACTIONS)}")
        out[knob] = value
    fragments = extra.get("xml")
    if fragments is not None:
        if isinstance(fragments, str):
            fragments = [fragments]
        if not isinstance(fragments, list) or not all(isinstance(text, str) for text in fragments):
            _fail(f"{where}.xml", "must be a list of XML fragments (strings)")
        cleaned = []
        for index, text in enumerate(fragments):
            try:
                element = safe_fragment(str(text))
            except ValueError as exc:
                _fail(f"{where}.xml[{index}]", str(exc))
            if element.tag in ("name", "uuid", "memory", "currentMemory", "vcpu", "os", "metadata"):
                _fail(
                    f"{where}.xml[{index}]",
                    f"<{element.tag}> is managed by the module's own options; set those instead",
                )
            cleaned.append(etree.tostring(element, encoding="unicode"))
        fragments = cleaned
    out["xml"] = fragments
    return out


def validate_spec(params: dict, prefix: str = "") -> dict:
    """Validate user parameters; return a spec whose unset fields are None.

    ``prefix`` is put before parameter names in errors (``guests[3].``).
    """

    def p(name: str) -> str:
        return f"{prefix}{name}"

    check_guest(params, prefix)  # types, bounds, control characters, list sizes (the schema)
    spec: dict = {field: params.get(field) for field in SPEC_FIELDS}
    try:
        spec["name"] = valid_guest_name(spec["name"])
    except ValueError as exc:
        _fail(p("name"), str(exc))
    if spec["uuid"] is not None:
        try:
            spec["uuid"] = valid_uuid(spec["uuid"])
        except ValueError as exc:
            _fail(p("uuid"), str(exc))
    if spec["type"] is not None:
        try:
            spec["type"] = canonical_guest_type(spec["type"])
        except ValueError as exc:
            _fail(p("type"), str(exc))
    for field, minimum in (("memory", 16), ("maxmem", 16), ("vcpus", 1), ("maxvcpus", 1)):
        if spec[field] is not None:
            try:
                spec[field] = parse_int(spec[field], minimum=minimum, what=field)
            except ValueError as exc:
                _fail(p(field), str(exc))
    if spec["memory"] is not None and spec["maxmem"] is not None and spec["memory"] > spec["maxmem"]:
        _fail(
            p("memory"),
            f"memory {spec['memory']} MiB exceeds maxmem {spec['maxmem']} MiB; raise maxmem or lower memory",
        )
    if spec["vcpus"] is not None and spec["maxvcpus"] is not None and spec["vcpus"] > spec["maxvcpus"]:
        _fail(p("vcpus"), f"vcpus {spec['vcpus']} exceeds maxvcpus {spec['maxvcpus']}; raise maxvcpus or lower vcpus")
    if spec["cpus"] is not None:
        text = str(spec["cpus"]).strip()
        if text:
            try:
                spec["cpus"] = canonical_cpuset(text)
            except ValueError as exc:
                _fail(p("cpus"), str(exc))
        else:
            spec["cpus"] = ""
    if spec["autostart"] is not None and not isinstance(spec["autostart"], bool):
        _fail(p("autostart"), "must be a boolean")
    if spec["disks"] is not None:
        spec["disks"] = [_validate_disk(d, p(f"disks[{i}]")) for i, d in enumerate(spec["disks"])]
        _no_duplicates(spec["disks"], "path", p("disks"))
        _no_duplicates(spec["disks"], "device", p("disks"))
    if spec["vifs"] is not None:
        spec["vifs"] = [_validate_vif(v, p(f"vifs[{i}]")) for i, v in enumerate(spec["vifs"])]
        _no_duplicates(spec["vifs"], "mac", p("vifs"))
    for field in ("kernel", "ramdisk"):
        if spec[field] not in (None, ""):
            spec[field] = _abs_path(spec[field], p(field))
    for field in ("cmdline", "bootloader"):
        if spec[field] is not None:
            spec[field] = str(spec[field])
    if spec["bootloader"] not in (None, ""):
        spec["bootloader"] = (
            _abs_path(spec["bootloader"], p("bootloader")) if "/" in spec["bootloader"] else spec["bootloader"]
        )
    if spec["type"] == "hvm":
        for field in ("kernel", "ramdisk", "bootloader"):
            if spec[field]:
                _fail(
                    p(field),
                    f"{field} is for pv/pvh guests; an hvm guest boots from its disks (remove it or use type pv)",
                )
    if spec["kernel"] and spec["bootloader"]:
        _fail(p("bootloader"), "set either kernel (direct boot) or bootloader (e.g. pygrub), not both")
    if spec["ramdisk"] and spec["kernel"] == "":
        _fail(p("ramdisk"), "ramdisk needs a kernel")
    if spec["extra"] is not None:
        spec["extra"] = _validate_extra(spec["extra"], p("extra"))
    _validate_boot(spec, p)
    return spec


def _validate_boot(spec: dict, p: Any) -> None:
    """boot_order (network, disk, cdrom; each once), firmware (bios, uefi), cdrom (an image)."""
    order = spec["boot_order"]
    if order is not None:
        if isinstance(order, str):
            order = order.split()
        order = [str(item).strip().lower() for item in order]
        for index, item in enumerate(order):
            if item not in BOOT_DEVICES:
                _fail(p(f"boot_order[{index}]"), f"unknown boot device {item[:40]!r}: use network, disk or cdrom")
        if len(set(order)) != len(order):
            _fail(p("boot_order"), f"{' '.join(order)}: name each boot device once")
        spec["boot_order"] = order
    if spec["firmware"] is not None and spec["firmware"] not in FIRMWARES:
        _fail(p("firmware"), f"unknown firmware {spec['firmware']!r}: use bios or uefi")
    if spec["cdrom"] not in (None, ""):
        spec["cdrom"] = _abs_path(spec["cdrom"], p("cdrom"))
        if spec["cdrom"].endswith("/"):
            _fail(p("cdrom"), f"{spec['cdrom']!r} must name an ISO image file, not a directory")
    if spec["kernel"] or spec["bootloader"]:
        for field in ("boot_order",):
            if spec[field]:
                _fail(
                    p(field),
                    "boot_order is for guests that boot through their firmware; this guest boots "
                    "its kernel directly (kernel) or with a bootloader: remove one of them",
                )


def _no_duplicates(items: list[dict], key: str, where: str) -> None:
    seen: set = set()
    for item in items:
        value = item.get(key)
        if value is None:
            continue
        if value in seen:
            _fail(where, f"{key} {value!r} appears twice")
        seen.add(value)


SUPPORTED_DRIVERS = ("xen", "qemu", "kvm", "lxc", "test")


def check_driver(spec: dict, driver: str, prefix: str = "") -> None:
    """Driver-specific rules, checked before anything changes."""
    if driver not in SUPPORTED_DRIVERS:
        # the renderer knows Xen, QEMU/KVM, LXC and the test driver; any other driver (vbox,
        # openvz, ...) would get XML it cannot use
        _fail("uri", f"libvirt driver {driver!r} is not supported; use xen://, qemu://, lxc:// or test://")
    if _check_container_driver(spec, driver, prefix):
        return
    chosen = (spec.get("extra") or {}).get("domain_type")
    allowed = ("kvm", "qemu") if driver in ("qemu", "kvm") else (driver,)
    if chosen and chosen not in allowed:
        _fail(
            f"{prefix}extra.domain_type",
            f"domain type {chosen} does not exist on a {driver} hypervisor; "
            f"use {' or '.join(allowed)} (or leave it out)",
        )
    if driver == "xen":
        return
    if spec.get("type") == "pvh" and driver != "test":
        _fail(f"{prefix}type", f"pvh guests need a Xen hypervisor; on {driver} use type pv (virtio devices) or hvm")
    if spec.get("bootloader"):
        _fail(
            f"{prefix}bootloader",
            f"a bootloader (pygrub) needs Xen; on {driver} boot with kernel/ramdisk or from the disks",
        )


def _check_container_driver(spec: dict, driver: str, prefix: str) -> bool:
    """Containers run only on libvirt's LXC driver, and that driver runs only containers.
    True when the spec is a container's (its own rules are checked on completion)."""
    container = spec.get("type") == "container"
    if driver == "lxc" and spec.get("type") not in (None, "container"):
        _fail(
            f"{prefix}type",
            f"an LXC connection runs containers, not {spec['type']} virtual machines: set type container, "
            "or converge this guest on the hypervisor's own URI (xen:// or qemu://)",
        )
    if container and driver != "lxc":
        _fail(
            f"{prefix}type",
            f"a container needs libvirt's LXC driver, not {driver}: converge it with uri lxc:///system "
            "(the guest role sends containers to guest_container_uri)",
        )
    return driver == "lxc"


def missing_network(spec: dict, networks: dict, prefix: str = "") -> ValidationError | None:
    """The error for the first NAT or routed vif whose libvirt network is not in ``networks``
    (the host's), or None."""
    for index, vif in enumerate(spec.get("vifs") or []):
        if vif.get("nettype") in ("nat", "route") and vif.get("network") not in networks:
            return ValidationError(
                f"{prefix}vifs[{index}].network",
                f"libvirt network {vif['network']!r} does not exist on this host; create it first "
                "(lcfg.xen.xen_bridge, or the network role) or name an existing one",
            )
    return None


#: what a container cannot have: it shares the host's kernel and boots nothing
_NOT_FOR_CONTAINERS = ("kernel", "ramdisk", "bootloader", "boot_order", "cdrom")


def _check_container(out: dict, prefix: str) -> None:
    """A completed container spec: one raw root filesystem image at most, nothing to boot."""
    for field in _NOT_FOR_CONTAINERS:
        if out.get(field):
            _fail(f"{prefix}{field}", f"a container shares the host's kernel and boots nothing: remove {field}")
    if out.get("firmware") == "uefi":
        _fail(f"{prefix}firmware", "a container has no firmware: remove firmware")
    disks = out.get("disks") or []
    if len(disks) != 1:
        # without one libvirt would run it on the host's own root filesystem
        _fail(
            f"{prefix}disks",
            f"a container has exactly one disk, its root filesystem image; {len(disks)} given "
            "(mount further storage from inside the container)",
        )
    for index, disk in enumerate(disks):
        if disk["type"] != "image" or disk["format"] != "raw":
            _fail(
                f"{prefix}disks[{index}]",
                f"a container's root filesystem is a raw image file (libvirt loop-mounts it); "
                f"{disk['path']} is a {disk['format']} {disk['type']}: use format raw",
            )


def _check_boot_driver(out: dict, driver: str, prefix: str) -> None:
    """Xen boots PV and PVH guests without firmware: boot order, UEFI and a CD-ROM need hvm
    there (QEMU/KVM boots every type through its firmware)."""
    if driver not in ("xen", "test") or out["type"] == "hvm":
        return
    for field, asked in (
        ("boot_order", out["boot_order"]),
        ("firmware", out["firmware"] == "uefi"),
        ("cdrom", out["cdrom"]),
    ):
        if asked:
            _fail(
                f"{prefix}{field}",
                f"a Xen {out['type']} guest boots without firmware, so it has no boot order, UEFI or "
                "CD-ROM; use type hvm (or remove it)",
            )


def _complete_boot(out: dict, desired: dict, driver: str, prefix: str) -> None:
    """A completed spec's boot fields: firmware bios unless asked, no empty CD-ROM, and the
    devices boot_order names present."""
    out["firmware"] = out["firmware"] or "bios"
    out["cdrom"] = out["cdrom"] or None
    out["boot_order"] = out["boot_order"] or None
    if driver in ("xen", "test") and out["type"] != "hvm" and desired.get("boot_order") is None:
        out["boot_order"] = None  # a pv guest has none; an hvm guest's order is not carried over
    _check_boot_driver(out, driver, prefix)
    if out["kernel"] or out["bootloader"]:
        if desired.get("boot_order"):
            _fail(
                f"{prefix}boot_order", "the guest boots its kernel directly or with a bootloader; set kernel: '' first"
            )
        out["boot_order"] = None  # direct boot: no firmware boot order
    elif out["boot_order"] is None and (driver in ("qemu", "kvm") or out["type"] == "hvm"):
        out["boot_order"] = ["disk"]  # what render writes by default, and parse reads back
    order = out["boot_order"] or []
    if "cdrom" in order and not out["cdrom"]:
        _fail(f"{prefix}boot_order", "boot_order names cdrom but the guest has no cdrom (an ISO image)")
    if "network" in order and not out["vifs"]:
        _fail(f"{prefix}boot_order", "boot_order names network but the guest has no vif to boot from")
    taken = {CDROM_TARGET, "xvdc"} if driver == "xen" else {CDROM_TARGET}
    for index, disk in enumerate(out["disks"] if out["cdrom"] else []):
        if disk["device"] in taken:
            _fail(
                f"{prefix}disks[{index}].device",
                f"{disk['device']} is the CD-ROM's place ({CDROM_TARGET}); name the disk another device",
            )


# --------------------------------------------------------------------------- completion


def generated_uuid(name: str) -> str:
    """The UUID a new guest gets when none is given: stable, so check mode can predict it."""
    return str(uuidlib.uuid5(_UUID_NAMESPACE, name))


def generated_mac(name: str, index: int, driver: str, taken: set[str]) -> str:
    """A stable locally-derived MAC for vif ``index`` of guest ``name`` (vendor prefix per driver)."""
    prefix = _MAC_PREFIX.get(driver, "52:54:00")
    salt = 0
    while True:
        digest = hashlib.sha256(f"{name}/{index}/{salt}".encode()).digest()
        mac = prefix + ":" + ":".join(f"{b:02x}" for b in digest[:3])
        if mac not in taken:
            return mac
        salt += 1


def detect_format(header: bytes) -> str:
    """qcow2 when the file starts with the qcow magic, else raw."""
    return "qcow2" if header[:4] == b"QFI\xfb" else "raw"


def _default_device_prefix(driver: str, gtype: str) -> str:
    if driver in ("qemu", "kvm"):
        return "vd" if gtype in ("pv", "pvh") else "sd"
    return "xvd"


def _letters(index: int) -> str:
    if index < 26:
        return chr(ord("a") + index)
    return chr(ord("a") + index // 26 - 1) + chr(ord("a") + index % 26)


def _default_model(driver: str, gtype: str) -> str | None:
    if driver in ("qemu", "kvm"):
        return "virtio" if gtype in ("pv", "pvh") else "e1000"
    return None


def default_domain_type(driver: str) -> str:
    """The libvirt domain type of a new guest when the capabilities were not read."""
    return "qemu" if driver in ("qemu", "kvm") else driver


def _complete_with_ceiling(
    out: dict, desired: dict, field: str, ceiling: str, default: int, unit: str, prefix: str
) -> None:
    """Fill ``field`` and its ``ceiling`` (memory/maxmem, vcpus/maxvcpus) of a spec being
    completed: each defaults to the other, both to ``default``; a new ``field`` above the
    guest's ceiling fails, a new ceiling below the guest's ``field`` lowers it."""
    if out[field] is None and out[ceiling] is None:
        out[field] = out[ceiling] = default
    if out[field] is None:
        out[field] = out[ceiling]
    if out[ceiling] is None:
        out[ceiling] = out[field]
    elif desired.get(field) is not None and desired.get(ceiling) is None and out[field] > out[ceiling]:
        _fail(
            f"{prefix}{ceiling}",
            f"{field} {out[field]}{unit} exceeds the guest's {ceiling} {out[ceiling]}{unit}; "
            f"set {ceiling} too (a {ceiling} change applies at the next restart)",
        )
    if desired.get(ceiling) is not None and desired.get(field) is None and out[field] > out[ceiling]:
        out[field] = out[ceiling]


def complete_spec(
    desired: dict,
    current: dict | None,
    driver: str,
    prefix: str = "",
    reserved: tuple | list = (),
    domain_type: str | None = None,
) -> dict:
    """Desired spec with every field filled: from ``current`` where the user left it out,
    else the defaults of a new guest. Lists given are replacive; inside them the values the
    user left out are adopted from the matching current item (disk: same path; vif: same MAC,
    else the same position), so generated MACs and device names are kept.
    """
    cur = current or {}
    out: dict = {}
    for field in SPEC_FIELDS:
        value = desired.get(field)
        out[field] = copy.deepcopy(value if value is not None else cur.get(field))
    out["uuid"] = out["uuid"] or generated_uuid(out["name"])
    out["type"] = out["type"] or ("container" if driver == "lxc" else "pv")
    _complete_with_ceiling(out, desired, "memory", "maxmem", DEFAULT_MEMORY, " MiB", prefix)
    _complete_with_ceiling(out, desired, "vcpus", "maxvcpus", 1, "", prefix)
    out["cpus"] = out["cpus"] or ""
    out["autostart"] = bool(out["autostart"])
    for field in ("kernel", "ramdisk", "cmdline", "bootloader"):
        out[field] = out[field] or None
    if out["type"] == "hvm":
        for field in ("kernel", "bootloader"):
            if out[field]:
                _fail(
                    f"{prefix}{field}",
                    f"the guest has {field} {out[field]!r}, which an hvm guest cannot "
                    f"use; set {field}: '' to remove it",
                )
    out["extra"] = _complete_extra(desired.get("extra"), cur.get("extra"), domain_type or default_domain_type(driver))
    # a new type brings its own default buses and NIC models, unless the user names them
    same_type = not cur or cur.get("type") == out["type"]
    out["disks"] = _complete_disks(out, desired, cur, driver, same_type, reserved, prefix)
    out["vifs"] = _complete_vifs(out, desired, cur, driver, same_type, prefix)
    if out["type"] == "container":
        out["firmware"] = out["firmware"] or "bios"
        _check_container(out, prefix)
        return out
    _complete_boot(out, desired, driver, prefix)
    return out


def _complete_disks(
    out: dict, desired: dict, cur: dict, driver: str, same_type: bool, reserved: tuple | list, prefix: str
) -> list[dict]:
    """The disks of a spec being completed: values left out adopted from the current disk of
    the same path; devices not named get the next free name of the guest's bus."""
    gtype = out["type"]
    cur_disks = {d["path"]: d for d in cur.get("disks") or []}
    disks = []
    adopted = ("format", "device", "tag", "name") if same_type else ("format", "tag", "name")
    for disk in out["disks"] or []:
        match = cur_disks.get(disk["path"], {})
        full = dict(disk)
        if not same_type and desired.get("disks") is None:
            full["device"] = None
        for key in adopted:
            if full.get(key) is None:
                full[key] = match.get(key)
        full["type"] = full.get("type") or match.get("type") or "image"
        full["format"] = full.get("format") or "raw"
        disks.append(full)
    used = {d["device"] for d in disks if d["device"]} | set(reserved)
    if out.get("cdrom"):  # the CD-ROM's place (and its Xen alias)
        used |= {CDROM_TARGET, "xvdc"} if driver == "xen" else {CDROM_TARGET}
    dev_prefix = _default_device_prefix(driver, gtype)
    if cur.get("disks") and cur.get("type") == gtype:
        dev_prefix = (
            DEVICE_RE.match(cur["disks"][0]["device"]).group(1)
            if DEVICE_RE.match(cur["disks"][0]["device"] or "")
            else dev_prefix
        )
    letter = 0
    for disk in disks:
        if not disk["device"]:
            while dev_prefix + _letters(letter) in used:
                letter += 1
            if letter >= MAX_DISKS:
                _fail(
                    f"{prefix}disks",
                    f"no free {dev_prefix}* device name is left for disk {disk['path']}; "
                    "name the devices, or use fewer disks",
                )
            disk["device"] = dev_prefix + _letters(letter)
            used.add(disk["device"])
    return disks


def _complete_vifs(out: dict, desired: dict, cur: dict, driver: str, same_type: bool, prefix: str) -> list[dict]:
    """The vifs of a spec being completed: values left out adopted from the current vif of
    the same MAC, else of the same position; a vif without MAC gets a stable generated one."""
    gtype = out["type"]
    cur_vifs = list(cur.get("vifs") or [])
    by_mac = {v["mac"]: v for v in cur_vifs if v.get("mac")}
    taken = {v["mac"] for v in out["vifs"] or [] if v.get("mac")}
    vifs = []
    for index, vif in enumerate(out["vifs"] or []):
        full = dict(vif)
        match = by_mac.get(full["mac"]) if full.get("mac") else None
        if match is None and not full.get("mac") and index < len(cur_vifs):
            candidate = cur_vifs[index]
            if candidate.get("mac") and candidate["mac"] not in taken:
                match = candidate
        match = match or {}
        if not same_type and desired.get("vifs") is None:
            full["model"] = None
        for key in ("mac", "model", "tag", "ip", "script") if same_type else ("mac", "tag", "ip", "script"):
            if full.get(key) is None:
                full[key] = match.get(key)
        if full.get("nettype") == "bridge" and full.get("bridge") is None:
            if match.get("nettype") == "bridge" and match.get("bridge"):
                full["bridge"] = match["bridge"]
            else:
                _fail(f"{prefix}vifs[{index}].bridge", "a bridge vif needs 'bridge' (the host bridge to join)")
        if full.get("model") is None:
            full["model"] = _default_model(driver, gtype)
        if not full.get("mac"):
            full["mac"] = generated_mac(out["name"], index, driver, taken)
        taken.add(full["mac"])
        vifs.append({key: full.get(key) for key in VIF_FIELDS})
    return vifs


def _complete_extra(desired: dict | None, current: dict | None, domain_type: str | None) -> dict:
    cur = current or {}
    des = desired or {}
    out = {knob: des.get(knob) or cur.get(knob) or LIFECYCLE_DEFAULTS[knob] for knob in EXTRA_KNOBS}
    out["domain_type"] = des.get("domain_type") or cur.get("domain_type") or domain_type
    out["xml"] = des.get("xml") if des.get("xml") is not None else []
    return out
