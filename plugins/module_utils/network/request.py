# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""A network request: one network as xen_bridge's parameters give it, validated before anything
is touched (``normalise_request``), in the vocabulary the rest of ``network/`` speaks.

A *request* is ``name``, ``mode`` (``bridge``/``nat``/``route``), ``state``, ``bridge`` (Linux
bridge device), ``netdev``, ``create_netdev``, ``migrate_address``, ``persist``,
``libvirt_network``, ``address`` (``ip/prefix``), ``dhcp_range`` (``{start, end}``),
``dhcp_hosts`` (``[{mac, ip, name}]``), ``tftp_root`` (a host directory dnsmasq serves by TFTP,
``""`` none), ``boot_file`` (the DHCP boot file inside it, ``""`` none), ``autostart``,
``restart``, ``adopt`` and ``vif_script``; ``None`` leaves a value as it is.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import ValidationError
from ansible_collections.lcfg.xen.plugins.module_utils.common.validate import HOSTNAME_RE, valid_guest_name, valid_mac
from ansible_collections.lcfg.xen.plugins.module_utils.network.iproute import valid_ifname
from ansible_collections.lcfg.xen.plugins.module_utils.spec.schema import NETWORK_RE

__all__ = [
    "MODES",
    "DEFAULT_VIF_SCRIPTS",
    "XEN_SCRIPT_DIR",
    "PERSIST_KINDS",
    "CREATE_NETDEV",
    "normalise_request",
    "normalise_requests",
    "check_vif_script",
    "dhcp_host_name",
    "inside_subnet",
]

MODES = ("bridge", "nat", "route")
DEFAULT_VIF_SCRIPTS = {"bridge": "vif-bridge", "nat": "vif-nat", "route": "vif-route"}
XEN_SCRIPT_DIR = "/etc/xen/scripts"
PERSIST_KINDS = ("auto", "ifupdown", "networkd", "none")
CREATE_NETDEV = ("none", "dummy", "veth")


def _param(prefix: str, key: str) -> str:
    return f"{prefix}{key}"


def _address(value: object, parameter: str) -> str:
    text = str(value).strip()
    if "/" not in text:
        raise ValidationError(parameter, f"{text!r} needs a prefix length, e.g. 10.0.0.254/24")
    try:
        iface = ipaddress.ip_interface(text)
    except ValueError as exc:
        raise ValidationError(parameter, f"invalid address {text!r}: {exc}") from None
    if iface.ip == iface.network.network_address and iface.network.prefixlen < iface.max_prefixlen - 1:
        raise ValidationError(
            parameter,
            f"{text!r} is the network address; give the host's own address, "
            f"e.g. {next(iface.network.hosts())}/{iface.network.prefixlen}",
        )
    return f"{iface.ip}/{iface.network.prefixlen}"


def _ip(value: object, parameter: str) -> str:
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        raise ValidationError(parameter, f"invalid IP address {value!r}") from None


def _dhcp_range(value: object, parameter: str) -> dict | None:
    if value is None:
        return None
    if isinstance(value, str):
        start, sep, end = value.partition("-")
        if not sep:
            raise ValidationError(parameter, f"{value!r}: give {{start, end}} or 'start-end'")
        value = {"start": start, "end": end}
    if not isinstance(value, dict) or set(value) - {"start", "end"} or not value.get("start") or not value.get("end"):
        raise ValidationError(parameter, "give both start and end, e.g. {start: 10.0.0.100, end: 10.0.0.200}")
    start = _ip(value["start"], f"{parameter}.start")
    end = _ip(value["end"], f"{parameter}.end")
    if ipaddress.ip_address(start) > ipaddress.ip_address(end):
        raise ValidationError(parameter, f"start {start} is after end {end}")
    return {"start": start, "end": end}


def _dhcp_hosts(
    value: object, parameter: str, address: str | None = None, address_parameter: str = "address"
) -> list | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValidationError(parameter, "must be a list of {mac, ip, name}")
    hosts = []
    macs: dict = {}
    ips: dict = {}
    for index, item in enumerate(value):
        where = f"{parameter}[{index}]"
        if not isinstance(item, dict):
            raise ValidationError(where, "must be a dict with mac, ip and optionally name")
        unknown = set(item) - {"mac", "ip", "name"}
        if unknown:
            raise ValidationError(where, f"unknown keys {sorted(unknown)}; use mac, ip, name")
        if not item.get("mac") or not item.get("ip"):
            raise ValidationError(where, "a DHCP reservation needs both mac and ip")
        try:
            mac = valid_mac(item["mac"])
        except ValueError as exc:
            raise ValidationError(f"{where}.mac", str(exc)) from None
        ip = _ip(item["ip"], f"{where}.ip")
        inside_subnet(ip, address, f"{where}.ip")
        if address is not None and ip == address.split("/")[0]:
            # dnsmasq would hand the host's own address to a guest: two hosts, one address
            raise ValidationError(
                f"{where}.ip",
                f"{ip} is the network's own address ({address_parameter} "
                f"{address}), the guests' gateway: reserve another address "
                f"for {mac} or give the network another address",
            )
        name = dhcp_host_name(item.get("name"), f"{where}.name")
        if mac in macs:
            raise ValidationError(f"{where}.mac", f"{mac} is reserved twice (also {parameter}[{macs[mac]}])")
        if ip in ips:
            raise ValidationError(f"{where}.ip", f"{ip} is reserved twice (also {parameter}[{ips[ip]}])")
        macs[mac] = index
        ips[ip] = index
        hosts.append({"mac": mac, "ip": ip, "name": name})
    return sorted(hosts, key=lambda host: host["mac"])


