# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Guest spec -> libvirt domain XML, per driver. Pure: no Ansible, no libvirt.

- ``render_domain(spec, caps)``: a complete spec (``desired.complete_spec``) -> domain XML
  string for ``caps["driver"]``.
- ``update_domain_xml(xml, spec, changed, caps)``: modify an existing definition in place,
  only for the fields listed in ``changed`` (unknown devices stay as they are).
- ``merge_fragment(root, fragment)``: merge one ``extra.xml`` fragment into a definition.
"""

from __future__ import annotations

import copy

from ansible_collections.lcfg.xen.plugins.module_utils.common.imports import optional_import
from ansible_collections.lcfg.xen.plugins.module_utils.domain.desired import CDROM_TARGET, EXTRA_KNOBS, METADATA_NS
from ansible_collections.lcfg.xen.plugins.module_utils.domain.parse import (
    fragment_present,
    parse_disk_element,
    parse_vif_element,
    subset,
)
from ansible_collections.lcfg.xen.plugins.module_utils.spec.schema import DEVICE_RE

etree = optional_import("lxml.etree")[0]

__all__ = ["render_domain", "update_domain_xml", "merge_fragment", "console_log_path", "console_log_missing"]

_BUS_OF_PREFIX = {"xvd": "xen", "vd": "virtio", "sd": "sata", "hd": "ide"}


# --------------------------------------------------------------------------- rendering


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, tag, {k: str(v) for k, v in attrs.items() if v is not None})
    if text is not None:
        element.text = str(text)
    return element


def _os_type(driver: str, gtype: str) -> tuple[str, str | None]:
    """(os type text, machine attribute) for the driver and guest type."""
    if driver == "xen":
        return {"pv": ("xen", None), "pvh": ("xenpvh", None), "hvm": ("hvm", None)}[gtype]
    if driver == "test":
        return ("hvm", None) if gtype == "hvm" else ("xen", None)
    return ("hvm", None)


def _domain_type(spec: dict, caps: dict) -> str:
    chosen = (spec.get("extra") or {}).get("domain_type")
    if chosen:
        return chosen
    driver = caps["driver"]
    if driver in ("qemu", "kvm"):
        return caps.get("domain_type") or "qemu"
    return driver


def _sub_direct_boot(os_el: etree._Element, spec: dict) -> None:
    """Add the direct kernel boot elements (kernel, initrd, cmdline) the spec asks for."""
    _sub(os_el, "kernel", spec["kernel"])
    if spec.get("ramdisk"):
        _sub(os_el, "initrd", spec["ramdisk"])
    if spec.get("cmdline"):
        _sub(os_el, "cmdline", spec["cmdline"])


def _build_os(root: etree._Element, spec: dict, caps: dict) -> etree._Element:
    driver = caps["driver"]
    os_el = etree.Element("os")
    text, machine = _os_type(driver, spec["type"])
    _sub(os_el, "type", text, arch=caps.get("arch"), machine=machine)
    if driver == "xen" and spec["type"] == "hvm" and caps.get("loader"):
        _sub(os_el, "loader", caps["loader"])
    if spec.get("kernel"):
        _sub_direct_boot(os_el, spec)
    elif text == "hvm":
        _sub_boot_order(os_el, spec)
    _set_firmware(os_el, spec, caps)
    return os_el


# --------------------------------------------------------------------------- boot options

_DEV_OF_BOOT = {"disk": "hd", "network": "network", "cdrom": "cdrom"}


def _sub_boot_order(os_el: etree._Element, spec: dict) -> None:
    """``<boot dev>`` per entry of boot_order (default: the disks), which QEMU's firmware and
    libxl's HVM boot order both take."""
    for item in spec.get("boot_order") or ["disk"]:
        _sub(os_el, "boot", dev=_DEV_OF_BOOT[item])


