# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The xen component model: LCFG profiles -> hypervisor hosts, guests and groups.

Pure: no Ansible, no libvirt. ``build_host`` turns one :class:`Profile` into a
:class:`HostModel` (``xen_host``, one ``xen_domain`` spec per guest, virtual
groups, warnings) or raises :class:`ModelErrors` holding every problem found,
each an :class:`LcfgError` naming ``file:line``, the resource and the problem.
``build_site`` adds the rules that span profiles (unique host and guest names).
The resources are documented in ``docs/resources.md``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os.path
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import ValidationError
from ansible_collections.lcfg.xen.plugins.module_utils.common.host_access import (
    HostAccess,
    check_disk_access,
    check_vif_script,
    host_access_from_params,
    narrowed_access,
    profile_value_problem,
)
from ansible_collections.lcfg.xen.plugins.module_utils.common.validate import (
    DEVICE_NAME_RE,
    IFNAME_MAX,
    canonical_guest_type,
    parse_bool,
    parse_cpuset,
    parse_int,
    path_inside,
    valid_disk_name,
    valid_guest_name,
    valid_mac,
    valid_uuid,
)
from ansible_collections.lcfg.xen.plugins.module_utils.spec.schema import (
    FIRMWARES,
    GUEST,
    PROFILE_IFNAME_RE,
    URL_RE,
    boot_device,
    guest_ip,
    guest_problems,
    network_name,
    vif_script,
)
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.errors import LcfgError, excerpt
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.profile import Profile, Resource

__all__ = [
    "COMPONENT",
    "DOMAIN_KEYS",
    "DISK_KEYS",
    "VIF_KEYS",
    "GROUP_KEYS",
    "DEFAULT_DISKPATH",
    "DEFAULT_NAT_NETWORK",
    "DEFAULT_NAT_SUBNET",
    "DEFAULT_ROUTE_NETWORK",
    "RESERVED_GROUPS",
    "HostModel",
    "ModelErrors",
    "Site",
    "build_host",
    "build_site",
    "build_profile",
    "BuiltProfile",
    "bridge_device_name",
]

COMPONENT = "xen"

#: every key of the ``xen_domain`` hostvar, in documentation order
DOMAIN_KEYS = (
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
    "template",
    "profile_url",
    "partition",
    "groups",
    "kernel",
    "ramdisk",
    "cmdline",
    "bootloader",
    "boot_order",
    "firmware",
    "cdrom",
    "extra",
)
DISK_KEYS = ("tag", "name", "type", "size_gb", "path", "format")
VIF_KEYS = ("tag", "mac", "ip", "nettype", "bridge", "script", "network")
GROUP_KEYS = ("members", "memory", "maxmem", "vcpus", "maxvcpus", "cpus", "bridge", "nettype", "script")

DEFAULT_MEMORY = 512
DEFAULT_TYPE = "pv"
DEFAULT_DISKPATH = "/var/lib/lcfg-xen/guests"
DEFAULT_NAT_NETWORK = "lcfg-nat"
DEFAULT_NAT_SUBNET = "10.0.0.0/24"
DEFAULT_ROUTE_NETWORK = "lcfg-route"
DEFAULT_BRIDGE = "xenbr0"

NETTYPES = ("bridge", "nat", "route")
#: Ansible group names a virtual group may not take
RESERVED_GROUPS = ("all", "ungrouped", "xen_hypervisors", "xen_guests")
DISK_TYPES = ("image", "phy")
DISK_FORMATS = ("raw", "qcow2")

_TAG_RE = re.compile(r"^[A-Za-z0-9_]+$")
#: resources this model reads per tag; one that is never read is reported as unused
_TAGGED_RE = re.compile(
    r"^(name|uuid|type|memory|maxmem|vcpus|maxvcpus|cpus|boot|template|profileurl|partition|"
    r"kernel|ramdisk|cmdline|bootloader|bootorder|firmware|cdrom|extra|disks|vifs|diskname|disktype|disksize|diskpath|"
    r"diskformat|mac|ip|nettype|bridge|script|network|members|groupmemory|groupmaxmem|"
    r"groupvcpus|groupmaxvcpus|groupcpus|groupbridge|groupnettype|groupscript|bridgenetdev|"
    r"bridgeif|bridgevifnum)_[A-Za-z0-9_]+$"
)
_SIZE_RE = re.compile(r"^\s*([0-9]{1,20})\s*[gG]?[bB]?\s*$")
_DEVICE_HASH = 5  # hex digits of the name's SHA-256 kept in a derived device name


def bridge_device_name(name: str) -> str:
    """The Linux device of a bridge the profile names ``name`` (stable, documented).

    A name Linux accepts is used as it is. Any other (longer than 15 characters, or with a
    character Linux refuses) becomes its first 9 allowed characters, '-', and the first 5 hex
    digits of the SHA-256 of the whole name: ``my-network-bridge`` -> ``my-networ-<hash>``.
    The hash keeps two long names with the same beginning apart; the model also checks
    the result against the host's other bridges.
    """
    if DEVICE_NAME_RE.match(name) and name not in (".", ".."):
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:_DEVICE_HASH]
    stem = re.sub(r"[^A-Za-z0-9_.+-]", "", name)[: IFNAME_MAX - _DEVICE_HASH - 1]
    return f"{stem}-{digest}" if stem else f"br-{digest}"


class ModelErrors(LcfgError):
    """Every problem of one profile. Reads like its first error; ``errors`` holds all."""

    def __init__(self, errors: list[LcfgError]) -> None:
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(first.problem, file=first.file, line=first.line, resource=first.resource)

    def __str__(self) -> str:
        return "\n".join(LcfgError.__str__(err) for err in self.errors)


@dataclass
class HostModel:
    """One physical host: its resources and, for hypervisors, its guests and groups."""

    name: str
    path: str
    resources: dict[str, dict[str, str]]
    is_hypervisor: bool = False
    xen_host: dict[str, Any] | None = None
    guests: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: guest name -> (derivation "file:line", resource name) of what defines it
    origins: dict[str, tuple[str, str]] = field(default_factory=dict)

    def to_data(self) -> dict[str, Any]:
        """Plain JSON-able form (what the inventory plugin caches)."""
        return {
            "name": self.name,
            "path": self.path,
            "resources": self.resources,
            "is_hypervisor": self.is_hypervisor,
            "xen_host": self.xen_host,
            "guests": self.guests,
            "groups": self.groups,
            "warnings": self.warnings,
        }


def _error_data(err: LcfgError) -> list[Any]:
    return [err.problem, err.file, err.line, err.resource]


