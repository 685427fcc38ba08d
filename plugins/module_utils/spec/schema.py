# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The guest schema: every field of a guest declared once.

A :class:`Field` holds a field's type, bounds, choices, value rule (``check``), whether a
running guest takes a change live, whether it exists only in the ``xen_domain`` hostvar
(``hostvar_only``) and which virtual-group resource may set it (``group``). Derived from it:

- the argument specs (``argspec()``, used by ``spec.argspec``: xen_domain);
- the inventory's last check of every guest it builds (``guest_problems``; ``plugin_utils.model`` turns
  each problem into ``file:line`` of the resource), so a profile cannot carry a value a
  module would refuse;
- the modules' structural check (``check_guest``, first step of ``domain.desired.validate_spec``):
  types, bounds, control characters, list sizes, before any value reaches lxml or libvirt;
- the check of one guest given as data (``check_guest_item``, a xen_guests ``guests`` item):
  unknown keys named, the hostvar-only keys dropped, the operation defaults filled in;
- the group keys (``GROUP_KEYS``, ``VIF_GROUP_KEYS``) and the value rules shared by
  ``plugin_utils.model``, ``domain.group`` and ``domain.desired`` (``bridge_name``, ``network_name``,
  ``vif_script``).

``tests/unit/plugins/module_utils/spec/test_schema.py`` proves the ``lcfg.xen.guest`` doc fragment
documents exactly these options (ansible-doc reads fragments as static YAML).

Pure: no Ansible, no libvirt, no lxml.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import ValidationError
from ansible_collections.lcfg.xen.plugins.module_utils.common.validate import (
    IFNAME_MAX,
    canonical_guest_type,
    parse_bool,
    parse_cpuset,
    parse_int,
    valid_disk_name,
    valid_guest_name,
    valid_mac,
    valid_uuid,
)

__all__ = [
    "Field",
    "GUEST",
    "DISK",
    "VIF",
    "EXTRA",
    "OPERATION",
    "GROUP_KEYS",
    "VIF_GROUP_KEYS",
    "LIVE_KEYS",
    "HOSTVAR_ONLY_KEYS",
    "MAX_MEMORY_MIB",
    "MAX_VCPUS",
    "MAX_DISKS",
    "MAX_DISK_GB",
    "MAX_PARTITION",
    "MAX_VIFS",
    "BRIDGE_RE",
    "PROFILE_IFNAME_RE",
    "URL_RE",
    "NETWORK_RE",
    "SCRIPT_RE",
    "MODEL_RE",
    "DEVICE_RE",
    "argspec",
    "check_text",
    "extra_knobs",
    "scalar_problem",
    "bridge_name",
    "network_name",
    "vif_script",
    "guest_ip",
    "BOOT_DEVICES",
    "FIRMWARES",
    "boot_device",
    "guest_problems",
    "check_guest",
    "check_guest_item",
]

#: 16 TiB, Xen's and QEMU's ceiling for one guest; libvirt counts KiB in 64 bits
MAX_MEMORY_MIB = 16 * 1024 * 1024
#: QEMU's and Xen's largest vcpu count
MAX_VCPUS = 4096
#: device names run xvda..xvdzz (one or two letters): 26 + 26 * 26
MAX_DISKS = 702
MAX_VIFS = 256
#: 1 PiB
MAX_DISK_GB = 1024 * 1024
MAX_PARTITION = 1024
MAX_SHUTDOWN_TIMEOUT = 7 * 24 * 3600
#: longest value of a one-line field (PATH_MAX)
MAX_TEXT = 4096
#: longest escape hatch (``extra``) text
MAX_FREE_TEXT = 65536