def _set_firmware(os_el: etree._Element, spec: dict, caps: dict) -> None:
    """UEFI as libvirt's firmware autoselection (``<os firmware='efi'>``): QEMU picks Debian's
    OVMF from its firmware descriptors and keeps the guest's variables under
    /var/lib/libvirt/qemu/nvram; libxl loads its OVMF. BIOS: no firmware attribute, no pflash
    loader or nvram (Xen HVM keeps its hvmloader)."""
    hvm = _os_type(caps["driver"], spec["type"])[0] == "hvm"
    if spec.get("firmware") == "uefi" and hvm:
        os_el.set("firmware", "efi")
        for loader in os_el.findall("loader"):
            if loader.get("type") != "pflash":
                os_el.remove(loader)
        return
    if "firmware" in os_el.attrib:
        del os_el.attrib["firmware"]
    for tag in ("loader", "nvram", "firmware"):
        for old in os_el.findall(tag):
            if tag != "loader" or old.get("type") == "pflash":
                os_el.remove(old)
    if caps["driver"] == "xen" and hvm and caps.get("loader") and os_el.find("loader") is None:
        os_el.find("type").addnext(etree.Element("loader"))
        os_el.find("loader").text = caps["loader"]


def _build_cdrom(path: str) -> etree._Element:
    """A read-only IDE CD-ROM at ``CDROM_TARGET`` (QEMU's pc machine and Xen HVM both have IDE)."""
    element = etree.Element("disk", type="file", device="cdrom")
    _sub(element, "driver", name="qemu", type="raw")
    _sub(element, "source", file=path)
    _sub(element, "target", dev=CDROM_TARGET, bus="ide")
    _sub(element, "readonly")
    return element


def _update_boot_options(root: etree._Element, spec: dict, caps: dict) -> None:
    """boot_order and firmware of an existing definition (per-device boot orders give way)."""
    os_el = _find_or_add(root, "os", ("vcpu",))
    if not spec.get("kernel") and _os_type(caps["driver"], spec["type"])[0] == "hvm":
        for boot in os_el.findall("boot"):
            os_el.remove(boot)
        for boot in root.findall("devices/*/boot"):
            boot.getparent().remove(boot)
        _sub_boot_order(os_el, spec)
    _set_firmware(os_el, spec, caps)


def _update_cdrom(root: etree._Element, spec: dict) -> None:
    devices = _find_or_add(root, "devices", ("on_crash",))
    for element in devices.findall("disk[@device='cdrom']"):
        target = element.find("target")
        if target is not None and target.get("dev") == CDROM_TARGET:
            devices.remove(element)
    if spec.get("cdrom"):
        disks = devices.findall("disk")
        index = devices.index(disks[-1]) + 1 if disks else _device_insert_index(devices)
        devices.insert(index, _build_cdrom(spec["cdrom"]))


def _build_disk(disk: dict, caps: dict) -> etree._Element:
    phy = disk["type"] == "phy"
    element = etree.Element("disk", type="block" if phy else "file", device="disk")
    if caps["driver"] == "xen" and phy:
        _sub(element, "driver", name="phy")
    else:
        _sub(element, "driver", name="qemu", type=disk["format"] or "raw")
    _sub(element, "source", **({"dev": disk["path"]} if phy else {"file": disk["path"]}))
    prefix = DEVICE_RE.match(disk["device"]).group(1)  # type: ignore[union-attr]
    _sub(element, "target", dev=disk["device"], bus=_BUS_OF_PREFIX[prefix])
    return element


def _build_vif(vif: dict, caps: dict) -> etree._Element:
    if vif["nettype"] == "bridge":
        element = etree.Element("interface", type="bridge")
        _sub(element, "mac", address=vif["mac"])
        _sub(element, "source", bridge=vif["bridge"])
    else:
        element = etree.Element("interface", type="network")
        _sub(element, "mac", address=vif["mac"])
        _sub(element, "source", network=vif["network"])
    if caps["driver"] == "xen":
        if vif.get("ip"):
            _sub(element, "ip", address=vif["ip"])
        if vif.get("script"):
            _sub(element, "script", path=vif["script"])
    if vif.get("model"):
        _sub(element, "model", type=vif["model"])
    return element