@dataclass
class BuiltProfile:
    """One profile built on its own (``build_profile``): its host data, or its own errors,
    and what the site-wide checks of ``build_site`` need of it. Plain data (``to_data``), so
    the inventory can keep it per profile and skip reading an unchanged profile again."""

    name: str
    path: str
    #: ``HostModel.to_data()``; None when the profile is rejected (``errors``) or unreadable
    data: dict[str, Any] | None = None
    errors: list[LcfgError] = field(default_factory=list)
    #: guest name -> (derivation "file:line", resource name) of what defines it
    origins: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: virtual group names, and (file, line) of xen.virtualgroup
    groups: list[str] = field(default_factory=list)
    group_location: tuple[str | None, int | None] = (None, None)
    #: (guest, use, path, resource name, where, file, line) of every file a guest names
    files: list[tuple[str, str, str, str, str, str | None, int | None]] = field(default_factory=list)
    #: the model itself when built in this process (not part of ``to_data``)
    model: HostModel | None = None
    unreadable: bool = False
    #: False when the build failed for a reason other than the profile (a model bug, memory):
    #: not kept, so the next read builds it again
    keep: bool = True

    def to_data(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "data": self.data,
            "errors": [_error_data(err) for err in self.errors],
            "origins": {name: list(origin) for name, origin in self.origins.items()},
            "groups": self.groups,
            "group_location": list(self.group_location),
            "files": [list(entry) for entry in self.files],
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> BuiltProfile:
        """The inverse of ``to_data``; ValueError (or KeyError, TypeError) when ``data`` is not
        what ``to_data`` makes: every field's type, and the host data agreeing with the names
        the site-wide checks see (host, guests, groups), so a kept entry cannot add a host,
        guest or group those checks did not judge."""
        name, path, host = data["name"], data["path"], data["data"]
        file, line = data["group_location"]
        built = cls(
            name=_text(name),
            path=_text(path),
            data=host,
            errors=[
                LcfgError(_text(p), file=_opt(f, str), line=_opt(n, int), resource=_opt(r, str))
                for p, f, n, r in data["errors"]
            ],
            origins={_text(guest): (_text(origin), _text(key)) for guest, (origin, key) in data["origins"].items()},
            groups=[_text(group) for group in data["groups"]],
            group_location=(_opt(file, str), _opt(line, int)),
            files=[_file_entry(entry) for entry in data["files"]],
        )
        if host is not None:
            if (
                not isinstance(host, dict)
                or host.get("name") != built.name
                or not isinstance(host.get("is_hypervisor"), bool)
            ):
                raise ValueError("kept host data does not match its profile")
            if set(host.get("guests") or {}) != set(built.origins) or set(host.get("groups") or {}) != set(
                built.groups
            ):
                raise ValueError("kept host data names other guests or groups than its profile's checks")
            if not isinstance(host.get("resources"), dict) or not isinstance(host.get("warnings") or [], list):
                raise ValueError("kept host data is not a host's data")
        elif built.origins or built.groups or built.files or not built.errors:
            raise ValueError("a kept rejected profile has only its errors")
        return built


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _opt(value: Any, kind: type) -> Any:
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise TypeError(f"expected {kind.__name__} or None, got {type(value).__name__}")
    return value


def _file_entry(entry: Any) -> tuple[str, str, str, str, str, str | None, int | None]:
    guest, use, path, res_name, where, file, line = entry
    return _text(guest), _text(use), _text(path), _text(res_name), _text(where), _opt(file, str), _opt(line, int)


@dataclass
class Site:
    """Accepted hosts in source order, rejected profiles with their errors, and warnings."""

    hosts: dict[str, HostModel] = field(default_factory=dict)
    rejected: dict[str, list[LcfgError]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: the accepted hosts' data (``HostModel.to_data``) in source order, also of profiles
    #: given to ``build_site`` already built (``hosts`` holds only the models built here)
    data: list[dict[str, Any]] = field(default_factory=list)
    #: every profile as built on its own, in source order (what the inventory keeps per profile)
    built: list[BuiltProfile] = field(default_factory=list)

    @property
    def errors(self) -> list[LcfgError]:
        return [err for errs in self.rejected.values() for err in errs]


def _location(res: Resource | None) -> tuple[str | None, int | None]:
    return res.first_location if res is not None else (None, None)


def _where(res: Resource | None, fallback: str) -> str:
    if res is None or not res.derivation:
        return fallback
    return res.derivation.split()[-1]


class _Builder:
    """Builds one host; collects errors instead of stopping at the first."""

    def __init__(self, profile: Profile, access: HostAccess) -> None:
        self.profile = profile
        #: what guests may reach on the host: the inventory's host_access, narrowed by the
        #: profile's xen.storagedirs once read (_host_settings)
        self.access = access
        self.res: dict[str, Resource] = profile.resources.get(COMPONENT, {})
        self.errors: list[LcfgError] = []
        self.warnings: list[str] = []
        self.used: set[str] = set()

    # -- resource access -------------------------------------------------
    def get(self, name: str) -> Resource | None:
        """The resource, or None when absent or empty (an empty LCFG value means unset)."""
        self.used.add(name)
        res = self.res.get(name)
        if res is None or res.value is None or str(res.value).strip() == "":
            return None
        return res

    def error(self, res: Resource | None, name: str, problem: str) -> None:
        file, line = _location(res)
        if file is None:
            file = self.profile.path
        self.errors.append(LcfgError(problem, file=file, line=line, resource=f"{COMPONENT}.{name}"))

    def warn(self, res: Resource | None, name: str, problem: str) -> None:
        file, line = _location(res)
        self.warnings.append(
            str(LcfgError(problem, file=file or self.profile.path, line=line, resource=f"{COMPONENT}.{name}"))
        )

    def parsed(self, name: str, parser: Callable[[str], Any]) -> tuple[Any, Resource | None]:
        """(parsed value or None, resource); a parse failure is recorded as an error."""
        res = self.get(name)
        if res is None:
            return None, None
        try:
            return parser(str(res.value).strip()), res
        except ValueError as exc:
            self.error(res, name, str(exc))
            return None, res

    def value(self, name: str, parser: Callable[[str], Any]) -> Any:
        """The parsed value or None (unset, or invalid: then an error is recorded)."""
        return self.parsed(name, parser)[0]

    def tag_list(self, name: str) -> list[str]:
        return self.tags(name)[0]

    def tags(self, name: str) -> tuple[list[str], Resource | None]:
        res = self.get(name)
        if res is None:
            return [], None
        tags: list[str] = []
        for tag in str(res.value).split():
            if not _TAG_RE.match(tag):
                self.error(res, name, f"invalid tag {tag!r}: tags use letters, digits and '_'")
            elif tag in tags:
                self.error(res, name, f"tag {tag!r} is listed twice")
            else:
                tags.append(tag)
        return tags, res


# -- field parsers (raise ValueError) --------------------------------------


def _int_min(minimum: int, what: str) -> Callable[[str], int]:
    return lambda text: parse_int(text, minimum=minimum, what=what)


def _bounded(key: str, what: str) -> Callable[[str], int]:
    """An integer held to the guest schema's bounds for ``key`` (what the modules accept)."""
    field = GUEST[key]

    def parse(text: str) -> int:
        if len(text.strip()) > 20:
            raise ValueError(f"{what} must be at most {field.maximum}, got a {len(text.strip())}-digit number")
        number = parse_int(text, minimum=field.minimum, what=what)
        if number > field.maximum:
            raise ValueError(f"{what} must be at most {field.maximum}, got {number}")
        return number

    return parse


def _size_gb(text: str) -> int:
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(f"disk size must be a whole number of GB (like 12 or 12G), got {text!r}")
    size = int(match.group(1))
    if size < 1:
        raise ValueError(f"disk size must be at least 1 GB, got {text!r}")
    return size


def _abs_path(text: str) -> str:
    if not os.path.isabs(text):
        raise ValueError(f"path {text!r} must be absolute")
    if ".." in text.split("/"):
        raise ValueError(f"path {text!r} may not contain '..'")
    if "\0" in text:
        raise ValueError("path contains a NUL character")
    return os.path.normpath(text)


def _abs_path_list(text: str) -> list[str]:
    """xen.storagedirs: space-separated absolute directories (they only narrow the play's list)."""
    paths = [_abs_path(item) for item in text.split()]
    if not paths:
        raise ValueError("must name at least one absolute directory")
    return paths


def _choice(choices: tuple[str, ...], what: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.lower()
        if value not in choices:
            raise ValueError(f"unknown {what} {text!r}: use one of {', '.join(choices)}")
        return value

    return parse


def _ifname(text: str) -> str:
    if not PROFILE_IFNAME_RE.match(text):
        raise ValueError(f"invalid interface name {text!r}")
    return text


def _netname(text: str) -> str:
    return network_name(text)


def _script(text: str) -> str:
    return vif_script(text)  # what it may run in dom0 is checked where a vif uses it (_vifs)


def _ip(text: str) -> str:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"invalid IP address {excerpt(text)}") from None
    if getattr(addr, "scope_id", None):  # Python takes anything after '%' (spaces, '-o ...')
        raise ValueError(f"invalid IP address {excerpt(text)}: a zone index ('%...') is not a guest's address")
    return str(addr)


def _subnet(text: str) -> str:
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise ValueError(f"invalid subnet {text!r}: {exc}") from None
    if net.num_addresses < 4:
        raise ValueError(f"subnet {text!r} is too small for a gateway and guests")
    return str(net)


def _url(text: str) -> str:
    if not URL_RE.match(text):
        raise ValueError(f"invalid profile URL {text!r}: expected http:// or https://")
    return text


def _boot_order(text: str) -> list[str]:
    """xen.bootorder_$: boot devices separated by blanks (``network disk cdrom``), each once."""
    order = [boot_device(word.lower()) for word in text.split()]
    if len(set(order)) != len(order):
        raise ValueError(f"boot order {text!r} names a device twice; name each of network, disk, cdrom once")
    return order


def _text(text: str) -> str:
    return text


def _guest_side(field_name: str, access: HostAccess) -> Callable[[str], str]:
    """Parser of a value the host acts on (kernel, ramdisk, bootloader, its arguments, extra):
    held to the modules' rules with the inventory's host_access (default: the modules'
    defaults), which only the play can widen (_host_access)."""

    def parse(text: str) -> str:
        value = _abs_path(text) if field_name in ("kernel", "ramdisk", "cdrom") else text
        profile_value_problem(field_name, value, access)
        return value

    return parse


def _guest_type(access: HostAccess) -> Callable[[str], str]:
    """Parser of type_<tag>: a known type, and a container only where host_access allows them."""

    def parse(text: str) -> str:
        gtype = canonical_guest_type(text)
        profile_value_problem("type", gtype, access)
        return gtype

    return parse


def _template(b: _Builder) -> Callable[[str], str]:
    """Parser of template_<tag>: inside the storage directories, as xen_disk confines it
    (b.access: the inventory's host_access or the default list, narrowed by xen.storagedirs)."""

    def parse(text: str) -> str:
        template = _abs_path(text)
        try:
            path_inside(template, list(b.access.storage_dirs))
        except ValueError as exc:
            raise ValueError(
                f"template: {exc}; the admin widens them with storage_dirs (inventory "
                "option host_access, role variable guest_storage_dirs)"
            ) from None
        return template

    return parse


def _narrowing(b: _Builder) -> Callable[[str], list[str]]:
    """Parser of xen.storagedirs: directories inside the play's list (b.access), which then
    narrow b.access for this host's kernels, ramdisks and disk images."""

    def parse(text: str) -> list[str]:
        dirs = _abs_path_list(text)
        b.access = narrowed_access(b.access, dirs)
        return dirs

    return parse


_GROUP_FIELDS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "memory": ("groupmemory", _bounded("memory", "memory (MiB)")),
    "maxmem": ("groupmaxmem", _bounded("maxmem", "maxmem (MiB)")),
    "vcpus": ("groupvcpus", _bounded("vcpus", "vcpus")),
    "maxvcpus": ("groupmaxvcpus", _bounded("maxvcpus", "maxvcpus")),
    "cpus": ("groupcpus", parse_cpuset),
    "bridge": ("groupbridge", _ifname),
    "nettype": ("groupnettype", _choice(NETTYPES, "network type")),
    "script": ("groupscript", _script),
}

# The guest's own resources of the same names, parsed like the group's.
_GUEST_FIELDS: dict[str, tuple[str, Callable[[str], Any]]] = {
    field: (field, _GROUP_FIELDS[field][1]) for field in ("memory", "maxmem", "vcpus", "maxvcpus", "cpus")
}

_VIF_GROUP_FIELDS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "nettype": ("nettype", _choice(NETTYPES, "network type")),
    "bridge": ("bridge", _ifname),
    "script": ("script", _script),
}


