# -*- coding: utf-8 -*-
# Copyright: lcfg.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Guest spec <-> libvirt domain XML, per driver. Pure: no Ansible, no libvirt imports.

Vocabulary (architecture.md "guest spec"): a plain dict with ``name``, ``uuid``,
``type`` (pv|hvm|pvh), ``memory``/``maxmem`` (MiB), ``vcpus``/``maxvcpus``, ``cpus``
(canonical cpuset or ``""`` for no pinning), ``autostart``, ``disks`` (list of
``{path, type, format, device, tag, name}``), ``vifs`` (list of ``{mac, nettype, bridge,
network, script, model, ip, tag}``), ``kernel``, ``ramdisk``, ``cmdline``, ``bootloader``,
``extra`` (``{on_poweroff, on_reboot, on_crash, domain_type, xml: [fragments]}``).

Main functions:

- ``validate_spec(params, prefix="")``: user parameters -> validated spec (``None`` kept
  as "leave alone"); raises ``ValidationError`` naming the parameter.
- ``check_driver(spec, driver, prefix="")``: driver-specific rules (pvh and bootloader need
  Xen; ``extra.domain_type`` must exist on the driver).
- ``render_domain(spec, caps)``: a complete spec -> domain XML string for ``caps["driver"]``.
- ``update_domain_xml(xml, spec, changed, caps)``: modify an existing definition in place,
  only for the fields listed in ``changed`` (unknown devices stay as they are).
- ``parse_domain(xml)``: domain XML -> normalised spec (``autostart`` is not in XML; None).
- ``complete_spec(desired, current, driver)``: fill the fields the user left out from the
  current spec (or defaults for a new guest) and adopt generated values (UUID, MACs).
- ``diff_specs(desired, current)``: list of fields whose desired value differs.
- ``canonical_xml(xml)``: stable text form of an XML document, for golden tests.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import uuid as uuidlib
from typing import Any

from ansible_collections.lcfg.xen.plugins.module_utils.common.imports import optional_import
from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import ValidationError
from ansible_collections.lcfg.xen.plugins.module_utils.spec.schema import (
    BRIDGE_RE,
    DEVICE_RE,
    MAX_DISKS,
    MODEL_RE,
    NETWORK_RE,
    SCRIPT_RE,
    check_guest,
    extra_knobs,
)
from ansible_collections.lcfg.xen.plugins.module_utils.common.host_access import safe_fragment
from ansible_collections.lcfg.xen.plugins.module_utils.common.validate import (
    canonical_guest_type,
    cpuset_members,
    parse_int,
    valid_guest_name,
    valid_mac,
    valid_uuid,
)

etree, LXML_IMPORT_ERROR = optional_import("lxml.etree")
HAS_LXML = etree is not None

__all__ = [
    "HAS_LXML",
    "LXML_IMPORT_ERROR",
    "SPEC_FIELDS",
    "METADATA_NS",
    "DEFAULT_NETWORKS",
    "LIFECYCLE_ACTIONS",
    "validate_spec",
    "parse_extra_text",
    "check_driver",
    "complete_spec",
    "render_domain",
    "update_domain_xml",
    "parse_domain",
    "diff_specs",
    "canonical_cpuset",
    "canonical_xml",
    "fragment_present",
    "detect_format",
    "generated_uuid",
    "generated_mac",
]

SPEC_FIELDS = (
    "name", "uuid", "type", "memory", "maxmem", "vcpus", "maxvcpus", "cpus", "autostart",
    "disks", "vifs", "kernel", "ramdisk", "cmdline", "bootloader", "extra",
)
DISK_FIELDS = ("path", "type", "format", "device", "tag", "name")
VIF_FIELDS = ("mac", "nettype", "bridge", "network", "script", "model", "ip", "tag")
EXTRA_KNOBS = ("on_poweroff", "on_reboot", "on_crash")
LIFECYCLE_ACTIONS = ("destroy", "restart", "preserve", "rename-restart", "coredump-destroy",
                     "coredump-restart")