def _build_metadata(spec: dict) -> etree._Element:
    guest = etree.Element(f"{{{METADATA_NS}}}guest", nsmap={"lcfg": METADATA_NS})
    guest.set("type", spec["type"])
    for disk in spec.get("disks") or []:
        attrs = {"dev": disk["device"]}
        attrs.update({k: disk[k] for k in ("tag", "name") if disk.get(k) is not None})
        etree.SubElement(guest, f"{{{METADATA_NS}}}disk", attrs)
    for vif in spec.get("vifs") or []:
        attrs = {"mac": vif["mac"], "nettype": vif["nettype"]}
        attrs.update({k: vif[k] for k in ("tag", "ip", "script") if vif.get(k) is not None})
        etree.SubElement(guest, f"{{{METADATA_NS}}}vif", attrs)
    return guest


def _set_metadata(root: etree._Element, spec: dict) -> None:
    metadata = root.find("metadata")
    if metadata is None:
        metadata = etree.Element("metadata")
        anchor = root.find("uuid")
        anchor = anchor if anchor is not None else root.find("name")
        anchor.addnext(metadata)
    owner = None
    for old in metadata.findall(f"{{{METADATA_NS}}}guest"):
        owner = old.get("owner") or owner
        metadata.remove(old)
    guest = _build_metadata(spec)
    if owner:  # the site that owns the guest (xen_guests owner, see domain/prune.py) stays recorded
        guest.set("owner", owner)
    metadata.append(guest)


def _domain_head(spec: dict, domain_type: str) -> etree._Element:
    """A new ``<domain>`` with name, UUID, the lcfg.xen metadata and the memory sizes."""
    root = etree.Element("domain", type=domain_type)
    _sub(root, "name", spec["name"])
    _sub(root, "uuid", spec["uuid"])
    _set_metadata(root, spec)
    _sub(root, "memory", spec["maxmem"] * 1024, unit="KiB")
    _sub(root, "currentMemory", spec["memory"] * 1024, unit="KiB")
    return root


def _sub_clock_and_lifecycle(root: etree._Element, spec: dict) -> dict:
    """``<clock>`` and the ``on_*`` actions; returns the spec's ``extra``."""
    _sub(root, "clock", offset="utc")
    extra = spec.get("extra") or {}
    for knob in EXTRA_KNOBS:
        _sub(root, knob, extra.get(knob) or ("restart" if knob == "on_reboot" else "destroy"))
    return extra


def render_domain(spec: dict, caps: dict) -> str:
    """Render a complete spec (see ``complete_spec``) for ``caps``.

    ``caps``: ``driver`` (xen, qemu, kvm, test), ``domain_type`` (kvm or qemu for QEMU),
    optional ``arch`` and ``loader`` (Xen hvmloader path), ``emulator``.
    """
    if spec["type"] == "container":
        return _render_container(spec, caps)
    driver = caps["driver"]
    root = _domain_head(spec, _domain_type(spec, caps))
    vcpu = _sub(root, "vcpu", spec["maxvcpus"], placement="static")
    if spec["vcpus"] != spec["maxvcpus"]:
        vcpu.set("current", str(spec["vcpus"]))
    if spec.get("cpus"):
        vcpu.set("cpuset", spec["cpus"])
    if spec.get("bootloader"):
        _sub(root, "bootloader", spec["bootloader"])
        if spec.get("cmdline"):
            _sub(root, "bootloader_args", spec["cmdline"])
    root.append(_build_os(root, spec, caps))
    if spec["type"] in ("hvm",) or driver in ("qemu", "kvm"):
        features = _sub(root, "features")
        _sub(features, "acpi")
        _sub(features, "apic")
    extra = _sub_clock_and_lifecycle(root, spec)
    devices = _sub(root, "devices")
    if caps.get("emulator"):
        _sub(devices, "emulator", caps["emulator"])
    for disk in spec.get("disks") or []:
        devices.append(_build_disk(disk, caps))
    if spec.get("cdrom"):
        devices.append(_build_cdrom(spec["cdrom"]))
    for vif in spec.get("vifs") or []:
        devices.append(_build_vif(vif, caps))
    _sub(devices, "console", type="pty")
    if driver in ("qemu", "kvm"):
        _sub(devices, "memballoon", model="virtio")
    for fragment in extra.get("xml") or []:
        merge_fragment(root, etree.fromstring(fragment.encode()))
    _ensure_agent_channel(devices, driver)  # after the fragments: one of them may bring it
    _ensure_console_log(root, spec["name"], driver)  # after the fragments: it may take their port-0 pty serial
    return etree.tostring(root, encoding="unicode", pretty_print=True)