@dataclass
class _Group:
    name: str
    members: list[str]
    members_res: Resource | None
    values: dict[str, tuple[Any, Resource]]


def _host_settings(b: _Builder) -> dict[str, Any]:
    bridge_net = b.value("xendconfbridgenet", parse_bool)
    nat_net = b.value("xendconfnatnet", parse_bool)
    route_net = b.value("xendconfroutenet", parse_bool)
    custom = b.value("xendconfcustombridge", _ifname)
    nat_name = b.value("natnetwork", _netname)
    nat_subnet = b.value("natsubnet", _subnet)
    route_name = b.value("routenetwork", _netname)
    route_subnet = b.value("routesubnet", _subnet)

    bridges: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    # Linux device -> (profile's bridge name, resource, resource name): a derived device
    # name may not be another bridge's name or device.
    devices: dict[str, tuple[str, Resource | None, str]] = {}

    def claim(bridge: str, res: Resource | None, res_name: str) -> str:
        device = bridge_device_name(bridge)
        for taken in dict.fromkeys((bridge, device)):  # the name, and the device if it differs
            other = devices.get(taken)
            if other is not None and other[0] != bridge:
                b.error(
                    res,
                    res_name,
                    f"bridge {bridge!r} (Linux device {device!r}) collides with bridge "
                    f"{other[0]!r} ({_where(other[1], other[2])}): rename one of them",
                )
        devices.setdefault(device, (bridge, res, res_name))
        devices.setdefault(bridge, (bridge, res, res_name))
        return device

    tags = b.tag_list("bridgeinterfaces")
    for index, tag in enumerate(tags):
        netdev = b.value(f"bridgenetdev_{tag}", _ifname)
        vifnum = b.value(f"bridgevifnum_{tag}", _int_min(0, "bridge vif number"))
        if vifnum is None:
            vifnum = index
        bridge, bres = b.parsed(f"bridgeif_{tag}", _ifname)
        if bridge is None:
            bridge = f"xenbr{vifnum}"
        if bridge in seen:
            b.error(
                bres or b.get("bridgeinterfaces"),
                f"bridgeif_{tag}",
                f"bridge {bridge!r} is already declared by bridge interface {seen[bridge]!r}",
            )
        seen[bridge] = tag
        device = claim(bridge, bres or b.get("bridgeinterfaces"), f"bridgeif_{tag}")
        bridges.append({"tag": tag, "netdev": netdev, "bridge": bridge, "vifnum": vifnum, "device": device})
    custom_device = None
    if custom is not None and custom not in seen:
        custom_device = claim(custom, b.get("xendconfcustombridge"), "xendconfcustombridge")
    elif custom is not None:
        custom_device = bridge_device_name(custom)

    bridge_devices = {item["bridge"]: item["device"] for item in bridges}
    if custom is not None:
        bridge_devices[custom] = custom_device
    # Guests attach to Linux devices: the default bridge is a device name.
    default_bridge = custom_device or (bridges[0]["device"] if bridges else DEFAULT_BRIDGE)
    return {
        "bridge_network": True if bridge_net is None else bridge_net,
        "nat_network": bool(nat_net),
        "route_network": bool(route_net),
        "custom_bridge": custom,
        "custom_bridge_device": custom_device,
        "default_bridge": default_bridge,
        "bridges": bridges,
        "bridge_devices": bridge_devices,
        "nat_network_name": nat_name or DEFAULT_NAT_NETWORK,
        "nat_subnet": nat_subnet or DEFAULT_NAT_SUBNET,
        "route_network_name": route_name or DEFAULT_ROUTE_NETWORK,
        "route_subnet": route_subnet,
        # Narrows the play's storage directories (xen_disk profile_storage_dirs), never widens them.
        "storage_dirs": b.value("storagedirs", _narrowing(b)),
        "guests": [],
        "groups": {},
    }