DOMAIN_TYPES = ("kvm", "qemu", "xen", "test")
METADATA_NS = "urn:lcfg:xen:guest:1"
DEFAULT_NETWORKS = {"nat": "lcfg-nat", "route": "lcfg-route"}
DEFAULT_MEMORY = 512
_LIFECYCLE_DEFAULTS = {"on_poweroff": "destroy", "on_reboot": "restart", "on_crash": "destroy"}
_UUID_NAMESPACE = uuidlib.UUID("6a1c5b1e-3f0a-5d7e-9c41-0b1f2e3d4c5b")
_MAC_PREFIX = {"xen": "00:16:3e", "qemu": "52:54:00", "kvm": "52:54:00", "test": "52:54:00"}
_DEVICE_RE = DEVICE_RE
_BRIDGE_RE = BRIDGE_RE
_NETWORK_RE = NETWORK_RE
_BUS_OF_PREFIX = {"xvd": "xen", "vd": "virtio", "sd": "sata", "hd": "ide"}


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
    if out["device"] is not None and not _DEVICE_RE.match(str(out["device"])):
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
        if out["bridge"] is not None and not _BRIDGE_RE.match(str(out["bridge"])):
            _fail(f"{where}.bridge", f"invalid bridge name {out['bridge']!r}")
    else:
        if out["bridge"] is not None:
            _fail(f"{where}.bridge", f"'bridge' is for nettype bridge; a {out['nettype']} vif uses "
                  f"'network' (default {DEFAULT_NETWORKS[out['nettype']]})")
        out["network"] = out["network"] or DEFAULT_NETWORKS[out["nettype"]]
        if not _NETWORK_RE.match(str(out["network"])):
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
        return {"xml": [etree.tostring(child, encoding="unicode", with_tail=False)
                        for child in wrapper if isinstance(child.tag, str)]}
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
        _fail(f"{where}.{unknown[0]}", "unknown key: extra accepts on_poweroff, on_reboot, on_crash, "
              "domain_type, xml")
    out: dict = {}
    if extra.get("domain_type") is not None and extra["domain_type"] not in DOMAIN_TYPES:
        _fail(f"{where}.domain_type", f"unknown domain type {extra['domain_type']!r}: use kvm or qemu "
              "on KVM/QEMU (xen and test name the other drivers)")
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
                _fail(f"{where}.xml[{index}]", f"<{element.tag}> is managed by the module's own "
                      "options; set those instead")
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
        _fail(p("memory"), f"memory {spec['memory']} MiB exceeds maxmem {spec['maxmem']} MiB; "
              "raise maxmem or lower memory")
    if spec["vcpus"] is not None and spec["maxvcpus"] is not None and spec["vcpus"] > spec["maxvcpus"]:
        _fail(p("vcpus"), f"vcpus {spec['vcpus']} exceeds maxvcpus {spec['maxvcpus']}; "
              "raise maxvcpus or lower vcpus")
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
        spec["bootloader"] = _abs_path(spec["bootloader"], p("bootloader")) if "/" in spec["bootloader"] \
            else spec["bootloader"]
    if spec["type"] == "hvm":
        for field in ("kernel", "ramdisk", "bootloader"):
            if spec[field]:
                _fail(p(field), f"{field} is for pv/pvh guests; an hvm guest boots from its disks "
                      "(remove it or use type pv)")
    if spec["kernel"] and spec["bootloader"]:
        _fail(p("bootloader"), "set either kernel (direct boot) or bootloader (e.g. pygrub), not both")
    if spec["ramdisk"] and spec["kernel"] == "":
        _fail(p("ramdisk"), "ramdisk needs a kernel")
    if spec["extra"] is not None:
        spec["extra"] = _validate_extra(spec["extra"], p("extra"))
    return spec