# --------------------------------------------------------------------------- containers (LXC)

#: the CFS period a container's CPU quota is counted in (libvirt's default, in µs)
CPU_PERIOD_US = 100000
#: the program a container runs first, from its own root filesystem (as lxc-start does)
CONTAINER_INIT = "/sbin/init"
_DEFAULT_PREFIX = {4: 24, 6: 64}


def container_quota(vcpus: int) -> int:
    """The CFS quota (µs per ``CPU_PERIOD_US``) that gives a container ``vcpus`` CPUs' worth of time."""
    return vcpus * CPU_PERIOD_US


def _container_ip(element: etree._Element, vif: dict, caps: dict) -> None:
    """The vif's address configured inside the container (libvirt sets it before init runs):
    on a NAT or routed network with that network's prefix and its address as the gateway, on
    a bridge with /24 (IPv4) or /64 (IPv6) and no gateway."""
    if not vif.get("ip"):
        return
    family = 6 if ":" in vif["ip"] else 4
    network = (caps.get("networks") or {}).get(vif.get("network") or "", {}).get(family)
    prefix, gateway = network if network else (_DEFAULT_PREFIX[family], None)
    _sub(element, "ip", address=vif["ip"], prefix=prefix)
    if gateway and vif["nettype"] != "bridge":
        _sub(element, "route", address="::" if family == 6 else "0.0.0.0", prefix=0, gateway=gateway)


def _render_container(spec: dict, caps: dict) -> str:
    """A container on libvirt's LXC driver: the memory limit (memtune hard_limit, which libvirt
    sets at every start, autostart included), a CPU quota of ``vcpus`` CPUs, the root filesystem
    image loop-mounted at /, and the vifs with their addresses set inside."""
    root = _domain_head(spec, "lxc")
    memtune = _sub(root, "memtune")
    _sub(memtune, "hard_limit", spec["memory"] * 1024, unit="KiB")
    vcpu = _sub(root, "vcpu", spec["maxvcpus"], placement="static")
    if spec.get("cpus"):
        vcpu.set("cpuset", spec["cpus"])
    cputune = _sub(root, "cputune")
    _sub(cputune, "period", CPU_PERIOD_US)
    _sub(cputune, "quota", container_quota(spec["vcpus"]))
    os_el = _sub(root, "os")
    _sub(os_el, "type", "exe", arch=caps.get("arch"))
    _sub(os_el, "init", CONTAINER_INIT)
    # its own network namespace even without a vif (libvirt otherwise shares the host's)
    _sub(_sub(root, "features"), "privnet")
    extra = _sub_clock_and_lifecycle(root, spec)
    devices = _sub(root, "devices")
    for disk in spec.get("disks") or []:
        filesystem = _sub(devices, "filesystem", type="file", accessmode="passthrough")
        _sub(filesystem, "driver", type="loop", format="raw")
        _sub(filesystem, "source", file=disk["path"])
        _sub(filesystem, "target", dir="/")
    for vif in spec.get("vifs") or []:
        element = _build_vif(vif, caps)
        _container_ip(element, vif, caps)
        devices.append(element)
    _sub(devices, "console", type="pty")
    for fragment in extra.get("xml") or []:
        merge_fragment(root, etree.fromstring(fragment.encode()))
    return etree.tostring(root, encoding="unicode", pretty_print=True)