def _read_groups(b: _Builder, guest_tags: list[str]) -> list[_Group]:
    groups: list[_Group] = []
    names, vg_res = b.tags("virtualgroup")
    for name in names:
        if name in RESERVED_GROUPS:
            b.error(
                vg_res,
                "virtualgroup",
                f"group name {name!r} is reserved ({', '.join(RESERVED_GROUPS)}); rename the group",
            )
        members, mres = b.tags(f"members_{name}")
        for member in members:
            if member not in guest_tags:
                b.error(
                    mres,
                    f"members_{name}",
                    f"member {member!r} of group {name!r} is not a guest of this host "
                    f"(xen.virtualmachines lists: {' '.join(guest_tags) or 'none'})",
                )
        if mres is None:
            b.warn(vg_res, "virtualgroup", f"group {name!r} has no members (xen.members_{name})")
        values: dict[str, tuple[Any, Resource]] = {}
        for key, (prefix, parser) in _GROUP_FIELDS.items():
            value, res = b.parsed(f"{prefix}_{name}", parser)
            if value is not None and res is not None:
                values[key] = (value, res)
        groups.append(_Group(name, [m for m in members if m in guest_tags], mres, values))
    return groups


class _Resolver:
    """Guest value wins; groups fill in; conflicts between groups are errors."""

    def __init__(self, b: _Builder, groups: list[_Group]) -> None:
        self.b = b
        self.groups = groups
        self.reported: set[tuple[str, str]] = set()

    def group_value(self, guest_tag: str, key: str) -> tuple[Any, Resource | None, str]:
        chosen: tuple[Any, Resource | None, str] | None = None
        for group in self.groups:
            if guest_tag not in group.members or key not in group.values:
                continue
            value, res = group.values[key]
            if chosen is None:
                chosen = (value, res, group.name)
            elif chosen[0] != value:
                mark = (guest_tag, key)
                if mark not in self.reported:
                    self.reported.add(mark)
                    prefix = _GROUP_FIELDS[key][0]
                    self.b.error(
                        res,
                        f"{prefix}_{group.name}",
                        f"guest {guest_tag!r} is in groups {chosen[2]!r} and {group.name!r} "
                        f"which set {key} differently ({chosen[0]!r} at "
                        f"{_where(chosen[1], 'unknown')} vs {value!r} at "
                        f"{_where(res, 'unknown')}); set it on the guest or on one group",
                    )
        if chosen is None:
            return None, None, ""
        return chosen[0], chosen[1], f"{_GROUP_FIELDS[key][0]}_{chosen[2]}"

    def resolve(
        self, guest_tag: str, key: str, own_name: str, parser: Callable[[str], Any], label: str
    ) -> tuple[Any, Resource | None, str]:
        own, own_res = self.b.parsed(own_name, parser)
        gval, gres, gname = self.group_value(guest_tag, key)
        if own_res is not None:
            if gres is not None and own is not None and own != gval:
                self.b.warn(
                    own_res,
                    own_name,
                    f"{label} {own!r} ({_where(own_res, 'guest')}) overrides the group "
                    f"value {gval!r} ({_where(gres, 'group')})",
                )
            return own, own_res, own_name
        return gval, gres, gname


