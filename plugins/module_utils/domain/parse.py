# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Domain XML -> guest spec, and comparison of specs. Pure: no Ansible, no libvirt.

- ``parse_domain(xml)``: domain XML -> normalised spec (``autostart`` is not in XML; None).
- ``reserved_targets(xml)``: target devices of the CD-ROMs, floppies and LUNs (not modelled).
- ``carries_marker(xml)``: whether lcfg.xen defined the domain (its metadata element).
- ``present_fragments(xml, fragments)`` / ``fragment_present(root, fragment)``: which
  ``extra.xml`` fragments a definition holds already (libvirt may have added defaults).
- ``diff_specs(desired, current)``: list of fields whose desired value differs.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.lcfg.xen.plugins.module_utils.common.imports import optional_import
from ansible_collections.lcfg.xen.plugins.module_utils.common.validate import GUEST_TYPES
from ansible_collections.lcfg.xen.plugins.module_utils.domain.desired import (
    CDROM_TARGET,
    DEFAULT_NETWORKS,
    EXTRA_KNOBS,
    LIFECYCLE_DEFAULTS,
    METADATA_NS,
    SPEC_FIELDS,
    VIF_FIELDS,
    canonical_cpuset,
)

etree = optional_import("lxml.etree")[0]

__all__ = [
    "parse_domain",
    "parse_disk_element",
    "parse_vif_element",
    "reserved_targets",
    "carries_marker",
    "present_fragments",
    "fragment_present",
    "subset",
    "diff_specs",
]


# --------------------------------------------------------------------------- parsing

_UNIT_BYTES = {
    "b": 1,
    "bytes": 1,
    "kb": 1000,
    "k": 1024,
    "kib": 1024,
    "mb": 1000**2,
    "m": 1024**2,
    "mib": 1024**2,
    "gb": 1000**3,
    "g": 1024**3,
    "gib": 1024**3,
    "tb": 1000**4,
    "t": 1024**4,
    "tib": 1024**4,
}


def _kib_to_mib(element: etree._Element | None) -> int | None:
    """A libvirt memory element (``unit`` attribute, default KiB) in whole MiB."""
    if element is None or not (element.text or "").strip():
        return None
    value = int(element.text.strip())
    factor = _UNIT_BYTES.get((element.get("unit") or "KiB").lower(), 1024)
    return int(round(value * factor / 1024**2))


def parse_disk_element(element: etree._Element) -> dict | None:
    source = element.find("source")
    target = element.find("target")
    if source is None or target is None:
        return None
    path = source.get("file") or source.get("dev")
    if not path:
        return None
    driver = element.find("driver")
    fmt = (driver.get("type") if driver is not None else None) or "raw"
    phy = element.get("type") == "block"
    return {
        "path": path,
        "type": "phy" if phy else "image",
        "format": fmt,
        "device": target.get("dev"),
        "tag": None,
        "name": None,
    }


def parse_vif_element(element: etree._Element, meta: dict) -> dict:
    mac_el = element.find("mac")
    mac = mac_el.get("address").lower() if mac_el is not None and mac_el.get("address") else None
    info = meta.get(mac, {})
    source = element.find("source")
    kind = element.get("type")
    vif: dict = {key: None for key in VIF_FIELDS}
    vif["mac"] = mac
    if kind == "network" and source is not None:
        vif["network"] = source.get("network")
        nettype = info.get("nettype")
        if nettype not in ("nat", "route"):
            nettype = "route" if vif["network"] == DEFAULT_NETWORKS["route"] else "nat"
        vif["nettype"] = nettype
    else:
        vif["nettype"] = "bridge"
        vif["bridge"] = source.get("bridge") if source is not None else None
    script = element.find("script")
    vif["script"] = script.get("path") if script is not None else info.get("script")
    model = element.find("model")
    vif["model"] = model.get("type") if model is not None else None
    ip_el = element.find("ip")
    vif["ip"] = ip_el.get("address") if ip_el is not None else info.get("ip")
    vif["tag"] = info.get("tag")
    return vif


def _container_vcpus(root: etree._Element, maxvcpus: int) -> int:
    """A container's vcpus: its CPU quota in whole CPUs (no quota: all of its maxvcpus)."""
    try:
        quota = int(root.findtext("cputune/quota") or 0)
        period = int(root.findtext("cputune/period") or 100000)
    except ValueError:
        return maxvcpus
    if quota <= 0 or period <= 0:
        return maxvcpus
    return max(1, round(quota / period))


def parse_container_vcpus(xml: str) -> int | None:
    """A container's CPU quota in whole CPUs from its (live) definition; None without a quota."""
    root = etree.fromstring(xml.encode())
    if not (root.findtext("cputune/quota") or "").strip():
        return None
    vcpu = root.find("vcpu")
    return _container_vcpus(root, int(vcpu.text.strip()) if vcpu is not None and vcpu.text else 1)