def _no_duplicates(items: list[dict], key: str, where: str) -> None:
    seen: set = set()
    for item in items:
        value = item.get(key)
        if value is None:
            continue
        if value in seen:
            _fail(where, f"{key} {value!r} appears twice")
        seen.add(value)


def check_driver(spec: dict, driver: str, prefix: str = "") -> None:
    """Driver-specific rules, checked before anything changes."""
    chosen = (spec.get("extra") or {}).get("domain_type")
    allowed = ("kvm", "qemu") if driver in ("qemu", "kvm") else (driver,)
    if chosen and chosen not in allowed:
        _fail(f"{prefix}extra.domain_type", f"domain type {chosen} does not exist on a {driver} hypervisor; "
              f"use {' or '.join(allowed)} (or leave it out)")
    if driver == "xen":
        return
    if spec.get("type") == "pvh" and driver != "test":
        _fail(f"{prefix}type", f"pvh guests need a Xen hypervisor; on {driver} use type pv "
              "(virtio devices) or hvm")
    if spec.get("bootloader"):
        _fail(f"{prefix}bootloader", f"a bootloader (pygrub) needs Xen; on {driver} boot with kernel/ramdisk "
              "or from the disks")


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


def _complete_with_ceiling(out: dict, desired: dict, field: str, ceiling: str, default: int,
                           unit: str, prefix: str) -> None:
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
        _fail(f"{prefix}{ceiling}", f"{field} {out[field]}{unit} exceeds the guest's {ceiling} {out[ceiling]}{unit}; "
              f"set {ceiling} too (a {ceiling} change applies at the next restart)")
    if desired.get(ceiling) is not None and desired.get(field) is None and out[field] > out[ceiling]:
        out[field] = out[ceiling]


def complete_spec(desired: dict, current: dict | None, driver: str, prefix: str = "",
                  reserved: tuple | list = (), domain_type: str | None = None) -> dict:
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
    out["type"] = out["type"] or "pv"
    _complete_with_ceiling(out, desired, "memory", "maxmem", DEFAULT_MEMORY, " MiB", prefix)
    _complete_with_ceiling(out, desired, "vcpus", "maxvcpus", 1, "", prefix)
    out["cpus"] = out["cpus"] or ""
    out["autostart"] = bool(out["autostart"])
    for field in ("kernel", "ramdisk", "cmdline", "bootloader"):
        out[field] = out[field] or None
    if out["type"] == "hvm":
        for field in ("kernel", "bootloader"):
            if out[field]:
                _fail(f"{prefix}{field}", f"the guest has {field} {out[field]!r}, which an hvm guest cannot "
                      f"use; set {field}: '' to remove it")
    out["extra"] = _complete_extra(desired.get("extra"), cur.get("extra"),
                                   domain_type or default_domain_type(driver))
    gtype = out["type"]
    # disks
    cur_disks = {d["path"]: d for d in cur.get("disks") or []}
    disks = []
    # a new type brings its own default buses and NIC models, unless the user names them
    same_type = not cur or cur.get("type") == gtype
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
    dev_prefix = _default_device_prefix(driver, gtype)
    if cur.get("disks") and cur.get("type") == gtype:
        dev_prefix = _DEVICE_RE.match(cur["disks"][0]["device"]).group(1) \
            if _DEVICE_RE.match(cur["disks"][0]["device"] or "") else dev_prefix
    letter = 0
    for disk in disks:
        if not disk["device"]:
            while dev_prefix + _letters(letter) in used:
                letter += 1
            if letter >= MAX_DISKS:
                _fail(f"{prefix}disks", f"no free {dev_prefix}* device name is left for disk {disk['path']}; "
                      "name the devices, or use fewer disks")
            disk["device"] = dev_prefix + _letters(letter)
            used.add(disk["device"])
    out["disks"] = disks
    # vifs
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
    out["vifs"] = vifs
    return out