def _guest(
    b: _Builder, r: _Resolver, tag: str, group_names: list[str], host: dict[str, Any], vm_res: Resource | None
) -> dict[str, Any] | None:
    errors_before = len(b.errors)
    name, name_res = b.parsed(f"name_{tag}", valid_guest_name)
    if name_res is None:
        try:
            name = valid_guest_name(tag)
        except ValueError as exc:
            b.error(vm_res, "virtualmachines", str(exc))
    gtype = b.value(f"type_{tag}", _guest_type(b.access))
    uuid = b.value(f"uuid_{tag}", valid_uuid)

    vals: dict[str, tuple[Any, Resource | None, str]] = {}
    for key, (prefix, parser) in _GUEST_FIELDS.items():
        vals[key] = r.resolve(tag, key, f"{prefix}_{tag}", parser, key)
    memory, mem_res, mem_name = vals["memory"]
    maxmem, maxmem_res = vals["maxmem"][:2]
    if memory is None and maxmem is None:
        memory = maxmem = DEFAULT_MEMORY
    elif memory is None:
        memory = maxmem
    elif maxmem is None:
        maxmem = memory
    elif memory > maxmem:
        b.error(
            mem_res,
            mem_name,
            f"memory {memory} MiB is more than maxmem {maxmem} MiB "
            f"({_where(maxmem_res, 'maxmem')}); raise maxmem or lower memory",
        )
    vcpus, vcpus_res = vals["vcpus"][:2]
    maxvcpus, maxv_res, maxv_name = vals["maxvcpus"]
    vcpus = 1 if vcpus is None else vcpus
    if maxvcpus is None:
        maxvcpus = vcpus
    elif maxvcpus < vcpus:
        b.error(maxv_res, maxv_name, f"maxvcpus {maxvcpus} is less than vcpus {vcpus} ({_where(vcpus_res, 'default')})")
    autostart = b.value(f"boot_{tag}", parse_bool)
    template = b.value(f"template_{tag}", _template(b))
    profile_url = b.value(f"profileurl_{tag}", _url)
    partition = b.value(f"partition_{tag}", _bounded("partition", "partition"))
    kernel = b.value(f"kernel_{tag}", _guest_side("kernel", b.access))
    ramdisk = b.value(f"ramdisk_{tag}", _guest_side("ramdisk", b.access))
    bootloader = b.value(f"bootloader_{tag}", _guest_side("bootloader", b.access))
    cmdline = b.value(f"cmdline_{tag}", _guest_side("bootloader_args", b.access) if bootloader else _text)
    extra = b.value(f"extra_{tag}", _guest_side("extra", b.access))
    boot_order = b.value(f"bootorder_{tag}", _boot_order)
    firmware = b.value(f"firmware_{tag}", _choice(FIRMWARES, "firmware"))
    cdrom = b.value(f"cdrom_{tag}", _guest_side("cdrom", b.access))

    guest_name = name or tag
    disks = _disks(b, tag, guest_name)
    vifs = _vifs(b, r, tag, host)
    if len(b.errors) > errors_before:
        return None
    return {
        "name": guest_name,
        "uuid": uuid,
        "type": gtype or DEFAULT_TYPE,
        "memory": memory,
        "maxmem": maxmem,
        "vcpus": vcpus,
        "maxvcpus": maxvcpus,
        "cpus": vals["cpus"][0],
        "autostart": bool(autostart),
        "disks": disks,
        "vifs": vifs,
        "template": template,
        "profile_url": profile_url,
        "partition": partition,
        "groups": list(group_names),
        "kernel": kernel,
        "ramdisk": ramdisk,
        "cmdline": cmdline,
        "bootloader": bootloader,
        "boot_order": boot_order,
        # a value xen_domain's choices accept when the hostvar is passed on whole (bios is
        # what the modules complete an unset firmware to)
        "firmware": firmware or "bios",
        "cdrom": cdrom,
        "extra": extra,
    }


def _disks(b: _Builder, tag: str, guest_name: str) -> list[dict[str, Any]]:
    disks: list[dict[str, Any]] = []
    tags = b.tag_list(f"disks_{tag}")
    seen: dict[str, str] = {}
    for index, disk in enumerate(tags):

        def pick(fieldname: str, parser: Callable[[str], Any], disk: str = disk) -> tuple[Any, Resource | None, str]:
            per_disk = f"{fieldname}_{tag}_{disk}"
            if b.get(per_disk) is not None:
                value, res = b.parsed(per_disk, parser)
                return value, res, per_disk
            per_guest = f"{fieldname}_{tag}"
            value, res = b.parsed(per_guest, parser)
            return value, res, per_guest

        dname, dname_res, dname_key = pick("diskname", valid_disk_name)
        if dname_res is None:
            dname = guest_name if index == 0 else f"{guest_name}-{disk}"
            try:
                valid_disk_name(dname)
            except ValueError as exc:
                b.error(b.get(f"disks_{tag}"), f"disks_{tag}", str(exc))
        dtype = pick("disktype", _choice(DISK_TYPES, "disk type"))[0]
        size = pick("disksize", _size_gb)[0]
        dpath = pick("diskpath", _abs_path)[0]
        fmt = pick("diskformat", _choice(DISK_FORMATS, "disk format"))[0]
        dtype = dtype or "image"
        directory = dpath or DEFAULT_DISKPATH
        if dname is None:
            continue
        path = os.path.join(directory, dname + (".img" if dtype == "image" else ""))
        if path in seen:
            b.error(
                dname_res or b.get(f"disks_{tag}"),
                dname_key,
                f"disk {disk!r} has the same path {path} as disk {seen[path]!r}; set xen.diskname_{tag}_{disk}",
            )
        seen[path] = disk
        item = {"tag": disk, "name": dname, "type": dtype, "size_gb": size, "path": path, "format": fmt}
        try:
            check_disk_access(item, "path", b.access)
        except ValidationError as exc:
            path_key = next((k for k in (f"diskpath_{tag}_{disk}", f"diskpath_{tag}") if b.get(k)), f"disks_{tag}")
            b.error(b.get(path_key), path_key, exc.problem)
        disks.append(item)
    return disks


def _vifs(b: _Builder, r: _Resolver, tag: str, host: dict[str, Any]) -> list[dict[str, Any]]:
    vifs: list[dict[str, Any]] = []
    tags = b.tag_list(f"vifs_{tag}")
    for vif in tags:
        mac = b.value(f"mac_{tag}_{vif}", valid_mac)
        ip = b.value(f"ip_{tag}_{vif}", guest_ip)
        network = b.value(f"network_{tag}_{vif}", _netname)
        item: dict[str, Any] = {"tag": vif, "mac": mac, "ip": ip}
        sources: dict[str, tuple[Resource | None, str]] = {}
        for key, (prefix, parser) in _VIF_GROUP_FIELDS.items():
            item[key], res, res_name = r.resolve(tag, key, f"{prefix}_{tag}_{vif}", parser, f"vif {vif} {key}")
            sources[key] = (res, res_name)
        item["nettype"] = item["nettype"] or "bridge"
        if item["script"] is not None:
            try:  # it runs in dom0: a name from Xen's scripts directory unless the play allows more
                check_vif_script(item["script"], "script", b.access)
            except ValidationError as exc:
                b.error(sources["script"][0], sources["script"][1], exc.problem)
                item["script"] = None
        if item["bridge"] is not None and item["nettype"] != "bridge":
            bres, bname = sources["bridge"]
            if bname.startswith("groupbridge_"):
                # The member's own nettype wins: a group bridge fills bridge vifs only.
                b.warn(
                    bres,
                    bname,
                    f"group bridge {item['bridge']!r} is ignored for guest {tag!r} vif {vif!r}: "
                    f"its nettype is {item['nettype']} ({_where(sources['nettype'][0], 'guest')}); "
                    "a group bridge only applies to bridge vifs",
                )
            else:
                b.error(
                    bres,
                    bname,
                    f"a bridge is for nettype bridge, but vif {vif!r} of guest {tag!r} has "
                    f"nettype {item['nettype']} ({_where(sources['nettype'][0], 'guest')}); "
                    "drop the bridge or the nettype",
                )
            item["bridge"] = None
        # A bridge the host declares is attached to by its Linux device.
        item["bridge"] = host["bridge_devices"].get(item["bridge"], item["bridge"])
        item["network"] = network
        vifs.append({key: item[key] for key in VIF_KEYS})
    return vifs