def dhcp_host_name(value: object, parameter: str) -> str | None:
    """The name a reservation gives dnsmasq: a guest's name when it is a valid DNS host name.
    A valid guest name that is not one (``web_1``, a 64-character label) reserves by MAC and
    IP alone - dnsmasq would refuse it, and rewriting it could collide with another guest."""
    if value is None:
        return None
    name = str(value)
    if HOSTNAME_RE.match(name) and len(name) <= 253:
        return name
    try:
        valid_guest_name(name)
    except ValueError:
        raise ValidationError(parameter, f"invalid host name {name!r}") from None
    return None


def _network_name(value: object, parameter: str) -> str:
    text = "" if value is None else str(value)
    if not NETWORK_RE.match(text):
        raise ValidationError(
            parameter,
            f"invalid network name {text!r}: use letters, digits, '_', '.', '+', '-', "
            "starting with a letter or digit, at most 64 characters",
        )
    return text


def inside_subnet(ip: str, address: str | None, parameter: str) -> None:
    """Refuse ``ip`` outside the subnet of ``address`` (none: anything goes)."""
    if address is None:
        return
    network = ipaddress.ip_interface(address).network
    if ipaddress.ip_address(ip) not in network:
        raise ValidationError(parameter, f"{ip} is outside the network's subnet {network}")


def _name_and_bridge(params: dict, mode: str, prefix: str) -> tuple:
    """(name, bridge device) of a request: a bridge-mode name is the device unless ``bridge`` is given."""
    if not params.get("name"):
        raise ValidationError(_param(prefix, "name"), "a network needs a name")
    name = str(params["name"])
    bridge = params.get("bridge")
    if mode != "bridge":
        _network_name(name, _param(prefix, "name"))
        return name, None if bridge is None else valid_ifname(bridge, _param(prefix, "bridge"))
    if bridge is None:
        if len(name) > 15:
            raise ValidationError(
                _param(prefix, "name"),
                f"{name!r} is {len(name)} characters, too long for a Linux bridge (at most 15): set "
                f"bridge: to a shorter device name (e.g. {re.sub(r'[^A-Za-z0-9]', '', name)[:12]}br) and "
                "libvirt_network: true to keep the long name as the libvirt network guests refer to",
            )
        bridge = valid_ifname(name, _param(prefix, "name"))
    else:
        bridge = valid_ifname(bridge, _param(prefix, "bridge"))
    if params.get("libvirt_network"):
        _network_name(name, _param(prefix, "name"))
    return name, bridge


def _netdev(params: dict, mode: str, bridge: str | None, prefix: str) -> tuple:
    """(netdev, create_netdev) of a request."""
    netdev = params.get("netdev")
    if netdev is not None:
        netdev = valid_ifname(netdev, _param(prefix, "netdev"))
        if netdev == bridge:
            raise ValidationError(_param(prefix, "netdev"), f"{netdev} cannot be enslaved to itself")
    create_netdev = params.get("create_netdev") or "none"
    if create_netdev not in CREATE_NETDEV:
        raise ValidationError(_param(prefix, "create_netdev"), f"use one of {', '.join(CREATE_NETDEV)}")
    if create_netdev != "none" and (mode != "bridge" or netdev is None):
        raise ValidationError(_param(prefix, "create_netdev"), "only applies to mode bridge with a netdev")
    return netdev, create_netdev


def _addressing(params: dict, mode: str, prefix: str) -> tuple:
    """(address, dhcp_range, dhcp_hosts) of a request, DHCP inside the address's subnet."""
    address = params.get("address")
    if address is not None:
        address = _address(address, _param(prefix, "address"))
    dhcp_range = _dhcp_range(params.get("dhcp_range"), _param(prefix, "dhcp_range"))
    dhcp_hosts = _dhcp_hosts(params.get("dhcp_hosts"), _param(prefix, "dhcp_hosts"), address, _param(prefix, "address"))
    if mode == "bridge" and (dhcp_range is not None or dhcp_hosts):
        raise ValidationError(
            _param(prefix, "dhcp_hosts" if dhcp_hosts else "dhcp_range"),
            "DHCP is served on nat and route networks only; a bridge's guests use the LAN's own DHCP server",
        )
    if dhcp_range is not None:
        inside_subnet(dhcp_range["start"], address, _param(prefix, "dhcp_range.start"))
        inside_subnet(dhcp_range["end"], address, _param(prefix, "dhcp_range.end"))
    return address, dhcp_range, dhcp_hosts


_BOOT_FILE_RE = re.compile(r"^[A-Za-z0-9_.+-][A-Za-z0-9_.+/-]{0,254}\Z")