#: a profile's bridge names: Linux interface names (at most IFNAME_MAX characters) without '+'
BRIDGE_RE = re.compile(rf"^[A-Za-z0-9_.:-]{{1,{IFNAME_MAX}}}\Z")
#: interface and bridge names as the inventory model reads them from a profile (bridge,
#: bridgeif, bridgenetdev, ...): no '+', starting with a letter, digit or '_'; any length
#: (a bridge name Linux refuses gets a derived device)
PROFILE_IFNAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]*$")
NETWORK_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}\Z")
SCRIPT_RE = re.compile(r"^[A-Za-z0-9_./-]+\Z")
MODEL_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}\Z")
DEVICE_RE = re.compile(r"^(xvd|vd|sd|hd)([a-z]{1,2})\Z")
#: a profile URL: http or https with a host
URL_RE = re.compile(r"^https?://[^\s/]+")
_LIFECYCLE = ("destroy", "restart", "preserve", "rename-restart", "coredump-destroy", "coredump-restart")
#: characters an XML 1.0 document cannot hold besides the C0 controls
_NOT_XML = re.compile("[\ud800-\udfff\ufffe\uffff]")


# --------------------------------------------------------------------------- value rules


def check_text(value: str, *, free: bool = False, max_length: int = MAX_TEXT) -> str:
    """``value`` when it has no control character (tab, newline and CR allowed in ``free``
    text), nothing XML cannot carry, and at most ``max_length`` characters."""
    if len(value) > max_length:
        raise ValueError(f"is {len(value)} characters long; at most {max_length} are allowed")
    for char in value:
        if unicodedata.category(char) == "Cc" and not (free and char in "\t\n\r"):
            raise ValueError(f"contains the control character {char!r}")
    if _NOT_XML.search(value):
        raise ValueError("contains a character XML cannot hold (a lone surrogate or U+FFFE/U+FFFF)")
    return value


def bridge_name(value: str) -> str:
    """A Linux bridge device name: 1-15 of letters, digits and ``_.:-``."""
    if not BRIDGE_RE.match(value):
        raise ValueError(
            f"invalid bridge name {value!r}: 1-15 letters, digits, '_', '.', ':' or '-' (Linux allows 15 characters)"
        )
    return value


def network_name(value: str) -> str:
    """A libvirt network name."""
    if not NETWORK_RE.match(value):
        raise ValueError(
            f"invalid libvirt network name {value!r}: up to 64 letters, digits, '_', '.', "
            "'+', '-', starting with a letter or digit"
        )
    return value


def vif_script(value: str) -> str:
    if not SCRIPT_RE.match(value) or ".." in value.split("/"):
        raise ValueError(f"invalid vif script {value!r}: a script name or absolute path")
    return value


def _nic_model(value: str) -> str:
    if not MODEL_RE.match(value):
        raise ValueError(f"invalid NIC model {value!r}")
    return value


def _device(value: str) -> str:
    if not DEVICE_RE.match(value):
        raise ValueError(f"invalid target device {value!r}: use e.g. xvda, vda, sda or hda")
    return value


def _abs_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"path {value!r} must be absolute (start with '/')")
    if ".." in value.split("/"):
        raise ValueError(f"path {value!r} may not contain '..'")
    return value


#: what a guest may boot from (``boot_order``), in the words of the profile resource
BOOT_DEVICES = ("network", "disk", "cdrom")
FIRMWARES = ("bios", "uefi")


def boot_device(value: str) -> str:
    """One entry of ``boot_order``: network, disk or cdrom."""
    if value not in BOOT_DEVICES:
        raise ValueError(f"unknown boot device {value[:40]!r}: use network, disk or cdrom")
    return value


def _abs_path_or_empty(value: str) -> str:
    """Direct-boot paths: the empty string removes them."""
    return value if value == "" else _abs_path(value)


def guest_ip(value: str) -> str:
    """A guest vif's address (the inventory's ansible_host): an IP without zone index that is
    not loopback, unspecified, multicast or link-local."""
    try:
        addr = ipaddress.ip_address(value.strip())
    except ValueError:
        raise ValueError(f"invalid IP address {value!r}") from None
    if getattr(addr, "scope_id", None):  # Python takes anything after '%' (spaces, '-o ...')
        raise ValueError(f"invalid IP address {value!r}: a zone index ('%...') is not a guest's address")
    mapped = getattr(addr, "ipv4_mapped", None) or addr
    if mapped.is_loopback or mapped.is_unspecified or mapped.is_multicast or mapped.is_link_local:
        # the inventory logs in to a guest at its address: never the host itself or a broadcast
        raise ValueError(f"IP address {value!r} is loopback, unspecified, multicast or link-local: no guest's address")
    return str(addr)