def _gateway(b: _Builder, kind: str, subnet: str, guest_ips: dict[str, tuple[str, str, Resource | None]]) -> str:
    """The host's address on a libvirt network: ``<kind>gateway``, else the subnet's highest
    host address that no guest uses (10.0.0.254 for 10.0.0.0/24). Never a guest's address."""
    net = ipaddress.ip_network(subnet)
    name = f"{kind}gateway"
    gateway, res = b.parsed(name, _ip)
    if gateway is not None:
        addr = ipaddress.ip_address(gateway)
        last = net[-1] if net.version == 6 else net.broadcast_address
        if addr not in net or addr in (net.network_address, last):
            b.error(
                res, name, f"gateway {gateway} is not a host address of the {kind} subnet {subnet} (xen.{kind}subnet)"
            )
        elif gateway in guest_ips:
            guest, vif, ip_res = guest_ips[gateway]
            b.error(
                res,
                name,
                f"gateway {gateway} is the address of guest {guest!r} vif {vif!r} "
                f"({_where(ip_res, 'guest')}): the host's address on the network "
                "must be free; choose another gateway or guest address",
            )
        return gateway
    candidate = net[-1] if net.version == 6 else net[-2]
    while str(candidate) in guest_ips and candidate > net.network_address + 1:
        candidate -= 1
    if str(candidate) in guest_ips:
        b.error(
            b.get(f"{kind}subnet"),
            f"{kind}subnet",
            f"every address of the {kind} subnet {subnet} is a guest's: no room for the gateway",
        )
    return str(candidate)


def _host_addresses(
    b: _Builder, host: dict[str, Any], guests: dict[str, dict[str, Any]], tag_to_name: dict[str, str]
) -> None:
    """Gateways of the NAT and routed networks, and the NAT network's DHCP reservations."""
    name_to_tag = {name: tag for tag, name in tag_to_name.items()}
    guest_ips: dict[str, tuple[str, str, Resource | None]] = {}
    reservations: list[dict[str, str]] = []
    reserved: dict[str, tuple[str, str, Resource | None]] = {}
    nat_net = ipaddress.ip_network(host["nat_subnet"])
    for name, guest in guests.items():
        tag = name_to_tag[name]
        for vif in guest["vifs"]:
            if vif["ip"] is None:
                continue
            ip_name = f"ip_{tag}_{vif['tag']}"
            ip_res = b.get(ip_name)
            guest_ips.setdefault(vif["ip"], (name, vif["tag"], ip_res))
            if vif["nettype"] != "nat" or vif["mac"] is None or not host["nat_network"]:
                continue
            if ipaddress.ip_address(vif["ip"]) not in nat_net:
                b.warn(
                    ip_res,
                    ip_name,
                    f"NAT address {vif['ip']} is outside the NAT subnet "
                    f"{host['nat_subnet']} (xen.natsubnet): no DHCP reservation",
                )
                continue
            if vif["ip"] in reserved:
                other = reserved[vif["ip"]]
                b.error(
                    ip_res,
                    ip_name,
                    f"NAT address {vif['ip']} is already reserved for guest "
                    f"{other[0]!r} vif {other[1]!r} ({_where(other[2], 'guest')})",
                )
                continue
            reserved[vif["ip"]] = (name, vif["tag"], ip_res)
            reservations.append({"mac": vif["mac"], "ip": vif["ip"], "name": name})
    host["nat_gateway"] = _gateway(b, "nat", host["nat_subnet"], guest_ips)
    host["nat_address"] = f"{host['nat_gateway']}/{nat_net.prefixlen}"
    host["nat_dhcp_hosts"] = sorted(reservations, key=lambda item: item["mac"])
    host["route_gateway"] = host["route_address"] = None
    if host["route_subnet"]:
        host["route_gateway"] = _gateway(b, "route", host["route_subnet"], guest_ips)
        prefix = ipaddress.ip_network(host["route_subnet"]).prefixlen
        host["route_address"] = f"{host['route_gateway']}/{prefix}"


_RESOURCE_OF = {"autostart": "boot", "profile_url": "profileurl", "boot_order": "bootorder"}
_DISK_RESOURCE_OF = {
    "path": "diskpath",
    "name": "diskname",
    "type": "disktype",
    "size_gb": "disksize",
    "format": "diskformat",
}


def _resource_of(b: _Builder, tag: str, guest: dict[str, Any], parameter: str) -> str:
    """The resource that set ``parameter`` (``memory``, ``vifs[0].bridge``) of guest ``tag``:
    its own, else a group's, else the list that declares the disk, vif or guest."""
    item = re.match(r"^(disks|vifs)\[(\d+)\]\.(\w+)", parameter)
    if item:
        kind, key = item.group(1), item.group(3)
        item_tag = guest[kind][int(item.group(2))].get("tag")
        res = _DISK_RESOURCE_OF.get(key, key) if kind == "disks" else key
        names = [f"{res}_{tag}_{item_tag}", f"{res}_{tag}"]
        if kind == "disks" and key == "path":
            names += [f"diskname_{tag}_{item_tag}", f"diskname_{tag}"]
        names += [f"group{key}_{group}" for group in guest["groups"]] + [f"{kind}_{tag}"]
    else:
        key = re.split(r"[.\[]", parameter)[0]
        names = [f"{_RESOURCE_OF.get(key, key)}_{tag}"] + [f"group{key}_{group}" for group in guest["groups"]]
    for name in names:
        res = b.res.get(name)
        if res is not None and res.value is not None and str(res.value).strip():
            return name
    return "virtualmachines"


def _meets_schema(b: _Builder, tag: str, guest: dict[str, Any]) -> bool:
    """Hold the built guest to the schema the modules apply: what a module would refuse
    (a 16-character bridge, a control character, memory out of range) is an error here,
    at the resource that set it."""
    problems = guest_problems(guest)
    for parameter, problem in problems:
        name = _resource_of(b, tag, guest, parameter)
        b.error(b.get(name), name, f"{parameter}: {problem}")
    return not problems


@dataclass
class _Claims:
    """What a host's guests use that only one of them may: names, UUIDs, MACs, disk paths."""

    names: dict[str, str] = field(default_factory=dict)  # guest name -> tag
    uuids: dict[str, str] = field(default_factory=dict)
    macs: dict[str, str] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)

    def claim(self, b: _Builder, tag: str, guest: dict[str, Any], origin: Resource | None, origin_key: str) -> bool:
        """Record ``guest``'s claims; a UUID, MAC or disk path already taken is an error, a
        name already taken too, and then the guest is left out (False)."""
        name = guest["name"]
        if name in self.names:
            b.error(
                origin, origin_key, f"guest name {name!r} is already used by guest {self.names[name]!r} on this host"
            )
            return False
        if guest["uuid"] is not None:
            if guest["uuid"] in self.uuids:
                b.error(
                    b.get(f"uuid_{tag}"),
                    f"uuid_{tag}",
                    f"UUID {guest['uuid']} is already used by guest {self.uuids[guest['uuid']]!r}",
                )
            self.uuids[guest["uuid"]] = name
        for vif in guest["vifs"]:
            if vif["mac"] is not None:
                if vif["mac"] in self.macs:
                    b.error(
                        b.get(f"mac_{tag}_{vif['tag']}"),
                        f"mac_{tag}_{vif['tag']}",
                        f"MAC {vif['mac']} is already used by {self.macs[vif['mac']]}",
                    )
                self.macs[vif["mac"]] = f"{name} {vif['tag']}"
        for disk in guest["disks"]:
            if disk["path"] in self.paths and self.paths[disk["path"]] != name:
                b.error(
                    b.get(f"disks_{tag}"),
                    f"disks_{tag}",
                    f"disk path {disk['path']} is already used by guest {self.paths[disk['path']]!r}",
                )
            self.paths[disk["path"]] = name
        self.names[name] = tag
        return True