def _ensure_agent_channel(devices: etree._Element, driver: str) -> None:
    """QEMU/KVM: the guest agent's port (libvirt places the socket), unless the definition has
    a channel of that name already (two would clash), so the VCPUs a guest running
    qemu-guest-agent has online are read from the guest, not assumed."""
    if driver not in ("qemu", "kvm"):
        return
    if any(target.get("name") == GUEST_AGENT_CHANNEL for target in devices.findall("channel/target")):
        return
    channel = etree.Element("channel", type="unix")
    _sub(channel, "target", type="virtio", name=GUEST_AGENT_CHANNEL)
    balloon = devices.find("memballoon")
    if balloon is not None:
        balloon.addprevious(channel)
    else:
        devices.append(channel)


# --------------------------------------------------------------------------- in-place update


def _find_or_add(root: etree._Element, tag: str, after: tuple[str, ...]) -> etree._Element:
    element = root.find(tag)
    if element is not None:
        return element
    element = etree.Element(tag)
    for name in after:
        anchor = root.find(name)
        if anchor is not None:
            anchor.addnext(element)
            return element
    root.insert(0, element)
    return element


def update_domain_xml(xml: str, spec: dict, changed: list[str], caps: dict) -> str:
    """Apply the ``changed`` fields of the complete ``spec`` to the existing definition ``xml``.

    Fields not in ``changed`` and devices the spec does not model are left as they are.
    A change of ``type`` re-renders the definition (keeping UUID and MACs).
    """
    if "type" in changed or spec["type"] == "container":
        # a container's definition is all the spec's: rewritten whole (UUID, MACs and the
        # owner recorded in the metadata kept)
        return _with_owner_of(xml, render_domain(spec, caps))
    root = etree.fromstring(xml.encode())
    if "maxmem" in changed:
        _set_kib(_find_or_add(root, "memory", ("uuid", "name")), spec["maxmem"])
    if "memory" in changed:
        _set_kib(_find_or_add(root, "currentMemory", ("memory",)), spec["memory"])
    if {"vcpus", "maxvcpus", "cpus"} & set(changed):
        vcpu = _find_or_add(root, "vcpu", ("currentMemory", "memory"))
        vcpu.text = str(spec["maxvcpus"])
        if spec["vcpus"] != spec["maxvcpus"]:
            vcpu.set("current", str(spec["vcpus"]))
        elif "current" in vcpu.attrib:
            del vcpu.attrib["current"]
        vcpus_el = root.find("vcpus")
        if vcpus_el is not None and {"vcpus", "maxvcpus"} & set(changed):
            root.remove(vcpus_el)
        if "cpus" in changed:
            if spec["cpus"]:
                vcpu.set("cpuset", spec["cpus"])
            elif "cpuset" in vcpu.attrib:
                del vcpu.attrib["cpuset"]
            cputune = root.find("cputune")
            if cputune is not None:
                for pin in cputune.findall("vcpupin"):
                    cputune.remove(pin)
                if len(cputune) == 0:
                    root.remove(cputune)
    if {"kernel", "ramdisk", "cmdline", "bootloader"} & set(changed):
        _update_boot(root, spec, caps["driver"])
    if {"boot_order", "firmware", "kernel", "bootloader"} & set(changed):
        _update_boot_options(root, spec, caps)
    if "cdrom" in changed:
        _update_cdrom(root, spec)
    if "disks" in changed:
        _update_disks(root, spec, caps)
    if "vifs" in changed:
        _update_vifs(root, spec, caps)
    if "extra" in changed:
        extra = spec.get("extra") or {}
        if extra.get("domain_type"):
            root.set("type", extra["domain_type"])
        for knob in EXTRA_KNOBS:
            if extra.get(knob):
                _find_or_add(root, knob, ("clock", "features", "os")).text = extra[knob]
        for fragment in extra.get("xml") or []:
            merge_fragment(root, etree.fromstring(fragment.encode()))
    _set_metadata(root, spec)
    _ensure_console_log(root, spec["name"], caps["driver"])
    return etree.tostring(root, encoding="unicode", pretty_print=True)