def _network_boot(params: dict, mode: str, prefix: str) -> tuple:
    """(tftp_root, boot_file) of a request: PXE for a nat or route network's guests. Play
    options only (the host directory is served to every guest of the network)."""
    tftp_root = params.get("tftp_root")
    boot_file = params.get("boot_file")
    if tftp_root not in (None, ""):
        tftp_root = str(tftp_root)
        if not tftp_root.startswith("/") or "\0" in tftp_root or ".." in tftp_root.split("/"):
            raise ValidationError(
                _param(prefix, "tftp_root"), f"{tftp_root!r} must be an absolute directory without '..'"
            )
        tftp_root = os.path.normpath(tftp_root)
        if tftp_root == "/":
            raise ValidationError(
                _param(prefix, "tftp_root"), "serving the whole host by TFTP is refused; name a directory"
            )
    if boot_file not in (None, ""):
        boot_file = str(boot_file)
        if not _BOOT_FILE_RE.match(boot_file) or ".." in boot_file.split("/"):
            raise ValidationError(
                _param(prefix, "boot_file"),
                f"{boot_file[:60]!r}: give a file name inside tftp_root (letters, digits, '_.+-/', no '..'), "
                "e.g. pxelinux.0",
            )
    if mode == "bridge" and (tftp_root or boot_file):
        raise ValidationError(
            _param(prefix, "tftp_root" if tftp_root else "boot_file"),
            "TFTP and the DHCP boot file are served on nat and route networks only (by libvirt's dnsmasq)",
        )
    return tftp_root, boot_file


def normalise_request(params: dict, prefix: str = "") -> dict:
    """Validate one network request; return it in the module's vocabulary (None = leave alone)."""
    mode = params.get("mode") or "bridge"
    if mode not in MODES:
        raise ValidationError(_param(prefix, "mode"), f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    state = params.get("state") or "present"
    if state not in ("present", "absent"):
        raise ValidationError(_param(prefix, "state"), f"unknown state {state!r}: use present or absent")
    name, bridge = _name_and_bridge(params, mode, prefix)
    netdev, create_netdev = _netdev(params, mode, bridge, prefix)
    persist = params.get("persist") or "auto"
    if persist not in PERSIST_KINDS:
        raise ValidationError(_param(prefix, "persist"), f"use one of {', '.join(PERSIST_KINDS)}")
    address, dhcp_range, dhcp_hosts = _addressing(params, mode, prefix)
    tftp_root, boot_file = _network_boot(params, mode, prefix)
    script = params.get("vif_script") or DEFAULT_VIF_SCRIPTS[mode]
    if "/" in script and not os.path.isabs(script):
        raise ValidationError(
            _param(prefix, "vif_script"), f"{script!r}: give a script name in {XEN_SCRIPT_DIR} or an absolute path"
        )
    autostart = params.get("autostart")
    return {
        "name": name,
        "mode": mode,
        "state": state,
        "bridge": bridge,
        "netdev": netdev,
        "create_netdev": create_netdev,
        "migrate_address": bool(params.get("migrate_address")),
        "persist": persist,
        "libvirt_network": bool(params.get("libvirt_network")),
        "address": address,
        "dhcp_range": dhcp_range,
        "dhcp_hosts": dhcp_hosts,
        "tftp_root": tftp_root,
        "boot_file": boot_file,
        "autostart": True if autostart is None else bool(autostart),
        "restart": bool(params.get("restart")),
        "adopt": bool(params.get("adopt")),
        "vif_script": script,
    }


def normalise_requests(items: list, prefix: str = "networks") -> list:
    """Validate several requests; names and bridge devices must be unique among them."""
    requests = []
    names: dict = {}
    bridges: dict = {}
    for index, item in enumerate(items):
        where = f"{prefix}[{index}]."
        request = normalise_request(item, where)
        if request["name"] in names:
            raise ValidationError(
                f"{where}name", f"{request['name']!r} is given twice (also {prefix}[{names[request['name']]}])"
            )
        names[request["name"]] = index
        if request["bridge"] is not None:
            if request["bridge"] in bridges:
                raise ValidationError(
                    f"{where}bridge",
                    f"bridge {request['bridge']!r} is used twice (also {prefix}[{bridges[request['bridge']]}])",
                )
            bridges[request["bridge"]] = index
        requests.append(request)
    return requests


def check_vif_script(request: dict, uri: str, exists: Callable[[str], bool] = os.path.exists, prefix: str = "") -> str:
    """The vif script guests on this network use; on a local Xen host it must exist."""
    script = request["vif_script"]
    path = script if os.path.isabs(script) else os.path.join(XEN_SCRIPT_DIR, script)
    scheme, _sep, rest = uri.partition(":")
    local = rest.startswith("///")
    if scheme.split("+", 1)[0].lower() == "xen" and local and not exists(path):
        raise ValidationError(
            _param(prefix, "vif_script"),
            f"Xen vif script {path} does not exist on this host: install it there "
            f"(mode {request['mode']} uses {DEFAULT_VIF_SCRIPTS[request['mode']]} by default)",
        )
    return path