def _container_disks(root: etree._Element, disk_meta: dict) -> list[dict]:
    """A container's root filesystem image (a loop-mounted file at /) as its one disk; the
    device name it had in the spec is kept in the metadata."""
    devs = list(disk_meta)
    disks = []
    for element in root.findall("devices/filesystem"):
        source, target = element.find("source"), element.find("target")
        if element.get("type") != "file" or source is None or target is None or target.get("dir") != "/":
            continue
        driver = element.find("driver")
        device = devs[0] if devs else "xvda"
        info = disk_meta.get(device, {})
        disks.append(
            {
                "path": source.get("file"),
                "type": "image",
                "format": (driver.get("format") if driver is not None else None) or "raw",
                "device": device,
                "tag": info.get("tag"),
                "name": info.get("name"),
            }
        )
    return disks


def network_gateways(xml: str) -> dict[int, tuple[int, str]]:
    """A libvirt network's ``{4 or 6: (prefix, address)}``: the first address of each family,
    which its guests use as their gateway."""
    families: dict[int, tuple[int, str]] = {}
    for ip_el in etree.fromstring(xml.encode()).findall("ip"):
        address = ip_el.get("address") or ""
        family = 6 if ":" in address or ip_el.get("family") == "ipv6" else 4
        prefix = ip_el.get("prefix")
        if not prefix and ip_el.get("netmask"):
            prefix = str(ipaddress.ip_network(f"0.0.0.0/{ip_el.get('netmask')}").prefixlen)
        if address and prefix and family not in families:
            families[family] = (int(prefix), address)
    return families


_BOOT_OF_DEV = {"hd": "disk", "network": "network", "cdrom": "cdrom"}


def _parse_boot_order(root: etree._Element) -> list[str] | None:
    """``<os><boot dev>`` (or libvirt's per-device ``<boot order>``) in the spec's words."""
    order = [_BOOT_OF_DEV[b.get("dev")] for b in root.findall("os/boot") if b.get("dev") in _BOOT_OF_DEV]
    if not order:
        ranked = []
        for element in root.findall("devices/*[boot]"):
            rank = element.find("boot").get("order", "")
            kind = "network" if element.tag == "interface" else element.get("device", "disk")
            if rank.isdigit() and kind in ("network", "disk", "cdrom"):
                ranked.append((int(rank), kind))
        order = [kind for _rank, kind in sorted(ranked)]
    deduplicated = list(dict.fromkeys(order))
    return deduplicated or None


def _parse_firmware(root: etree._Element) -> str:
    """uefi for ``<os firmware='efi'>`` or a pflash loader (OVMF), else bios."""
    loader = root.find("os/loader")
    efi = root.find("os") is not None and root.find("os").get("firmware") == "efi"
    return "uefi" if efi or (loader is not None and loader.get("type") == "pflash") else "bios"


def _parse_cdrom(root: etree._Element) -> str | None:
    """The image of the CD-ROM at lcfg.xen's place (``CDROM_TARGET``), if any."""
    for element in root.findall("devices/disk[@device='cdrom']"):
        target = element.find("target")
        source = element.find("source")
        if target is not None and target.get("dev") == CDROM_TARGET and source is not None:
            return source.get("file") or None
    return None