def _cpus(value: str) -> str:
    return value if value.strip() == "" else parse_cpuset(value)


def _url(value: str) -> str:
    if not URL_RE.match(value):
        raise ValueError(f"invalid profile URL {value!r}: expected http:// or https://")
    return value


def extra_knobs(text: str) -> dict:
    """``extra`` text that is not XML: a JSON object when it starts with ``{``, else
    ``key=value`` pairs separated by commas or blanks (``on_crash=preserve, domain_type=qemu``)."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            value = json.loads(stripped)
        except RecursionError:
            raise ValueError("not a valid JSON object: nested too deeply") from None
        except ValueError as exc:
            raise ValueError(f"not a valid JSON object: {exc}") from None
        if not isinstance(value, dict):
            raise ValueError("a JSON value must be an object")
        return value
    out: dict = {}
    for item in re.split(r"[,\s]+", stripped):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"cannot read {item!r}: write key=value pairs, a JSON object or XML")
        out[key.strip()] = value.strip()
    return out


# --------------------------------------------------------------------------- declarations


class Field:
    """One option of a guest (see the module docstring)."""

    def __init__(
        self,
        kind: str,
        *,
        required: bool = False,
        default: Any = None,
        choices: tuple | None = None,
        minimum: float | None = None,
        maximum: float | None = None,
        elements: str | None = None,
        options: dict[str, Field] | None = None,
        check: Callable[[str], Any] | None = None,
        live: bool = False,
        hostvar_only: bool = False,
        group: str | None = None,
        free_text: bool = False,
        max_length: int = MAX_TEXT,
        text_form: bool = False,
        max_items: int | None = None,
    ) -> None:
        self.kind = kind
        self.required = required
        self.default = default
        self.choices = choices
        self.minimum = minimum
        self.maximum = maximum
        self.elements = elements
        self.options = options
        self.check = check
        #: a running guest takes a change at once (else at its next restart)
        self.live = live
        #: in the ``xen_domain`` hostvar (disk handling, inventory) but no xen_domain option
        self.hostvar_only = hostvar_only
        #: the virtual-group setting (xen_group option, LCFG ``group<key>_$``) that may set it
        self.group = group
        self.free_text = free_text
        self.max_length = max_length
        #: also accepted as text (the LCFG resource) by xen_guests: ``extra``, ``extra.xml``
        self.text_form = text_form
        self.max_items = max_items

    def argspec(self) -> dict:
        """This field as an Ansible argument spec entry."""
        spec: dict = {"type": self.kind}
        if self.required:
            spec["required"] = True
        if self.elements:
            spec["elements"] = self.elements
        if self.choices:
            spec["choices"] = list(self.choices)
        if self.default is not None:
            spec["default"] = self.default
        if self.options:
            spec["options"] = argspec(self.options)
        return spec


def argspec(fields: dict[str, Field]) -> dict:
    """The argument spec of ``fields`` (hostvar-only fields left out)."""
    return {name: field.argspec() for name, field in fields.items() if not field.hostvar_only}


DISK: dict[str, Field] = {
    "path": Field("str", required=True, check=_abs_path),
    "tag": Field("str"),
    "name": Field("str", check=valid_disk_name),
    "type": Field("str", choices=("image", "phy"), default="image"),
    "format": Field("str", choices=("raw", "qcow2")),
    "device": Field("str", check=_device),
    "size_gb": Field("float", minimum=0, maximum=MAX_DISK_GB),
}

VIF: dict[str, Field] = {
    "mac": Field("str", check=valid_mac),
    "tag": Field("str"),
    "ip": Field("str", check=guest_ip),
    "nettype": Field("str", choices=("bridge", "nat", "route"), default="bridge", group="nettype"),
    "bridge": Field("str", check=bridge_name, group="bridge"),
    "network": Field("str", check=network_name, group="network"),
    "script": Field("str", check=vif_script, group="script"),
    "model": Field("str", check=_nic_model),
}

EXTRA: dict[str, Field] = {
    "on_poweroff": Field("str", choices=_LIFECYCLE),
    "on_reboot": Field("str", choices=_LIFECYCLE),
    "on_crash": Field("str", choices=_LIFECYCLE),
    "domain_type": Field("str", choices=("kvm", "qemu", "xen", "lxc", "test")),
    "xml": Field("list", elements="str", free_text=True, max_length=MAX_FREE_TEXT, text_form=True, max_items=64),
}

GUEST: dict[str, Field] = {
    "name": Field("str", required=True, check=valid_guest_name),
    "uuid": Field("str", check=valid_uuid),
    "type": Field(
        "str", choices=("pv", "hvm", "pvh", "paravm", "para", "container", "lxc"), check=canonical_guest_type
    ),
    "memory": Field("int", minimum=16, maximum=MAX_MEMORY_MIB, live=True, group="memory"),
    "maxmem": Field("int", minimum=16, maximum=MAX_MEMORY_MIB, group="maxmem"),
    "vcpus": Field("int", minimum=1, maximum=MAX_VCPUS, live=True, group="vcpus"),
    "maxvcpus": Field("int", minimum=1, maximum=MAX_VCPUS, group="maxvcpus"),
    "cpus": Field("str", check=_cpus, live=True, group="cpus"),
    "autostart": Field("bool", live=True),
    "disks": Field("list", elements="dict", options=DISK, max_items=MAX_DISKS),
    "vifs": Field("list", elements="dict", options=VIF, max_items=MAX_VIFS),
    "template": Field("str", check=_abs_path, hostvar_only=True),
    "profile_url": Field("str", check=_url, hostvar_only=True),
    "partition": Field("int", minimum=1, maximum=MAX_PARTITION, hostvar_only=True),
    "groups": Field("list", elements="str", hostvar_only=True),
    "kernel": Field("str", check=_abs_path_or_empty),
    "ramdisk": Field("str", check=_abs_path_or_empty),
    "cmdline": Field("str"),
    "bootloader": Field("str"),
    "boot_order": Field("list", elements="str", check=boot_device, max_items=len(BOOT_DEVICES)),
    "firmware": Field("str", choices=FIRMWARES),
    "cdrom": Field("str", check=_abs_path_or_empty),
    "extra": Field("dict", options=EXTRA, free_text=True, max_length=MAX_FREE_TEXT, text_form=True),
}

OPERATION: dict[str, Field] = {
    "state": Field("str", choices=("present", "running", "stopped", "absent"), default="present"),
    "shutdown_timeout": Field("int", default=120, minimum=0, maximum=MAX_SHUTDOWN_TIMEOUT),
    "force_stop": Field("bool", default=False),
    "remove_disks": Field("bool", default=False),
}

#: guest fields a virtual group may set, and its per-vif fields
GROUP_KEYS = tuple(name for name, field in GUEST.items() if field.group)
VIF_GROUP_KEYS = tuple(name for name, field in VIF.items() if field.group)
#: fields a running guest takes at once
LIVE_KEYS = tuple(name for name, field in GUEST.items() if field.live)
HOSTVAR_ONLY_KEYS = tuple(name for name, field in GUEST.items() if field.hostvar_only)


# --------------------------------------------------------------------------- checking

_INT_TEXT = re.compile(r"^\s*[-+]?[0-9]{1,20}\s*$")


def scalar_problem(value: Any, field: Field) -> str | None:
    """The problem of one scalar value, or None."""
    kind = field.kind
    if kind == "bool":
        if isinstance(value, bool):
            return None
        if isinstance(value, str):
            try:
                parse_bool(value)
                return None
            except ValueError as exc:
                return str(exc)
        return f"must be a boolean, got {type(value).__name__}"
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            return f"must be an integer, got {type(value).__name__}"
        if isinstance(value, str):
            if not _INT_TEXT.match(value):
                return f"must be an integer, got {value[:40]!r}"
            value = int(value)
        return _bounds(value, field)
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            return f"must be a number, got {type(value).__name__}"
        try:
            number = float(value)
        except (ValueError, OverflowError):
            return f"must be a number, got {str(value)[:40]!r}"
        if not math.isfinite(number):
            return f"must be a finite number, got {value!r}"
        return _bounds(number, field)
    # str: scalars are taken as their text (YAML may give a number); containers are not
    if isinstance(value, (list, dict, tuple, set)):
        return f"must be a string, got {type(value).__name__}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a string, got {value!r}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**20:
        return "must be a string, got a very large number"
    text = str(value)
    try:
        check_text(text, free=field.free_text, max_length=field.max_length)
    except ValueError as exc:
        return str(exc)
    if field.choices and field.check is None and text not in field.choices:
        return f"unknown value {text!r}: use one of {', '.join(field.choices)}"
    if field.check is not None:  # a check of its own also decides the spellings it takes
        try:
            field.check(text)
        except ValueError as exc:
            return str(exc)
    return None


def _bounds(number: float, field: Field) -> str | None:
    if field.minimum is not None and number < field.minimum:
        return f"must be at least {field.minimum}, got {number}"
    if field.maximum is not None and number > field.maximum:
        return f"must be at most {field.maximum}, got {number}"
    return None


def _problems(value: Any, field: Field, path: str) -> Iterator[tuple[str, str]]:
    if value is None:
        return
    if field.kind == "list":
        if field.text_form and isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            yield path, f"must be a list, got {type(value).__name__}"
            return
        if field.max_items is not None and len(value) > field.max_items:
            yield path, f"has {len(value)} items; at most {field.max_items} are allowed"
            return
        element = Field(
            field.elements or "str", free_text=field.free_text, max_length=field.max_length, check=field.check
        )
        for index, item in enumerate(value):
            if field.options is not None:
                if not isinstance(item, dict):
                    yield f"{path}[{index}]", f"must be a dict, got {type(item).__name__}"
                    continue
                yield from _dict_problems(item, field.options, f"{path}[{index}].")
            elif item is None:
                yield f"{path}[{index}]", "must not be null"
            elif field.text_form and not isinstance(item, str):  # XML fragments are text
                yield f"{path}[{index}]", f"must be a string, got {type(item).__name__}"
            else:
                problem = scalar_problem(item, element)
                if problem:
                    yield f"{path}[{index}]", problem
        return
    if field.kind == "dict":
        if field.text_form and isinstance(value, str):
            problem = scalar_problem(value, Field("str", free_text=field.free_text, max_length=field.max_length))
            if problem or value.strip().startswith("<") or not value.strip():
                if problem:  # XML is read (with lxml) by domain.desired and common.host_access
                    yield path, problem
                return
            try:
                value = extra_knobs(value)
            except ValueError as exc:
                yield path, str(exc)
                return
        if not isinstance(value, dict):
            yield path, f"must be a dict, got {type(value).__name__}"
            return
        unknown = sorted(set(value) - set(field.options or {}))
        if field.options and unknown:
            yield f"{path}.{unknown[0]}", f"unknown key; valid keys are {', '.join(field.options)}"
            return
        yield from _dict_problems(value, field.options or {}, f"{path}.")
        return
    problem = scalar_problem(value, field)
    if problem:
        yield path, problem


def _dict_problems(data: dict, fields: dict[str, Field], prefix: str) -> Iterator[tuple[str, str]]:
    for name, field in fields.items():
        if field.required and data.get(name) is None:
            yield f"{prefix}{name}", "is required"
            continue
        yield from _problems(data.get(name), field, f"{prefix}{name}")


def guest_problems(guest: dict) -> list[tuple[str, str]]:
    """Every ``(parameter, problem)`` of one guest dict against :data:`GUEST` (unknown keys
    are for the callers' own checks); ``parameter`` is like ``vifs[0].bridge``."""
    if not isinstance(guest, dict):
        return [("", f"must be a dict, got {type(guest).__name__}")]
    problems = list(_dict_problems(guest, GUEST, ""))
    if not problems:
        problems = list(_vif_problems(guest.get("vifs") or []))
    return problems


def _vif_problems(vifs: list) -> Iterator[tuple[str, str]]:
    """A vif joins either a bridge (nettype bridge) or a libvirt network (nat, route)."""
    for index, vif in enumerate(vifs):
        nettype = vif.get("nettype") or "bridge"
        if nettype == "bridge" and vif.get("network") is not None:
            yield f"vifs[{index}].network", "'network' is for nettype nat or route; a bridge vif uses 'bridge'"
        if nettype != "bridge" and vif.get("bridge") is not None:
            yield f"vifs[{index}].bridge", f"'bridge' is for nettype bridge; a {nettype} vif uses 'network'"


def check_guest(params: dict, prefix: str = "", fields: dict[str, Field] | None = None) -> None:
    """Raise ValidationError naming the first parameter of ``params`` (a guest) that breaks
    the schema; ``fields`` defaults to :data:`GUEST` plus :data:`OPERATION`."""
    fields = fields if fields is not None else dict(GUEST, **OPERATION)
    if not isinstance(params, dict):
        raise ValidationError(prefix.rstrip(".") or "guest", f"must be a dict, got {type(params).__name__}")
    for parameter, problem in _dict_problems(params, fields, ""):
        raise ValidationError(f"{prefix}{parameter}", problem)


def _check_keys(item: object, allowed: Iterable[str], where: str, extra: tuple = ()) -> dict:
    if not isinstance(item, dict):
        raise ValidationError(where, f"must be a dict, got {type(item).__name__}")
    unknown = sorted(set(item) - set(allowed) - set(extra))
    if unknown:
        raise ValidationError(
            f"{where}.{unknown[0]}" if where else unknown[0],
            f"unknown option; valid options are {', '.join(sorted(allowed))}",
        )
    return item


def check_guest_item(item: object, prefix: str) -> dict:
    """Check one guest dict given as data (a xen_guests ``guests`` item) against the options
    of xen_domain (:data:`GUEST` without the hostvar-only fields, and :data:`OPERATION`).

    Unknown keys fail (naming them); the hostvar-only keys are dropped; operation options get
    their defaults; booleans and integers written as strings are converted.
    """
    where = prefix.rstrip(".")
    options = [name for name in dict(GUEST, **OPERATION) if name not in HOSTVAR_ONLY_KEYS]
    data = dict(_check_keys(item, options, where, HOSTVAR_ONLY_KEYS))
    for key in HOSTVAR_ONLY_KEYS:
        data.pop(key, None)
    check_guest(data, prefix)  # types and sizes first: the loops below walk the lists
    for key, option in OPERATION.items():
        if data.get(key) is None:
            data[key] = option.default
    for key in ("autostart", "force_stop", "remove_disks"):
        if data.get(key) is not None:
            try:
                data[key] = parse_bool(data[key])
            except ValueError as exc:
                raise ValidationError(f"{prefix}{key}", str(exc)) from None
    try:
        data["shutdown_timeout"] = parse_int(data["shutdown_timeout"], minimum=0, what="shutdown_timeout")
    except ValueError as exc:
        raise ValidationError(f"{prefix}shutdown_timeout", str(exc)) from None
    states = OPERATION["state"].choices or ()
    if data["state"] not in states:
        raise ValidationError(f"{prefix}state", f"unknown state {data['state']!r}: use one of {', '.join(states)}")
    for key, fields in (("disks", DISK), ("vifs", VIF)):
        for index, sub in enumerate(data.get(key) or []):
            _check_keys(sub, fields, f"{prefix}{key}[{index}]")
    if isinstance(data.get("extra"), dict):  # text is read by domain.desired.parse_extra_text
        _check_keys(data["extra"], EXTRA, f"{prefix}extra")
    return data