def _with_owner_of(old_xml: str, new_xml: str) -> str:
    """``new_xml`` with the owner the metadata of ``old_xml`` records (xen_guests ``owner``)."""
    marker = f"metadata/{{{METADATA_NS}}}guest"
    old = etree.fromstring(old_xml.encode()).find(marker)
    if old is None or not old.get("owner"):
        return new_xml
    root = etree.fromstring(new_xml.encode())
    root.find(marker).set("owner", old.get("owner"))
    return etree.tostring(root, encoding="unicode", pretty_print=True)


def _set_kib(element: etree._Element, mib: int) -> None:
    element.text = str(mib * 1024)
    element.set("unit", "KiB")


def _update_boot(root: etree._Element, spec: dict, driver: str) -> None:
    os_el = _find_or_add(root, "os", ("vcpu",))
    for tag in ("kernel", "initrd", "cmdline"):
        for old in os_el.findall(tag):
            os_el.remove(old)
    for tag in ("bootloader", "bootloader_args"):
        for old in root.findall(tag):
            root.remove(old)
    if spec.get("kernel"):
        for boot in os_el.findall("boot"):
            os_el.remove(boot)
        _sub_direct_boot(os_el, spec)
    if spec.get("bootloader"):
        element = etree.Element("bootloader")
        element.text = spec["bootloader"]
        os_el.addprevious(element)
        if spec.get("cmdline"):
            args = etree.Element("bootloader_args")
            args.text = spec["cmdline"]
            os_el.addprevious(args)
    if not spec.get("kernel") and os_el.find("boot") is None and _os_type(driver, spec["type"])[0] == "hvm":
        _sub(os_el, "boot", dev="hd")


def _disk_matches(element: etree._Element, disk: dict) -> bool:
    parsed = parse_disk_element(element)
    return parsed is not None and all(parsed[k] == disk[k] for k in ("path", "type", "format", "device"))


def _update_disks(root: etree._Element, spec: dict, caps: dict) -> None:
    devices = _find_or_add(root, "devices", ("on_crash",))
    old = [d for d in devices.findall("disk") if d.get("device", "disk") == "disk"]
    anchor_index = devices.index(old[0]) if old else _device_insert_index(devices)
    kept: dict[int, etree._Element] = {}
    for element in old:
        for index, disk in enumerate(spec["disks"]):
            if index not in kept and _disk_matches(element, disk):
                kept[index] = element
                break
        devices.remove(element)
    for offset, disk in enumerate(spec["disks"]):
        devices.insert(anchor_index + offset, kept.get(offset, _build_disk(disk, caps)))


def _device_insert_index(devices: etree._Element) -> int:
    emulator = devices.find("emulator")
    return devices.index(emulator) + 1 if emulator is not None else 0


def _update_vifs(root: etree._Element, spec: dict, caps: dict) -> None:
    devices = _find_or_add(root, "devices", ("on_crash",))
    old = devices.findall("interface")
    if old:
        anchor_index = devices.index(old[0])
    else:
        disks = devices.findall("disk")
        anchor_index = devices.index(disks[-1]) + 1 if disks else _device_insert_index(devices)
    xml_keys = ("nettype", "bridge", "network", "model")
    if caps["driver"] == "xen":
        xml_keys += ("script", "ip")
    by_mac: dict[str, tuple[etree._Element, dict]] = {}
    for element in old:
        parsed = parse_vif_element(element, {})
        devices.remove(element)
        by_mac[parsed["mac"]] = (element, parsed)
    for offset, vif in enumerate(spec["vifs"]):
        element, parsed = by_mac.get(vif["mac"], (None, {}))
        if element is None or any(parsed.get(k) != vif[k] for k in xml_keys if k != "nettype"):
            element = _build_vif(vif, caps)
        devices.insert(anchor_index + offset, element)