def parse_domain(xml: str) -> dict:
    """Normalised spec of a domain definition (libvirt's own XMLDesc output)."""
    root = etree.fromstring(xml.encode())
    meta_el = root.find(f"metadata/{{{METADATA_NS}}}guest")
    disk_meta: dict = {}
    vif_meta: dict = {}
    if meta_el is not None:
        for item in meta_el.findall(f"{{{METADATA_NS}}}disk"):
            disk_meta[item.get("dev")] = dict(item.attrib)
        for item in meta_el.findall(f"{{{METADATA_NS}}}vif"):
            vif_meta[(item.get("mac") or "").lower()] = dict(item.attrib)
    os_type_el = root.find("os/type")
    os_type = (os_type_el.text or "").strip() if os_type_el is not None else "hvm"
    if os_type in ("xen", "linux"):
        gtype = "pv"
    elif os_type == "xenpvh":
        gtype = "pvh"
    else:
        gtype = "hvm"
    if meta_el is not None and meta_el.get("type") in GUEST_TYPES and root.get("type") != "xen":
        gtype = meta_el.get("type")  # on KVM and the test driver the XML does not show it
    container = root.get("type") == "lxc"
    if container:
        gtype = "container"
    maxmem = _kib_to_mib(root.find("memory"))
    memory = _kib_to_mib(root.find("currentMemory"))
    if container and root.find("memtune/hard_limit") is not None:
        memory = _kib_to_mib(root.find("memtune/hard_limit"))  # the limit libvirt sets at start
    vcpu = root.find("vcpu")
    maxvcpus = int(vcpu.text.strip()) if vcpu is not None and vcpu.text else 1
    vcpus = int(vcpu.get("current")) if vcpu is not None and vcpu.get("current") else maxvcpus
    if container:
        vcpus = _container_vcpus(root, maxvcpus)
    cpus = ""
    pins = root.findall("cputune/vcpupin")
    if pins and len({p.get("cpuset") for p in pins}) == 1 and len(pins) >= maxvcpus:
        cpus = canonical_cpuset(pins[0].get("cpuset"))
    elif vcpu is not None and vcpu.get("cpuset"):
        cpus = canonical_cpuset(vcpu.get("cpuset"))
    disks = []
    for element in root.findall("devices/disk"):
        if element.get("device", "disk") != "disk":
            continue
        disk = parse_disk_element(element)
        if disk is None:
            continue
        info = disk_meta.get(disk["device"], {})
        disk["tag"] = info.get("tag")
        disk["name"] = info.get("name")
        disks.append(disk)
    if container:
        disks = _container_disks(root, disk_meta)
    vifs = [parse_vif_element(element, vif_meta) for element in root.findall("devices/interface")]

    def text(path: str) -> str | None:
        element = root.find(path)
        return element.text if element is not None and element.text else None

    bootloader = text("bootloader")
    cmdline = text("os/cmdline") or (text("bootloader_args") if bootloader else None)
    extra = {knob: text(knob) or LIFECYCLE_DEFAULTS[knob] for knob in EXTRA_KNOBS}
    extra["domain_type"] = root.get("type")
    extra["xml"] = []
    return {
        "name": text("name"),
        "uuid": (text("uuid") or "").lower() or None,
        "type": gtype,
        "memory": memory if memory is not None else maxmem,
        "maxmem": maxmem,
        "vcpus": vcpus,
        "maxvcpus": maxvcpus,
        "cpus": cpus,
        "autostart": None,
        "disks": disks,
        "vifs": vifs,
        "kernel": text("os/kernel"),
        "ramdisk": text("os/initrd"),
        "cmdline": cmdline,
        "bootloader": bootloader,
        # a guest that boots its kernel directly (or with a bootloader) has no firmware boot
        # order, whatever <boot dev> libvirt adds to its live definition
        "boot_order": None if text("os/kernel") or bootloader or container else _parse_boot_order(root),
        "firmware": _parse_firmware(root),
        "cdrom": _parse_cdrom(root),
        "extra": extra,
    }


def reserved_targets(xml: str) -> list[str]:
    """Target devices of CD-ROM/floppy/LUN devices (not modelled, but their names are taken)."""
    root = etree.fromstring(xml.encode())
    return [
        d.find("target").get("dev")
        for d in root.findall("devices/disk")
        if d.get("device", "disk") != "disk" and d.find("target") is not None
    ]


def carries_marker(xml: str) -> bool:
    """Whether a domain definition carries the metadata element lcfg.xen writes on every define."""
    return etree.fromstring(xml.encode()).find(f"metadata/{{{METADATA_NS}}}guest") is not None


def present_fragments(xml: str, fragments: list[str]) -> list[str]:
    """The subset of ``fragments`` already merged into ``xml``."""
    root = etree.fromstring(xml.encode())
    return [f for f in fragments if fragment_present(root, etree.fromstring(f.encode()))]


# --------------------------------------------------------------------------- fragments


def subset(want: etree._Element, have: etree._Element) -> bool:
    """True when every attribute, text and child of ``want`` is found in ``have``."""
    if want.tag != have.tag:
        return False
    for key, value in want.attrib.items():
        if have.get(key) != value:
            return False
    if (want.text or "").strip() and (want.text or "").strip() != (have.text or "").strip():
        return False
    pool = list(have)
    for child in want:
        if not isinstance(child.tag, str):
            continue
        for candidate in pool:
            if subset(child, candidate):
                pool.remove(candidate)
                break
        else:
            return False
    return True


def fragment_present(root: etree._Element, fragment: etree._Element) -> bool:
    """Is the fragment already part of ``root`` (libvirt may have added defaults)?"""
    if fragment.tag == "devices":
        devices = root.find("devices")
        if devices is None:
            return len(fragment) == 0
        return all(
            any(subset(child, existing) for existing in devices) for child in fragment if isinstance(child.tag, str)
        )
    return any(subset(fragment, existing) for existing in root.findall(fragment.tag))


# --------------------------------------------------------------------------- comparison


def diff_specs(desired: dict, current: dict) -> list[str]:
    """Fields of the complete ``desired`` spec that differ from ``current`` (both normalised)."""
    changed = []
    for field in SPEC_FIELDS:
        if field in ("name",):
            continue
        want = desired.get(field)
        have = current.get(field)
        if field == "extra":
            want_knobs = {k: want.get(k) for k in EXTRA_KNOBS + ("domain_type",) if want.get(k) is not None}
            have_knobs = {k: (have or {}).get(k) for k in want_knobs}
            if want_knobs != have_knobs or sorted(want.get("xml") or []) != sorted((have or {}).get("xml") or []):
                changed.append(field)
            continue
        if want != have:
            changed.append(field)
    return changed