def _warn_unused(b: _Builder) -> None:
    """A per-tag resource whose tag names nothing of this host is a warning (a typo, usually)."""
    for name in sorted(set(b.res) - b.used):
        if _TAGGED_RE.match(name) and b.get(name) is not None:
            b.warn(
                b.res[name],
                name,
                "not used: its tag names no guest, disk, vif, group or bridge of this host "
                "(check xen.virtualmachines, xen.virtualgroup, xen.bridgeinterfaces and the "
                "disks_/vifs_ lists), or a per-disk resource overrides it for every disk",
            )


def _add_groups(model: HostModel, host: dict[str, Any], groups: list[_Group], tag_to_name: dict[str, str]) -> None:
    """The virtual groups: members by guest name in ``model.groups``, settings in ``xen_host.groups``."""
    for group in groups:
        members = [tag_to_name[m] for m in group.members]
        model.groups[group.name] = members
        entry: dict[str, Any] = {"members": members}
        for key in GROUP_KEYS[1:]:
            entry[key] = group.values[key][0] if key in group.values else None
        host["groups"][group.name] = entry


def build_host(profile: Profile, access: HostAccess | None = None) -> HostModel:
    """Build the model of one profile; raise :class:`ModelErrors` listing every problem.
    ``access``: what guests may reach on the host (the inventory's ``host_access`` option;
    default: the modules' defaults)."""
    components = str(profile.value("profile", "components", "") or "").split()
    model = HostModel(name=profile.name, path=profile.path, resources=profile.plain())
    if COMPONENT not in components:
        return model
    b = _Builder(profile, access if access is not None else host_access_from_params({}))
    host = _host_settings(b)
    guest_tags, vm_res = b.tags("virtualmachines")
    groups = _read_groups(b, guest_tags)
    resolver = _Resolver(b, groups)
    claims = _Claims()
    for tag in guest_tags:
        member_of = [g.name for g in groups if tag in g.members]
        guest = _guest(b, resolver, tag, member_of, host, vm_res)
        if guest is None or not _meets_schema(b, tag, guest):
            continue
        origin_key = f"name_{tag}" if b.get(f"name_{tag}") is not None else "virtualmachines"
        origin = b.get(origin_key)
        if not claims.claim(b, tag, guest, origin, origin_key):
            continue
        model.guests[guest["name"]] = guest
        model.origins[guest["name"]] = (_where(origin, profile.path), origin_key)
    tag_to_name = {tag: name for name, tag in claims.names.items()}
    _host_addresses(b, host, model.guests, tag_to_name)
    if b.errors:
        raise ModelErrors(b.errors)
    _warn_unused(b)
    _add_groups(model, host, groups, tag_to_name)
    host["guests"] = list(model.guests)
    model.is_hypervisor = True
    model.xen_host = host
    model.warnings = b.warnings
    return model


#: an inventory host name made from a profile's file name: what Ansible host patterns accept
_HOST_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$")


def _origin_error(origin: str, key: str, problem: str) -> LcfgError:
    file, _sep, line = origin.rpartition(":")
    return LcfgError(
        problem, file=file or origin, line=int(line) if line.isdigit() else None, resource=f"{COMPONENT}.{key}"
    )


def _name_errors(profile: BuiltProfile, hosts: dict[str, str]) -> list[LcfgError]:
    """Host, guest and group names that would break the inventory.

    ``hosts``: every inventory host name of the site -> the profile defining it. A virtual
    group named like a host is the group's profile's error: a profile cannot knock another
    host out of the inventory by naming a group after it.
    """
    errors: list[LcfgError] = []
    host = profile.name
    reserved = ", ".join(RESERVED_GROUPS)
    if not _HOST_NAME_RE.match(host):
        errors.append(
            LcfgError(
                f"host name {excerpt(host)} (from the profile's file name or profile.node) is not a "
                "valid inventory name: letters, digits, '_', '.', '-', starting with a letter or "
                "digit; rename the profile",
                file=profile.path,
            )
        )
    elif host in RESERVED_GROUPS:
        errors.append(
            LcfgError(
                f"host name {host!r} is a group name of the inventory ({reserved}); rename the profile",
                file=profile.path,
            )
        )
    for name, (origin, key) in profile.origins.items():
        if name in RESERVED_GROUPS:
            errors.append(
                _origin_error(
                    origin, key, f"guest name {name!r} is a group name of the inventory ({reserved}); rename the guest"
                )
            )
    vg_file, vg_line = profile.group_location
    for group in profile.groups:
        problem = None
        if group[0].isdigit():  # Ansible group names are identifiers
            problem = f"group name {group!r} starts with a digit; Ansible group names must start with a letter or '_'"
        elif group in hosts:
            problem = f"group name {group!r} is also a host name (defined by profile {hosts[group]}); rename the group"
        if problem:
            errors.append(
                LcfgError(problem, file=vg_file or profile.path, line=vg_line, resource=f"{COMPONENT}.virtualgroup")
            )
    return errors


def _claim_errors(
    built: list[BuiltProfile], claims: dict[str, list[tuple[int, str, str, str]]]
) -> dict[int, list[LcfgError]]:
    """Inventory names claimed more than once -> errors per profile (index into ``built``).

    No name is "first come, first served" (the order of files would let one profile take
    another's name). A host name comes from the profile's file path or URL (chosen by the
    site), a guest name from inside a profile: a guest named like a host is its own profile's
    error; a name two hosts, or guests of two profiles, claim is an error in each of them.
    """
    errors: dict[int, list[LcfgError]] = {}
    for name, owners in claims.items():
        hosts = [c for c in owners if c[1] == "host"]
        guests = [c for c in owners if c[1] == "guest"]
        if len(hosts) > 1:
            for index, _kind, where, _key in hosts:
                others = ", ".join(c[2] for c in hosts if c[0] != index)
                errors.setdefault(index, []).append(
                    LcfgError(
                        f"host name {name!r} is also the host name of profile {others}: inventory "
                        "names must be unique across the site, so neither is used; rename one of the "
                        "files",
                        file=where,
                    )
                )
        if hosts:
            for index, _kind, where, key in guests:
                host_index, host_where = hosts[0][0], hosts[0][2]
                whose = ("this host profile " if host_index == index else "profile ") + host_where
                errors.setdefault(index, []).append(
                    _origin_error(
                        where,
                        key,
                        f"guest name {name!r} at {where} is the host name of {whose}; "
                        "guest names are inventory host names and must be unique across the site",
                    )
                )
        elif len({c[0] for c in guests}) > 1:
            for index, _kind, where, key in guests:
                others = ", ".join(f"{c[2]} (host {built[c[0]].name})" for c in guests if c[0] != index)
                errors.setdefault(index, []).append(
                    _origin_error(
                        where,
                        key,
                        f"guest name {name!r} at {where} is also defined by {others}; guest "
                        "names are inventory host names and must be unique across the site, so "
                        "neither profile is used",
                    )
                )
    return errors