def merge_fragment(root: etree._Element, fragment: etree._Element) -> None:
    """Merge an ``extra.xml`` fragment: ``<devices>`` children are added when missing; any
    other top-level element replaces the element of the same name (or is appended)."""
    if fragment_present(root, fragment):
        return
    if fragment.tag == "devices":
        devices = _find_or_add(root, "devices", ("on_crash",))
        for child in fragment:
            if not any(subset(child, existing) for existing in devices):
                devices.append(copy.deepcopy(child))
        return
    existing = root.find(fragment.tag)
    if existing is not None:
        existing.addprevious(copy.deepcopy(fragment))
        root.remove(existing)
    else:
        devices = root.find("devices")
        if devices is not None:
            devices.addprevious(copy.deepcopy(fragment))
        else:
            root.append(copy.deepcopy(fragment))


# --------------------------------------------------------------------------- console log

#: the virtio-serial port name qemu-guest-agent listens on
GUEST_AGENT_CHANNEL = "org.qemu.guest_agent.0"

#: where QEMU/KVM guests' serial consoles are logged (virtlogd writes it, bounded by its
#: max_size/max_backups) and where xenconsoled (``--log=guest``) writes Xen guests' consoles.
#: Not ``<name>-console.log``: libvirt's own log of a domain named ``<name>-console`` is that file.
QEMU_CONSOLE_LOG = "/var/log/libvirt/qemu/{name}.console"
XEN_CONSOLE_LOG = "/var/log/xen/console/guest-{name}.log"


def console_log_path(name: str, driver: str) -> str | None:
    """The console log file of guest ``name`` (a validated guest name: no ``/``) on ``driver``;
    None where the collection keeps none (the test driver). Never taken from a profile."""
    if driver in ("qemu", "kvm"):
        return QEMU_CONSOLE_LOG.format(name=name)
    if driver == "xen":
        return XEN_CONSOLE_LOG.format(name=name)
    return None


def _logged_serial(root: etree._Element, path: str) -> etree._Element | None:
    for serial in root.findall("devices/serial"):
        log = serial.find("log")
        if log is not None and log.get("file") == path and log.get("append") == "off":
            return serial
    return None


def console_log_missing(xml: str, name: str, driver: str) -> bool:
    """Whether the definition ``xml`` of a QEMU/KVM guest lacks the serial console log the
    collection renders (a guest defined before it did, or adopted); False on other drivers."""
    if driver not in ("qemu", "kvm"):
        return False
    return _logged_serial(etree.fromstring(xml.encode()), console_log_path(name, driver)) is None


def _port(serial: etree._Element) -> str | None:
    target = serial.find("target")
    return target.get("port") if target is not None else None


def _ensure_console_log(root: etree._Element, name: str, driver: str) -> None:
    """QEMU/KVM: log the guest's serial console to ``console_log_path`` (truncated at each start,
    ``append='off'``; virtlogd bounds its size). The log goes on the pty serial of port 0 (the
    guest's ttyS0, where ``console=ttyS0`` writes); without one a pty serial is added first, on
    port 0 unless another serial holds it, so the ``<console>`` (libvirt's alias of the first
    serial) shows it. Serials of other ports and types (from ``extra.xml``) are left as they are.
    Other drivers: nothing (Xen's console is logged by xenconsoled on the host)."""
    if driver not in ("qemu", "kvm"):
        return
    path = console_log_path(name, driver)
    if _logged_serial(root, path) is not None:
        return
    devices = _find_or_add(root, "devices", ("on_crash",))
    serials = devices.findall("serial")
    serial = next((s for s in serials if s.get("type") == "pty" and _port(s) in ("0", None)), None)
    if serial is None:
        serial = etree.Element("serial", type="pty")
        if not any(_port(s) == "0" for s in serials):
            _sub(serial, "target", port="0")
        anchor = serials[0] if serials else devices.find("console")
        if anchor is not None:
            anchor.addprevious(serial)
        else:
            devices.append(serial)
        if devices.find("console") is None:
            _sub(devices, "console", type="pty")
    for old in serial.findall("log"):
        serial.remove(old)
    log = etree.Element("log", file=path, append="off")
    target = serial.find("target")
    if target is not None:
        target.addprevious(log)
    else:
        serial.insert(0, log)