def _complete_extra(desired: dict | None, current: dict | None, domain_type: str | None) -> dict:
    cur = current or {}
    des = desired or {}
    out = {knob: des.get(knob) or cur.get(knob) or _LIFECYCLE_DEFAULTS[knob] for knob in EXTRA_KNOBS}
    out["domain_type"] = des.get("domain_type") or cur.get("domain_type") or domain_type
    out["xml"] = des.get("xml") if des.get("xml") is not None else []
    return out


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
        _sub(os_el, "boot", dev="hd")
    return os_el


def _build_disk(disk: dict, caps: dict) -> etree._Element:
    phy = disk["type"] == "phy"
    element = etree.Element("disk", type="block" if phy else "file", device="disk")
    if caps["driver"] == "xen" and phy:
        _sub(element, "driver", name="phy")
    else:
        _sub(element, "driver", name="qemu", type=disk["format"] or "raw")
    _sub(element, "source", **({"dev": disk["path"]} if phy else {"file": disk["path"]}))
    prefix = _DEVICE_RE.match(disk["device"]).group(1)  # type: ignore[union-attr]
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
    for old in metadata.findall(f"{{{METADATA_NS}}}guest"):
        metadata.remove(old)
    metadata.append(_build_metadata(spec))


def render_domain(spec: dict, caps: dict) -> str:
    """Render a complete spec (see ``complete_spec``) for ``caps``.

    ``caps``: ``driver`` (xen, qemu, kvm, test), ``domain_type`` (kvm or qemu for QEMU),
    optional ``arch`` and ``loader`` (Xen hvmloader path), ``emulator``.
    """
    driver = caps["driver"]
    root = etree.Element("domain", type=_domain_type(spec, caps))
    _sub(root, "name", spec["name"])
    _sub(root, "uuid", spec["uuid"])
    _set_metadata(root, spec)
    _sub(root, "memory", spec["maxmem"] * 1024, unit="KiB")
    _sub(root, "currentMemory", spec["memory"] * 1024, unit="KiB")
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
    _sub(root, "clock", offset="utc")
    extra = spec.get("extra") or {}
    for knob in EXTRA_KNOBS:
        _sub(root, knob, extra.get(knob) or ("restart" if knob == "on_reboot" else "destroy"))
    devices = _sub(root, "devices")
    if caps.get("emulator"):
        _sub(devices, "emulator", caps["emulator"])
    for disk in spec.get("disks") or []:
        devices.append(_build_disk(disk, caps))
    for vif in spec.get("vifs") or []:
        devices.append(_build_vif(vif, caps))
    _sub(devices, "console", type="pty")
    if driver in ("qemu", "kvm"):
        _sub(devices, "memballoon", model="virtio")
    for fragment in extra.get("xml") or []:
        merge_fragment(root, etree.fromstring(fragment.encode()))
    return etree.tostring(root, encoding="unicode", pretty_print=True)


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
    if "type" in changed:
        return render_domain(spec, caps)
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
    parsed = _parse_disk(element)
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
        parsed = _parse_vif(element, {})
        devices.remove(element)
        by_mac[parsed["mac"]] = (element, parsed)
    for offset, vif in enumerate(spec["vifs"]):
        element, parsed = by_mac.get(vif["mac"], (None, {}))
        if element is None or any(parsed.get(k) != vif[k] for k in xml_keys if k != "nettype"):
            element = _build_vif(vif, caps)
        devices.insert(anchor_index + offset, element)


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def merge_fragment(root: etree._Element, fragment: etree._Element) -> None:
    """Merge an ``extra.xml`` fragment: ``<devices>`` children are added when missing; any
    other top-level element replaces the element of the same name (or is appended)."""
    if fragment_present(root, fragment):
        return
    if fragment.tag == "devices":
        devices = _find_or_add(root, "devices", ("on_crash",))
        for child in fragment:
            if not any(_subset(child, existing) for existing in devices):
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