def _guest_files(
    profile: Profile, model: HostModel
) -> Iterable[tuple[str, str, str, str, str, str | None, int | None]]:
    """(guest, use, path, resource name, where, file, line) of every file a guest of ``model`` names:
    ``use`` is "disk", "kernel", "ramdisk", "cdrom" or "template"."""
    for name, guest in model.guests.items():
        key = model.origins[name][1]
        tag = key[len("name_") :] if key.startswith("name_") else name
        for disk in guest["disks"]:
            if disk["type"] != "image":
                continue
            names = [f"{res}_{tag}_{disk['tag']}" for res in ("diskpath", "diskname")]
            names += [f"{res}_{tag}" for res in ("diskpath", "diskname")] + [f"disks_{tag}"]
            res_name = next((n for n in names if profile.get(COMPONENT, n) is not None), names[-1])
            yield _file_use(profile, name, "disk", disk["path"], res_name)
        for use in ("kernel", "ramdisk", "cdrom", "template"):
            if guest.get(use):
                yield _file_use(profile, name, use, guest[use], f"{use}_{tag}")


def _file_use(
    profile: Profile, guest: str, use: str, path: str, res_name: str
) -> tuple[str, str, str, str, str, str | None, int | None]:
    res = profile.get(COMPONENT, res_name)
    file, line = _location(res)
    return guest, use, path, res_name, _where(res, profile.path), file, line


def _shared_file_errors(built: list[BuiltProfile]) -> dict[int, list[LcfgError]]:
    """A guest may not reach a template of the site or another guest's disk image.

    A file that is a template somewhere and a guest's disk, kernel or ramdisk elsewhere is an
    error in every guest naming it: the inventory cannot tell which side is the site's (a
    template set to a guest's image clones that guest's data; a disk set to a template
    poisons every later clone), so neither is used. A kernel or ramdisk that is another
    guest's disk image on the same hypervisor is the booting guest's error. (Two guests of one
    hypervisor with one disk image are build_host's error.)
    """
    uses: dict[str, list[tuple[int, str, str, str, str, str | None, int | None]]] = {}
    for index, profile in enumerate(built):
        if profile.data is None:
            continue
        for guest, use, path, res_name, where, file, line in profile.files:
            uses.setdefault(path, []).append((index, guest, use, where, res_name, file, line))
    errors: dict[int, list[LcfgError]] = {}
    for path, users in uses.items():
        has_template = any(u[2] == "template" for u in users)
        for index, guest, use, _origin, res_name, file, line in users:
            if has_template and any(u[2] != "template" or use != "template" for u in users if u[1:3] != (guest, use)):
                others = "; ".join(f"{u[2]} of guest {u[1]!r} ({u[3]})" for u in users if u[1:3] != (guest, use))
                problem = (
                    f"{use} {path} is also the {others}: a template is only ever read to make "
                    "new images, never a guest's disk, kernel or ramdisk (every profile naming it is left out)"
                )
            else:
                borrowed = [u for u in users if u[0] == index and u[1] != guest and u[2] == "disk"]
                if use not in ("kernel", "ramdisk", "cdrom") or not borrowed:
                    continue
                problem = (
                    f"{use} {path} is the disk image of guest {borrowed[0][1]!r} ({borrowed[0][3]}): "
                    "a guest boots only its own files; choose another path"
                )
            errors.setdefault(index, []).append(
                LcfgError(problem, file=file or built[index].path, line=line, resource=f"{COMPONENT}.{res_name}")
            )
    return errors


def build_profile(profile: Profile, access: HostAccess | None = None) -> BuiltProfile:
    """``build_host`` of one profile, its errors kept rather than raised (a model bug too: it
    must not take every other profile down), with what ``build_site`` checks across profiles."""
    try:
        model = build_host(profile, access)
    except ModelErrors as exc:
        return BuiltProfile(profile.name, profile.path, errors=list(exc.errors))
    except Exception as exc:  # pylint: disable=broad-exception-caught
        error = LcfgError(f"cannot model the profile: {type(exc).__name__}: {excerpt(exc, 200)}", file=profile.path)
        return BuiltProfile(profile.name, profile.path, errors=[error], keep=False)
    return BuiltProfile(
        profile.name,
        profile.path,
        data=model.to_data(),
        origins=dict(model.origins),
        groups=list(model.groups),
        group_location=_location(profile.get(COMPONENT, "virtualgroup")),
        files=list(_guest_files(profile, model)),
        model=model,
    )


def build_site(
    profiles: Iterable[Profile | BuiltProfile],
    access: HostAccess | None = None,
    unreadable: Iterable[tuple[str, str]] = (),
) -> Site:
    """Build every profile; names are checked before anything is added.

    No host or guest may take a reserved group name, no virtual group the name of any host of
    the site, and no inventory name is used twice (``_claim_errors``: nothing depends on the
    order of the profiles). ``profiles`` may hold profiles already built on their own
    (``build_profile``, kept from an earlier read). ``unreadable``: (host name, path) of the
    profiles that could not be read; their names stay claimed too.
    """
    site = Site()
    built = [BuiltProfile(name, path, unreadable=True) for name, path in unreadable]
    built += [p if isinstance(p, BuiltProfile) else build_profile(p, access) for p in profiles]
    hosts: dict[str, str] = {}  # every inventory host name -> the profile defining it
    #: inventory name -> (index into built, "host"/"guest", where, resource) of each claim;
    #: a rejected profile's host name stays claimed, so a guest elsewhere cannot take it
    claims: dict[str, list[tuple[int, str, str, str]]] = {}
    for index, profile in enumerate(built):
        claims.setdefault(profile.name, []).append((index, "host", profile.path, ""))
        if profile.data is None:
            continue
        for name, (origin, key) in profile.origins.items():
            claims.setdefault(name, []).append((index, "guest", origin, key))
        for name in [profile.name, *profile.origins]:
            hosts.setdefault(name, profile.path)
    duplicates = _claim_errors(built, claims)
    for index, errors in _shared_file_errors(built).items():
        duplicates.setdefault(index, []).extend(errors)
    for index, profile in enumerate(built):
        if profile.unreadable:  # (its own error is the reader's)
            continue
        site.built.append(profile)
        if profile.data is None:
            site.rejected.setdefault(profile.name, []).extend(profile.errors + duplicates.get(index, []))
            continue
        errors = _name_errors(profile, hosts) + duplicates.get(index, [])
        if errors:
            site.rejected.setdefault(profile.name, []).extend(errors)
            continue
        if profile.model is not None:
            site.hosts[profile.name] = profile.model
        site.data.append(profile.data)
        site.warnings.extend(profile.data.get("warnings") or [])
    return site