def _subset(want: etree._Element, have: etree._Element) -> bool:
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
            if _subset(child, candidate):
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
        return all(any(_subset(child, existing) for existing in devices)
                   for child in fragment if isinstance(child.tag, str))
    return any(_subset(fragment, existing) for existing in root.findall(fragment.tag))


# --------------------------------------------------------------------------- parsing

_UNIT_BYTES = {"b": 1, "bytes": 1, "kb": 1000, "k": 1024, "kib": 1024, "mb": 1000 ** 2, "m": 1024 ** 2,
               "mib": 1024 ** 2, "gb": 1000 ** 3, "g": 1024 ** 3, "gib": 1024 ** 3, "tb": 1000 ** 4,
               "t": 1024 ** 4, "tib": 1024 ** 4}


def _kib_to_mib(element: etree._Element | None) -> int | None:
    """A libvirt memory element (``unit`` attribute, default KiB) in whole MiB."""
    if element is None or not (element.text or "").strip():
        return None
    value = int(element.text.strip())
    factor = _UNIT_BYTES.get((element.get("unit") or "KiB").lower(), 1024)
    return int(round(value * factor / 1024 ** 2))


def _parse_disk(element: etree._Element) -> dict | None:
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
    return {"path": path, "type": "phy" if phy else "image", "format": fmt,
            "device": target.get("dev"), "tag": None, "name": None}


def _parse_vif(element: etree._Element, meta: dict) -> dict:
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
    if meta_el is not None and meta_el.get("type") in ("pv", "hvm", "pvh") and root.get("type") != "xen":
        gtype = meta_el.get("type")  # on KVM and the test driver the XML does not show it
    maxmem = _kib_to_mib(root.find("memory"))
    memory = _kib_to_mib(root.find("currentMemory"))
    vcpu = root.find("vcpu")
    maxvcpus = int(vcpu.text.strip()) if vcpu is not None and vcpu.text else 1
    vcpus = int(vcpu.get("current")) if vcpu is not None and vcpu.get("current") else maxvcpus
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
        disk = _parse_disk(element)
        if disk is None:
            continue
        info = disk_meta.get(disk["device"], {})
        disk["tag"] = info.get("tag")
        disk["name"] = info.get("name")
        disks.append(disk)
    vifs = [_parse_vif(element, vif_meta) for element in root.findall("devices/interface")]

    def text(path: str) -> str | None:
        element = root.find(path)
        return element.text if element is not None and element.text else None

    bootloader = text("bootloader")
    cmdline = text("os/cmdline") or (text("bootloader_args") if bootloader else None)
    extra = {knob: text(knob) or _LIFECYCLE_DEFAULTS[knob] for knob in EXTRA_KNOBS}
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
        "extra": extra,
    }


def reserved_targets(xml: str) -> list[str]:
    """Target devices of CD-ROM/floppy/LUN devices (not modelled, but their names are taken)."""
    root = etree.fromstring(xml.encode())
    return [d.find("target").get("dev") for d in root.findall("devices/disk")
            if d.get("device", "disk") != "disk" and d.find("target") is not None]


def present_fragments(xml: str, fragments: list[str]) -> list[str]:
    """The subset of ``fragments`` already merged into ``xml``."""
    root = etree.fromstring(xml.encode())
    return [f for f in fragments if fragment_present(root, etree.fromstring(f.encode()))]


__all__ += ["present_fragments", "reserved_targets"]


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


def canonical_xml(xml: str) -> str:
    """Whitespace-insensitive canonical text (C14N) of an XML document."""
    parser = etree.XMLParser(remove_blank_text=True)
    root = etree.fromstring(xml.encode(), parser)
    for element in root.iter():
        if isinstance(element.tag, str) and element.text is not None and not element.text.strip():
            element.text = None
        if element.tail is not None and not element.tail.strip():
            element.tail = None
    return etree.tostring(root, method="c14n").decode()
