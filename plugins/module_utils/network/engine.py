# -*- coding: utf-8 -*-
# Copyright: lcfg.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Host networking: Linux bridges (iproute2) and libvirt networks (NAT, routed, bridge).

Vocabulary (the ``xen_bridge`` module's parameters, its diff and ``xen_bridge_info``):

* a *request* is one network: ``name``, ``mode`` (``bridge``/``nat``/``route``), ``state``,
  ``bridge`` (Linux bridge device), ``netdev``, ``address`` (``ip/prefix``), ``dhcp_range``
  (``{start, end}``), ``dhcp_hosts`` (``[{mac, ip, name}]``), ``autostart``, ...
* a *bridge state* is ``{name, state, ports, addresses}`` read with ``ip -j``;
* a *network state* is ``{name, mode, bridge, netdev, address, dhcp_range, dhcp_hosts,
  autostart}`` read from libvirt's network XML.

``normalise_request`` validates everything before anything is touched; ``plan_bridge`` and
``plan_network`` compute the changes (check mode stops there); ``apply_*`` make them.
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Any, Callable

from ansible_collections.lcfg.xen.plugins.module_utils.common.imports import optional_import
from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import (
    Conflict,
    LibvirtFailure,
    ValidationError,
)
from ansible_collections.lcfg.xen.plugins.module_utils.common.libvirt import is_missing
from ansible_collections.lcfg.xen.plugins.module_utils.network.owner import check_owned, read_owned, update_owned
from ansible_collections.lcfg.xen.plugins.module_utils.network.iproute import (
    IpCommandError,
    Runner,
    ip_json,
    global_addresses,
    link_kind,
    link_state,
    read_link,
    read_links,
    routes_via,
    valid_ifname,
    veth_peer_name,
)
from ansible_collections.lcfg.xen.plugins.module_utils.common.validate import valid_guest_name, valid_mac

etree, LXML_IMPORT_ERROR = optional_import("lxml.etree")
HAS_LXML = etree is not None

__all__ = [
    "HAS_LXML",
    "LXML_IMPORT_ERROR",
    "MODES",
    "DEFAULT_VIF_SCRIPTS",
    "XEN_SCRIPT_DIR",
    "normalise_request",
    "normalise_requests",
    "check_vif_script",
    "render_network_xml",
    "parse_network_xml",
    "read_network",
    "list_networks",
    "plan_network",
    "check_mode_kept",
    "check_subnet_free",
    "apply_network",
    "plan_bridge",
    "apply_bridge",
    "standin_alias",
    "BRIDGE_MARK",
    "check_bridge_name",
    "created_ports",
    "detect_persist",
    "render_persist_files",
    "read_persist_files",
    "plan_request",
    "apply_request",
    "reconcile",
]

MODES = ("bridge", "nat", "route")
DEFAULT_VIF_SCRIPTS = {"bridge": "vif-bridge", "nat": "vif-nat", "route": "vif-route"}
XEN_SCRIPT_DIR = "/etc/xen/scripts"
PERSIST_KINDS = ("auto", "ifupdown", "networkd", "none")
CREATE_NETDEV = ("none", "dummy", "veth")
MANAGED_MARK = "lcfg.xen.xen_bridge"
# The ifalias of a Linux bridge xen_bridge created (or adopted): any other existing bridge is
# someone else's (an admin's VM bridge, libvirt's, docker's) and is never changed or deleted.
BRIDGE_MARK = "lcfg.xen bridge"
# Bridge names the host's own tools use: libvirt's default networks, docker, the loopback.
_RESERVED_BRIDGE_RE = re.compile(r"^(virbr|docker)|^lo$")

_NETNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$")

# libvirt constants, by value so the pure parts need no binding.
_XML_INACTIVE = 1
_UPDATE_DELETE = 2
_UPDATE_ADD_LAST = 3
_UPDATE_MODIFY = 1
_SECTION_IP_DHCP_HOST = 4
_SECTION_IP_DHCP_RANGE = 5
_AFFECT_LIVE = 1
_AFFECT_CONFIG = 2


# --------------------------------------------------------------------------- validation


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
        raise ValidationError(parameter, f"{text!r} is the network address; give the host's own address, "
                                         f"e.g. {next(iface.network.hosts())}/{iface.network.prefixlen}")
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


def _dhcp_hosts(value: object, parameter: str, address: str | None = None,
                address_parameter: str = "address") -> list | None:
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
        _inside(ip, address, f"{where}.ip")
        if address is not None and ip == address.split("/")[0]:
            # dnsmasq would hand the host's own address to a guest: two hosts, one address
            raise ValidationError(f"{where}.ip", f"{ip} is the network's own address ({address_parameter} "
                                                 f"{address}), the guests' gateway: reserve another address "
                                                 f"for {mac} or give the network another address")
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
    if _HOSTNAME_RE.match(name) and len(name) <= 253:
        return name
    try:
        valid_guest_name(name)
    except ValueError:
        raise ValidationError(parameter, f"invalid host name {name!r}") from None
    return None


def _network_name(value: object, parameter: str) -> str:
    text = "" if value is None else str(value)
    if not _NETNAME_RE.match(text):
        raise ValidationError(parameter, f"invalid network name {text!r}: use letters, digits, '_', '.', '+', '-', "
                                         "starting with a letter or digit, at most 64 characters")
    return text


def _inside(ip: str, address: str | None, parameter: str) -> None:
    if address is None:
        return
    network = ipaddress.ip_interface(address).network
    if ipaddress.ip_address(ip) not in network:
        raise ValidationError(parameter, f"{ip} is outside the network's subnet {network}")


def normalise_request(params: dict, prefix: str = "") -> dict:
    """Validate one network request; return it in the module's vocabulary (None = leave alone)."""
    mode = params.get("mode") or "bridge"
    if mode not in MODES:
        raise ValidationError(_param(prefix, "mode"), f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    state = params.get("state") or "present"
    if state not in ("present", "absent"):
        raise ValidationError(_param(prefix, "state"), f"unknown state {state!r}: use present or absent")
    if not params.get("name"):
        raise ValidationError(_param(prefix, "name"), "a network needs a name")
    name = str(params["name"])
    bridge = params.get("bridge")
    libvirt_network = bool(params.get("libvirt_network"))
    if mode == "bridge":
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
        if libvirt_network:
            _network_name(name, _param(prefix, "name"))
    else:
        _network_name(name, _param(prefix, "name"))
        if bridge is not None:
            bridge = valid_ifname(bridge, _param(prefix, "bridge"))
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
    persist = params.get("persist") or "auto"
    if persist not in PERSIST_KINDS:
        raise ValidationError(_param(prefix, "persist"), f"use one of {', '.join(PERSIST_KINDS)}")
    address = params.get("address")
    if address is not None:
        address = _address(address, _param(prefix, "address"))
    dhcp_range = _dhcp_range(params.get("dhcp_range"), _param(prefix, "dhcp_range"))
    dhcp_hosts = _dhcp_hosts(params.get("dhcp_hosts"), _param(prefix, "dhcp_hosts"),
                             address, _param(prefix, "address"))
    if mode == "bridge" and (dhcp_range is not None or dhcp_hosts):
        raise ValidationError(_param(prefix, "dhcp_hosts" if dhcp_hosts else "dhcp_range"),
                              "DHCP is served on nat and route networks only; a bridge's guests use the "
                              "LAN's own DHCP server")
    if dhcp_range is not None:
        _inside(dhcp_range["start"], address, _param(prefix, "dhcp_range.start"))
        _inside(dhcp_range["end"], address, _param(prefix, "dhcp_range.end"))
    script = params.get("vif_script") or DEFAULT_VIF_SCRIPTS[mode]
    if "/" in script and not os.path.isabs(script):
        raise ValidationError(_param(prefix, "vif_script"),
                              f"{script!r}: give a script name in {XEN_SCRIPT_DIR} or an absolute path")
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
        "libvirt_network": libvirt_network,
        "address": address,
        "dhcp_range": dhcp_range,
        "dhcp_hosts": dhcp_hosts,
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
            raise ValidationError(f"{where}name", f"{request['name']!r} is given twice "
                                                  f"(also {prefix}[{names[request['name']]}])")
        names[request["name"]] = index
        if request["bridge"] is not None:
            if request["bridge"] in bridges:
                raise ValidationError(f"{where}bridge", f"bridge {request['bridge']!r} is used twice "
                                                        f"(also {prefix}[{bridges[request['bridge']]}])")
            bridges[request["bridge"]] = index
        requests.append(request)
    return requests


def check_vif_script(request: dict, uri: str, exists: Callable[[str], bool] = os.path.exists,
                     prefix: str = "") -> str:
    """The vif script guests on this network use; on a local Xen host it must exist."""
    script = request["vif_script"]
    path = script if os.path.isabs(script) else os.path.join(XEN_SCRIPT_DIR, script)
    scheme, _sep, rest = uri.partition(":")
    local = rest.startswith("///")
    if scheme.split("+", 1)[0].lower() == "xen" and local and not exists(path):
        raise ValidationError(_param(prefix, "vif_script"),
                              f"Xen vif script {path} does not exist on this host: install it there "
                              f"(mode {request['mode']} uses {DEFAULT_VIF_SCRIPTS[request['mode']]} by default)")
    return path


# --------------------------------------------------------------------------- libvirt network XML


def _prefix_of(ip_el) -> int | None:
    if ip_el.get("prefix"):
        return int(ip_el.get("prefix"))
    if ip_el.get("netmask"):
        return ipaddress.ip_network(f"0.0.0.0/{ip_el.get('netmask')}").prefixlen
    return None


def parse_network_xml(xml: str) -> dict:
    """libvirt network XML -> network state (without autostart/active, which XML does not hold)."""
    root = etree.fromstring(xml.encode() if isinstance(xml, str) else xml)
    forward = root.find("forward")
    mode = forward.get("mode", "nat") if forward is not None else "isolated"
    netdev = forward.get("dev") if forward is not None else None
    bridge_el = root.find("bridge")
    address = None
    dhcp_range = None
    hosts = []
    ip_el = _first_ip(root)
    if ip_el is not None and ip_el.get("address"):
        prefix = _prefix_of(ip_el)
        address = f"{ipaddress.ip_address(ip_el.get('address'))}" + (f"/{prefix}" if prefix is not None else "")
        dhcp = ip_el.find("dhcp")
        if dhcp is not None:
            rng = dhcp.find("range")
            if rng is not None:
                dhcp_range = {"start": rng.get("start"), "end": rng.get("end")}
            for host in dhcp.findall("host"):
                hosts.append({
                    "mac": host.get("mac").lower() if host.get("mac") else None,
                    "ip": host.get("ip"),
                    "name": host.get("name"),
                })
    return {
        "name": root.findtext("name"),
        "mode": mode,
        "bridge": bridge_el.get("name") if bridge_el is not None else None,
        "netdev": netdev,
        "address": address,
        "dhcp_range": dhcp_range,
        "dhcp_hosts": sorted(hosts, key=lambda host: host["mac"] or ""),
        "uuid": root.findtext("uuid"),
    }


def _first_ip(root):
    for ip_el in root.findall("ip"):
        if ip_el.get("family", "ipv4") in ("ipv4", "ipv6"):
            return ip_el
    return None


def _host_element(host: dict):
    element = etree.Element("host")
    element.set("mac", host["mac"])
    if host.get("name"):
        element.set("name", host["name"])
    element.set("ip", host["ip"])
    return element


def _range_element(rng: dict):
    element = etree.Element("range")
    element.set("start", rng["start"])
    element.set("end", rng["end"])
    return element


def render_network_xml(state: dict, base_xml: str | None = None) -> str:
    """Network state -> libvirt XML. With ``base_xml`` only the managed parts are replaced,
    everything else of the existing definition (uuid, mac, dns, extra <ip>s, ...) is kept."""
    if base_xml:
        root = etree.fromstring(base_xml.encode() if isinstance(base_xml, str) else base_xml)
    else:
        root = etree.Element("network")
        etree.SubElement(root, "name").text = state["name"]
    forward = root.find("forward")
    if forward is None:
        forward = etree.Element("forward")
        root.insert(1, forward)
    previous_mode = forward.get("mode")
    forward.set("mode", state["mode"])
    if previous_mode != state["mode"]:
        for child in list(forward):
            forward.remove(child)
    if state.get("netdev"):
        forward.set("dev", state["netdev"])
    elif "dev" in forward.attrib:
        del forward.attrib["dev"]
        for child in forward.findall("interface"):
            forward.remove(child)
    bridge_el = root.find("bridge")
    if state.get("bridge"):
        if bridge_el is None:
            bridge_el = etree.Element("bridge")
            root.insert(root.index(forward) + 1, bridge_el)
        bridge_el.set("name", state["bridge"])
    if state["mode"] == "bridge":
        for ip_el in root.findall("ip"):
            root.remove(ip_el)
        for tag in ("mac", "dns", "domain"):
            for element in root.findall(tag):
                root.remove(element)
        return etree.tostring(root, encoding="unicode")
    ip_el = _first_ip(root)
    if state.get("address"):
        iface = ipaddress.ip_interface(state["address"])
        if ip_el is None:
            ip_el = etree.SubElement(root, "ip")
        for attr in ("netmask", "prefix", "family"):
            if attr in ip_el.attrib:
                del ip_el.attrib[attr]
        if iface.version == 6:
            ip_el.set("family", "ipv6")
        ip_el.set("address", str(iface.ip))
        ip_el.set("prefix", str(iface.network.prefixlen))
    if ip_el is not None:
        dhcp = ip_el.find("dhcp")
        if state.get("dhcp_range") or state.get("dhcp_hosts"):
            if dhcp is None:
                dhcp = etree.SubElement(ip_el, "dhcp")
            for child in list(dhcp):
                if child.tag in ("range", "host"):
                    dhcp.remove(child)
            if state.get("dhcp_range"):
                dhcp.insert(0, _range_element(state["dhcp_range"]))
            for host in state.get("dhcp_hosts") or []:
                dhcp.append(_host_element(host))
        elif dhcp is not None and not [c for c in dhcp if c.tag not in ("range", "host")]:
            ip_el.remove(dhcp)
    return etree.tostring(root, encoding="unicode")


# --------------------------------------------------------------------------- libvirt network state


def _lookup(conn, name: str):
    try:
        return conn.networkLookupByName(name)
    except Exception as exc:  # libvirt.libvirtError
        if is_missing(exc):
            return None
        raise LibvirtFailure(f"looking up libvirt network {name!r}: {exc}") from exc


def _config_of(state: dict) -> dict:
    keys = ("name", "mode", "bridge", "netdev", "address", "dhcp_range", "dhcp_hosts")
    return {key: state.get(key) for key in keys}


def read_network(conn, name: str) -> dict | None:
    """``{config, live, active, autostart, persistent, xml}`` of a libvirt network, or None."""
    net = _lookup(conn, name)
    if net is None:
        return None
    return _network_record(net)


def _network_record(net) -> dict:
    persistent = bool(net.isPersistent())
    active = bool(net.isActive())
    inactive_xml = net.XMLDesc(0)
    if persistent:
        try:
            inactive_xml = net.XMLDesc(_XML_INACTIVE)
        except Exception:  # pylint: disable=broad-except
            # a driver without the flag (libvirt's test driver) keeps one definition only
            pass
    config = parse_network_xml(inactive_xml)
    live = parse_network_xml(net.XMLDesc(0)) if active else None
    return {
        "config": config,
        "live": live,
        "active": active,
        "autostart": bool(net.autostart()) if persistent else False,
        "persistent": persistent,
        "xml": inactive_xml,
    }


def list_networks(conn) -> list:
    """Every libvirt network in the info vocabulary, sorted by name."""
    result = []
    for net in conn.listAllNetworks(0):
        record = _network_record(net)
        item = _config_of(record["config"])
        item.update({
            "uuid": record["config"]["uuid"],
            "active": record["active"],
            "autostart": record["autostart"],
            "persistent": record["persistent"],
            "vif_script": DEFAULT_VIF_SCRIPTS.get(item["mode"] if item["mode"] in MODES else "bridge"),
        })
        if record["live"] is not None and record["live"]["bridge"]:
            item["bridge"] = record["live"]["bridge"]
        result.append(item)
    return sorted(result, key=lambda item: item["name"])


def _network_view(record: dict | None) -> dict | None:
    """The diff view of a network record."""
    if record is None:
        return None
    view = _config_of(record["config"])
    view["autostart"] = record["autostart"]
    view["active"] = record["active"]
    return view


def _desired_network(request: dict, current: dict | None) -> dict:
    """Request -> full desired network state; None fields keep the current value."""
    base = _config_of(current["config"]) if current else {}
    desired = {"name": request["name"], "mode": request["mode"]}
    desired["bridge"] = request["bridge"] if request["bridge"] is not None else base.get("bridge")
    if request["mode"] == "bridge":
        desired.update({"netdev": None, "address": None, "dhcp_range": None, "dhcp_hosts": []})
        return desired
    desired["netdev"] = request["netdev"] if request["netdev"] is not None else base.get("netdev")
    desired["address"] = request["address"] if request["address"] is not None else base.get("address")
    desired["dhcp_range"] = request["dhcp_range"] if request["dhcp_range"] is not None else base.get("dhcp_range")
    desired["dhcp_hosts"] = request["dhcp_hosts"] if request["dhcp_hosts"] is not None else base.get("dhcp_hosts", [])
    return desired


def plan_network(request: dict, current: dict | None, prefix: str = "") -> dict:
    """Compare a network request with libvirt's record; return the plan (check mode stops here).

    Plan keys: ``actions`` (human readable), ``steps`` (for apply_network), ``before``/``after``
    (diff views), ``pending_restart``, ``warnings``.
    """
    before = _network_view(current)
    warnings: list = []
    steps: list = []
    actions: list = []
    name = request["name"]
    if request["state"] == "absent":
        if current is not None:
            if current["active"]:
                steps.append(("destroy",))
                actions.append(f"stop libvirt network {name}")
            if current["persistent"]:
                steps.append(("undefine",))
                actions.append(f"undefine libvirt network {name}")
        return {"actions": actions, "steps": steps, "before": before, "after": None,
                "pending_restart": False, "warnings": warnings}

    desired = _desired_network(request, current)
    if desired["mode"] != "bridge" and desired["address"] is None:
        raise ValidationError(_param(prefix, "address"),
                              f"libvirt network {name} does not exist yet: give the host's address on it, "
                              "e.g. address: 10.0.0.254/24")
    if desired["mode"] == "bridge" and desired["bridge"] is None:
        raise ValidationError(_param(prefix, "bridge"), f"network {name} needs the bridge device it forwards to")
    for index, host in enumerate(desired["dhcp_hosts"] or []):
        _inside(host["ip"], desired["address"], f"{_param(prefix, 'dhcp_hosts')}[{index}].ip")
    if desired["dhcp_range"]:
        _inside(desired["dhcp_range"]["start"], desired["address"], _param(prefix, "dhcp_range"))
        _inside(desired["dhcp_range"]["end"], desired["address"], _param(prefix, "dhcp_range"))

    after = dict(desired)
    after["autostart"] = request["autostart"]
    after["active"] = True
    pending = False
    if current is None:
        xml = render_network_xml(desired)
        steps += [("define", xml), ("autostart", request["autostart"]), ("create",)]
        actions += [f"define libvirt network {name}", f"set autostart {'on' if request['autostart'] else 'off'}",
                    f"start libvirt network {name}"]
        return {"actions": actions, "steps": steps, "before": None, "after": after,
                "pending_restart": False, "warnings": warnings}

    config = _config_of(current["config"])
    restart_keys = [key for key in ("mode", "bridge", "netdev", "address") if config[key] != desired[key]]
    if config["dhcp_range"] != desired["dhcp_range"] and (
            config["dhcp_range"] is None or desired["dhcp_range"] is None):
        restart_keys.append("dhcp_range")
    redefine_keys = restart_keys + ([] if current["persistent"] else ["persistent"])
    if redefine_keys:
        steps.append(("define", render_network_xml(desired, current["xml"])))
        actions.append(f"redefine libvirt network {name} ({', '.join(redefine_keys)})")
    else:
        if config["dhcp_range"] != desired["dhcp_range"]:
            steps.append(("update", _UPDATE_DELETE, _SECTION_IP_DHCP_RANGE, _xml(_range_element(config["dhcp_range"]))))
            steps.append(("update", _UPDATE_ADD_LAST, _SECTION_IP_DHCP_RANGE,
                          _xml(_range_element(desired["dhcp_range"]))))
            actions.append(f"change DHCP range of {name} to {desired['dhcp_range']['start']}-"
                           f"{desired['dhcp_range']['end']} (live)")
        steps_hosts, actions_hosts = _plan_hosts(name, config["dhcp_hosts"], desired["dhcp_hosts"])
        steps += steps_hosts
        actions += actions_hosts
    if current["autostart"] != request["autostart"]:
        steps.append(("autostart", request["autostart"]))
        actions.append(f"set autostart {'on' if request['autostart'] else 'off'}")
    # the running network keeps its old definition for what cannot change live
    stale_live = current["active"] and current["live"] is not None and (
        _static(current["live"]) != _static(config))
    if not current["active"]:
        steps.append(("create",))
        actions.append(f"start libvirt network {name}")
    elif restart_keys or stale_live:
        if request["restart"]:
            steps += [("destroy",), ("create",), ("reattach",)]
            actions.append(f"restart libvirt network {name} and reattach running guests' interfaces")
        else:
            pending = True
            warnings.append(
                f"libvirt network {name}: the new definition takes effect when the network restarts; "
                "restarting detaches running guests' interfaces (set restart: true to restart now and "
                "reattach them)")
    return {"actions": actions, "steps": steps, "before": before, "after": after,
            "pending_restart": pending, "warnings": warnings}


def check_mode_kept(request: dict, current: dict | None, prefix: str = "") -> None:
    """Refuse to turn an existing libvirt network into another kind (NAT, routed, bridge) in place:
    its guests and whoever made it rely on its kind, so a profile naming it with another mode is
    a mistake or a takeover, never a change to make quietly (adopted or not)."""
    if current is None or request["state"] != "present":
        return
    have = current["config"].get("mode")
    if have != request["mode"]:
        raise Conflict(f"{prefix}mode: libvirt network {request['name']} is a {have} network; changing it to "
                       f"{request['mode']} in place is refused. Remove it first (state: absent, or "
                       "playbooks/teardown.yml -e teardown_remove_networks=true) and converge again, or give "
                       "this network another name")


def check_subnet_free(name: str, address: str, own_bridge: str | None, networks: list, routes: list,
                      prefix: str = "") -> None:
    """Refuse a subnet that another libvirt network or a host route already uses (libvirt would
    only find out when starting the network, after the definition was saved)."""
    wanted = ipaddress.ip_interface(address).network
    for other in networks:
        if other["name"] == name or not other.get("address"):
            continue
        theirs = ipaddress.ip_interface(other["address"]).network
        if theirs.version == wanted.version and theirs.overlaps(wanted):
            raise Conflict(f"{prefix}address: {wanted} overlaps libvirt network {other['name']} ({theirs}); "
                           "choose another subnet")
    for route in routes:
        dst = route.get("dst")
        if not dst or dst == "default" or route.get("dev") in (own_bridge, None):
            continue
        try:
            theirs = ipaddress.ip_network(dst if "/" in dst else f"{dst}/{wanted.max_prefixlen}", strict=False)
        except ValueError:
            continue
        if theirs.version == wanted.version and theirs.overlaps(wanted):
            raise Conflict(f"{prefix}address: {wanted} is already routed through {route['dev']} ({theirs}); "
                           "choose another subnet")


def _static(state: dict) -> dict:
    """The part of a network's definition that only a restart changes."""
    return {key: state.get(key) for key in ("mode", "bridge", "netdev", "address")}


def _xml(element) -> str:
    return etree.tostring(element, encoding="unicode")


def _plan_hosts(name: str, current: list, desired: list) -> tuple:
    """DHCP reservations changed in place: deletes, then modifies, then additions."""
    steps: list = []
    actions: list = []
    have = {host["mac"]: host for host in current if host.get("mac")}
    want = {host["mac"]: host for host in desired}
    for mac in sorted(set(have) - set(want)):
        steps.append(("update", _UPDATE_DELETE, _SECTION_IP_DHCP_HOST, _xml(_host_element(have[mac]))))
        actions.append(f"remove DHCP reservation {mac} {have[mac]['ip']} from {name} (live)")
    for mac in sorted(set(have) & set(want)):
        if have[mac] != want[mac]:
            steps.append(("update", _UPDATE_MODIFY, _SECTION_IP_DHCP_HOST, _xml(_host_element(want[mac]))))
            actions.append(f"change DHCP reservation {mac} to {want[mac]['ip']} in {name} (live)")
    for mac in sorted(set(want) - set(have)):
        steps.append(("update", _UPDATE_ADD_LAST, _SECTION_IP_DHCP_HOST, _xml(_host_element(want[mac]))))
        actions.append(f"add DHCP reservation {mac} {want[mac]['ip']} to {name} (live)")
    return steps, actions


def _network_step_done(conn, name: str, step: tuple) -> bool:
    """After a step failed: is what it wanted there anyway (made by another run meanwhile)?"""
    try:
        return _step_met(conn, name, step)
    except Exception:  # pylint: disable=broad-except
        return False  # cannot tell: the step's own error is reported


def _step_met(conn, name: str, step: tuple) -> bool:
    net = _lookup(conn, name)
    kind = step[0]
    if kind == "undefine":
        return net is None
    if net is None:
        return False
    if kind == "define":
        wanted = parse_network_xml(step[1])
        have = _network_record(net)["config"]
        # what the definition leaves to libvirt (uuid, a bridge name, ...) may differ
        return all(have.get(key) == value for key, value in wanted.items() if value is not None and key != "uuid")
    if kind in ("create", "destroy"):
        return bool(net.isActive()) == (kind == "create")
    if kind == "update" and step[2] == _SECTION_IP_DHCP_HOST:
        host = etree.fromstring(step[3].encode())
        mac = (host.get("mac") or "").lower()
        hosts = {h["mac"]: h for h in parse_network_xml(net.XMLDesc(0))["dhcp_hosts"]}
        if step[1] == _UPDATE_DELETE:
            return mac not in hosts
        return mac in hosts and hosts[mac]["ip"] == host.get("ip") and hosts[mac]["name"] == host.get("name")
    return False


def apply_network(conn, request: dict, plan: dict, run: Runner | None = None, local: bool = True) -> list:
    """Carry out ``plan['steps']``; return warnings produced on the way. A step whose aim
    is met already (another run defined, started or updated the network meanwhile) is
    passed over instead of failing."""
    name = request["name"]
    warnings: list = []
    net = _lookup(conn, name)
    for step in plan["steps"]:
        kind = step[0]
        try:
            if kind == "define":
                net = conn.networkDefineXML(step[1])
            elif kind == "autostart":
                net.setAutostart(1 if step[1] else 0)
            elif kind == "create":
                if not net.isActive():
                    net.create()
            elif kind == "destroy":
                if net.isActive():
                    net.destroy()
            elif kind == "undefine":
                net.undefine()
            elif kind == "update":
                flags = _AFFECT_CONFIG | (_AFFECT_LIVE if net.isActive() else 0)
                net.update(step[1], step[2], -1, step[3], flags)
            elif kind == "reattach":
                warnings += _reattach(conn, net, run, local)
        except Exception as exc:  # libvirt.libvirtError
            if not isinstance(exc, LibvirtFailure) and _network_step_done(conn, name, step):
                net = _lookup(conn, name)
                continue
            rolled_back = ""
            if plan["before"] is None and net is not None and kind != "define":
                # a network this run defined and could not start: leave nothing behind
                try:
                    if net.isActive():
                        net.destroy()
                    net.undefine()
                    rolled_back = " (the new definition was removed again)"
                except Exception:  # pylint: disable=broad-except
                    pass
            if isinstance(exc, LibvirtFailure):
                raise
            raise LibvirtFailure(f"libvirt network {name}: {kind} failed: {exc}{rolled_back}") from exc
    return warnings


def _reattach(conn, net, run: Runner | None, local: bool) -> list:
    """After a restart, put running guests' tap devices back on the network's bridge."""
    name = net.name()
    bridge = parse_network_xml(net.XMLDesc(0))["bridge"]
    taps = []
    for dom in conn.listAllDomains(1):  # VIR_CONNECT_LIST_DOMAINS_ACTIVE
        root = etree.fromstring(dom.XMLDesc(0).encode())
        for iface in root.findall("devices/interface"):
            source = iface.find("source")
            target = iface.find("target")
            if source is not None and source.get("network") == name and target is not None and target.get("dev"):
                taps.append((dom.name(), target.get("dev")))
    if not taps:
        return []
    if run is None or not local or not bridge:
        return [f"libvirt network {name} restarted: reattach the interfaces of "
                f"{', '.join(sorted({d for d, _t in taps}))} to its bridge (remote host: not done here)"]
    for _dom, tap in taps:
        rc, _out, err = run(["ip", "link", "set", "dev", tap, "master", bridge])
        if rc != 0:
            raise IpCommandError(f"reattaching {tap} to {bridge} failed: {str(err).strip()}")
    return []


# --------------------------------------------------------------------------- persistence


def detect_persist(root: str = "/") -> tuple:
    """(kind, warning) for ``persist: auto``: networkd when enabled, else ifupdown, else none."""
    systemd = os.path.join(root, "etc/systemd/system")
    if os.path.isdir(systemd):
        for entry in os.listdir(systemd):
            if entry.endswith(".wants") and os.path.exists(os.path.join(systemd, entry, "systemd-networkd.service")):
                return "networkd", None
    if os.path.exists(os.path.join(root, "etc/network/interfaces")):
        return "ifupdown", None
    return "none", ("neither systemd-networkd nor ifupdown (/etc/network/interfaces) manages this host's "
                    "network: the bridge is live only and disappears at reboot; set persist: to choose")


def _persist_paths(kind: str, request: dict, root: str) -> list:
    bridge = request["bridge"]
    if kind == "ifupdown":
        return [os.path.join(root, "etc/network/interfaces.d", f"lcfg-xen-{bridge}")]
    if kind == "networkd":
        base = os.path.join(root, "etc/systemd/network")
        paths = [os.path.join(base, f"20-lcfg-xen-{bridge}.netdev"), os.path.join(base, f"20-lcfg-xen-{bridge}.network")]
        if request["netdev"]:
            paths.append(os.path.join(base, f"20-lcfg-xen-{bridge}-port.network"))
            paths.append(os.path.join(base, f"20-lcfg-xen-{bridge}-port.netdev"))
        return paths
    return []


def render_persist_files(kind: str, request: dict, addresses: list, routes: list, dhcp: bool,
                         root: str = "/") -> dict:
    """``{path: content}`` that recreate the bridge at boot (empty for ``none``)."""
    bridge = request["bridge"]
    netdev = request["netdev"]
    header = f"# Written by {MANAGED_MARK} for bridge {bridge}; changes here are overwritten.\n"
    files: dict = {}
    if kind == "ifupdown":
        lines = [header.rstrip("\n")]
        if netdev and request["create_netdev"] == "dummy":
            lines += [f"auto {netdev}", f"iface {netdev} inet manual",
                      f"    pre-up ip link add {netdev} type dummy || true", ""]
        if netdev and request["create_netdev"] == "veth":
            peer = veth_peer_name(netdev)
            lines += [f"auto {netdev}", f"iface {netdev} inet manual",
                      f"    pre-up ip link add {netdev} type veth peer name {peer} || true",
                      f"    up ip link set {peer} up", ""]
        statics = list(addresses)
        lines.append(f"auto {bridge}")
        if dhcp:
            lines.append(f"iface {bridge} inet dhcp")
        elif statics:
            first = statics.pop(0)
            lines.append(f"iface {bridge} inet{'6' if ':' in first else ''} static")
            lines.append(f"    address {first}")
        else:
            lines.append(f"iface {bridge} inet manual")
        lines.append(f"    bridge_ports {netdev or 'none'}")
        lines += ["    bridge_stp off", "    bridge_fd 0", "    bridge_maxwait 0"]
        for extra in statics:
            lines.append(f"    up ip address add {extra} dev {bridge}")
        for route in routes:
            lines.append(f"    up ip {' '.join(route)} dev {bridge}")
        files[_persist_paths(kind, request, root)[0]] = "\n".join(lines) + "\n"
    elif kind == "networkd":
        paths = _persist_paths(kind, request, root)
        files[paths[0]] = header + f"[NetDev]\nName={bridge}\nKind=bridge\n\n[Bridge]\nSTP=no\nForwardDelaySec=0\n"
        network = [header.rstrip("\n"), "[Match]", f"Name={bridge}", "", "[Network]", "ConfigureWithoutCarrier=yes"]
        if dhcp:
            network.append("DHCP=yes")
        for address in addresses:
            network.append(f"Address={address}")
        if not addresses and not dhcp:
            network.append("LinkLocalAddressing=no")
        for route in routes:
            gateway = route[route.index("via") + 1] if "via" in route else None
            network += ["", "[Route]", f"Destination={'0.0.0.0/0' if route[1] == 'default' else route[1]}"]
            if gateway:
                network.append(f"Gateway={gateway}")
        files[paths[1]] = "\n".join(network) + "\n"
        if netdev:
            files[paths[2]] = header + f"[Match]\nName={netdev}\n\n[Network]\nBridge={bridge}\n"
            if request["create_netdev"] == "dummy":
                files[paths[3]] = header + f"[NetDev]\nName={netdev}\nKind=dummy\n"
            elif request["create_netdev"] == "veth":
                files[paths[3]] = header + (f"[NetDev]\nName={netdev}\nKind=veth\n\n[Peer]\n"
                                            f"Name={veth_peer_name(netdev)}\n")
    return files


def read_persist_files(request: dict, root: str = "/") -> dict:
    """``{path: content}`` of this bridge's persistence files that exist, of every kind."""
    files = {}
    for kind in ("ifupdown", "networkd"):
        for path in _persist_paths(kind, request, root):
            if os.path.exists(path):
                with open(path, encoding="utf-8") as handle:
                    files[path] = handle.read()
    return files


# --------------------------------------------------------------------------- Linux bridges


def _cmd(*argv: str) -> list:
    return ["ip", *argv]


def standin_alias(bridge: str) -> str:
    """The ifalias an interface made by ``create_netdev`` carries: how teardown knows it made it."""
    return f"lcfg.xen stand-in port of bridge {bridge}"


def created_ports(links: dict, bridge: str) -> list:
    """Interfaces this collection created for ``bridge`` (sorted): those carrying its
    ``standin_alias``, and veth stand-ins made before the alias existed - a port of the
    bridge paired with a peer named by ``veth_peer_name``. Never any other interface."""
    out = []
    for name, entry in links.items():
        if entry.get("ifalias") == standin_alias(bridge):
            out.append(name)
        elif link_kind(entry) == "veth" and entry.get("master") == bridge and not entry.get("ifalias") \
                and entry.get("link") == veth_peer_name(name) \
                and (links.get(veth_peer_name(name)) or {}).get("link") == name:
            out.append(name)
    return sorted(out)


def plan_bridge(request: dict, run: Runner, root: str = "/", prefix: str = "") -> dict:
    """Compare a bridge request with the host; return the plan (check mode stops here)."""
    bridge = request["bridge"]
    netdev = request["netdev"]
    links = read_links(run)
    entry = links.get(bridge)
    warnings: list = []
    commands: list = []
    actions: list = []
    if entry is not None and link_kind(entry) != "bridge":
        raise Conflict(f"{bridge} exists on this host and is a {link_kind(entry) or 'plain'} interface, "
                       f"not a bridge: choose another bridge name ({prefix}bridge)")
    before = link_state(entry, links) if entry is not None else None
    foreign = entry is not None and entry.get("ifalias") != BRIDGE_MARK
    persist_kind = request["persist"]
    if persist_kind == "auto":
        persist_kind, note = detect_persist(root)
        if note and request["state"] == "present":
            warnings.append(f"bridge {bridge}: {note}")
    current_files = read_persist_files(request, root)
    if before is not None:
        before["persisted"] = sorted(current_files)
    net_entry = links.get(netdev) if netdev else None

    if request["state"] == "absent":
        if entry is not None:
            addresses = before["addresses"]
            if addresses and not (request["migrate_address"] and netdev and net_entry is not None):
                raise Conflict(f"bridge {bridge} carries {', '.join(addresses)}: deleting it drops them; set "
                               f"migrate_address: true with netdev to move them back to the netdev first")
            if addresses:
                routes = routes_via(run, bridge)
                for address in addresses:
                    commands.append(_cmd("address", "del", address, "dev", bridge))
                    commands.append(_cmd("address", "add", address, "dev", netdev))
                for route in routes:
                    commands.append(_cmd(*route[:1], "route", "replace", *route[1:], "dev", netdev))
                actions.append(f"move {', '.join(addresses)} from {bridge} back to {netdev}")
            commands.append(_cmd("link", "del", "dev", bridge))
            actions.append(f"delete bridge {bridge}")
            _check_bridge_owned(request, foreign, actions, prefix)
        # what this collection created for the bridge goes with it (a veth's peer with it);
        # an interface that was there before (the uplink, a mapped netdev) stays
        for port in created_ports(links, bridge):
            commands.append(_cmd("link", "del", "dev", port))
            actions.append(f"delete {link_kind(links[port]) or 'stand-in'} interface {port}")
        for path in sorted(current_files):
            actions.append(f"remove {path}")
        return {"actions": actions, "commands": commands, "before": before, "after": None,
                "files": {path: None for path in current_files}, "warnings": warnings,
                "persist": persist_kind}

    # state present: validate the netdev before planning anything
    migrate_addresses: list = []
    migrate_routes: list = []
    static_routes: list = []
    dynamic = False
    if netdev:
        if net_entry is None:
            if request["create_netdev"] == "none":
                raise ValidationError(
                    f"{prefix}netdev",
                    f"interface {netdev} does not exist on this host (ip link shows no such device): "
                    "give an existing interface, or create_netdev: dummy (or veth) to create a stand-in")
            if request["create_netdev"] == "dummy":
                commands.append(_cmd("link", "add", netdev, "type", "dummy"))
            else:
                commands.append(_cmd("link", "add", netdev, "type", "veth", "peer", "name", veth_peer_name(netdev)))
                commands.append(_cmd("link", "set", "dev", veth_peer_name(netdev), "up"))
            commands.append(_cmd("link", "set", "dev", netdev, "alias", standin_alias(bridge)))
            actions.append(f"create {request['create_netdev']} interface {netdev}")
        else:
            kind = link_kind(net_entry)
            master = net_entry.get("master")
            if kind == "bridge":
                raise Conflict(f"{prefix}netdev: {netdev} is itself a bridge; give the physical interface")
            if master and master != bridge:
                raise Conflict(f"{prefix}netdev: {netdev} is already a port of bridge {master}; release it "
                               f"(ip link set {netdev} nomaster) or use that bridge")
            if master != bridge:
                migrate_addresses = global_addresses(net_entry)
                if migrate_addresses and not request["migrate_address"]:
                    raise Conflict(
                        f"{prefix}netdev: {netdev} carries {', '.join(migrate_addresses)}; enslaving it to "
                        f"{bridge} would cut that address off. Set migrate_address: true (role "
                        f"lcfg.xen.network: network_migrate_address: true) to move the address(es) and "
                        f"routes to the bridge, or choose another netdev")
                if migrate_addresses:
                    migrate_routes = routes_via(run, netdev)
                    static_routes = routes_via(run, netdev, include_dynamic=False)
                    dynamic = any(info.get("dynamic") for info in net_entry.get("addr_info") or [])

    if entry is None:
        commands.append(_cmd("link", "add", "name", bridge, "type", "bridge", "stp_state", "0", "forward_delay", "0"))
        commands.append(_cmd("link", "set", "dev", bridge, "alias", BRIDGE_MARK))
        actions.append(f"create bridge {bridge}")
    if netdev and (net_entry is None or net_entry.get("master") != bridge):
        commands.append(_cmd("link", "set", "dev", netdev, "master", bridge))
        actions.append(f"enslave {netdev} to {bridge}")
    if netdev and (net_entry is None or "UP" not in (net_entry.get("flags") or [])):
        commands.append(_cmd("link", "set", "dev", netdev, "up"))
        actions.append(f"bring {netdev} up")
    if migrate_addresses:
        for address in migrate_addresses:
            commands.append(_cmd("address", "del", address, "dev", netdev))
        for address in migrate_addresses:
            commands.append(_cmd("address", "add", address, "dev", bridge))
        actions.append(f"move {', '.join(migrate_addresses)} from {netdev} to {bridge}")
    if before is None or before["state"] != "up":
        commands.append(_cmd("link", "set", "dev", bridge, "up"))
        actions.append(f"bring {bridge} up")
    for route in migrate_routes:
        commands.append(_cmd(route[0], "route", "replace", *route[1:], "dev", bridge))
    if migrate_routes:
        actions.append(f"move {len(migrate_routes)} route(s) from {netdev} to {bridge}")
    addresses = list(before["addresses"]) if before else []
    for address in migrate_addresses:
        if address not in addresses:
            addresses.append(address)
    if request["address"] and request["address"] not in addresses:
        commands.append(_cmd("address", "add", request["address"], "dev", bridge))
        actions.append(f"add {request['address']} to {bridge}")
        addresses.append(request["address"])
    ports = set(before["ports"]) if before else set()
    if netdev:
        ports.add(netdev)
    routes = (routes_via(run, bridge, include_dynamic=False) if entry is not None else []) + static_routes
    files = render_persist_files(persist_kind, request, [a for a in addresses if not dynamic or a not in
                                                         migrate_addresses], routes, dynamic, root)
    changes: dict = {}
    for path in sorted(set(files) | set(current_files)):
        if path not in files:
            changes[path] = None
            actions.append(f"remove {path}")
        elif current_files.get(path) != files[path]:
            changes[path] = files[path]
            actions.append(f"{'update' if path in current_files else 'write'} {path}")
    after = {"name": bridge, "state": "up", "ports": sorted(ports), "addresses": addresses,
             "stp": before["stp"] if before else False, "mac": before["mac"] if before else None,
             "persisted": sorted(files)}
    _check_bridge_owned(request, foreign, actions, prefix)
    if foreign and request["adopt"]:
        # adopted: marked first, so a run that stops half-way leaves it lcfg.xen's
        commands.insert(0, _cmd("link", "set", "dev", bridge, "alias", BRIDGE_MARK))
        actions.insert(0, f"adopt bridge {bridge} (mark it lcfg.xen's)")
    if persist_kind == "ifupdown" and netdev:
        interfaces = os.path.join(root, "etc/network/interfaces")
        if os.path.exists(interfaces):
            with open(interfaces, encoding="utf-8") as handle:
                if re.search(rf"^\s*iface\s+{re.escape(netdev)}\s", handle.read(), re.M):
                    warnings.append(f"{interfaces} also configures {netdev}: remove its stanza, or the "
                                    f"address stays on {netdev} instead of {bridge} after a reboot")
    return {"actions": actions, "commands": commands, "before": before, "after": after,
            "files": changes, "warnings": warnings, "persist": persist_kind}


def _check_bridge_owned(request: dict, foreign: bool, actions: list, prefix: str) -> None:
    """Refuse to change or delete an existing bridge xen_bridge did not create, unless adopted."""
    if not foreign or not actions or request["adopt"]:
        return
    raise Conflict(
        f"{prefix}name: bridge {request['bridge']} exists on this host and was not created by lcfg.xen "
        f"(its ifalias is not {BRIDGE_MARK!r}); it would {'; '.join(actions)}. It is left alone: give the "
        "profile's bridge a name of its own, or, if lcfg.xen should manage it from now on, set adopt: true "
        f"(role lcfg.xen.network and playbooks/teardown.yml: network_adopt: [{request['name']}])")


def check_bridge_name(request: dict, networks: list, owned: dict, prefix: str = "") -> None:
    """Refuse a bridge name the host's own tools use (``virbr*``, ``docker*``, ``lo``) or that a
    libvirt network lcfg.xen did not create names as its bridge (active or not: holding the name
    would stop that network from starting), unless the request adopts it."""
    bridge = request["bridge"]
    if bridge is None or request["adopt"]:
        return
    if _RESERVED_BRIDGE_RE.search(bridge):
        raise Conflict(f"{prefix}{'name' if bridge == request['name'] else 'bridge'}: {bridge} is a bridge name "
                       "libvirt, docker or the kernel use for their own: choose another name (or, if lcfg.xen "
                       f"should manage it, adopt: true / network_adopt: [{request['name']}])")
    for network in networks:
        if network.get("bridge") != bridge or network["name"] == request["name"] \
                or owned.get(network.get("uuid")) == network["name"]:
            continue
        raise Conflict(f"{prefix}{'name' if bridge == request['name'] else 'bridge'}: {bridge} is the bridge of "
                       f"libvirt network {network['name']}, which lcfg.xen did not create: choose another name "
                       f"(or, if lcfg.xen should manage it, adopt: true / network_adopt: [{request['name']}])")


def _command_done(argv: list, run: Runner) -> bool:
    """After an ip command failed: is what it wanted there anyway (another run did it)?
    ``link add`` of a link of that kind, ``link del`` of a link that is gone, ``address
    add``/``del`` of an address that is (not) there."""
    verb = tuple(argv[1:3])
    if verb == ("link", "add"):
        name = argv[4] if argv[3] == "name" else argv[3]
        entry = read_link(run, name)
        return entry is not None and link_kind(entry) == argv[argv.index("type") + 1]
    if verb == ("link", "del"):
        return read_link(run, argv[-1]) is None
    if verb in (("address", "add"), ("address", "del")):
        entry = read_link(run, argv[-1])
        present = entry is not None and argv[3] in global_addresses(entry)
        return present == (verb[1] == "add")
    return False


def apply_bridge(plan: dict, run: Runner) -> None:
    """Run the plan's iproute2 commands (stop at the first failure that left the host
    short of what the command wanted) and write its files."""
    for argv in plan["commands"]:
        rc, _out, err = run(list(argv))
        if rc != 0 and not _command_done(argv, run):
            raise IpCommandError(f"{' '.join(argv)} failed (rc={rc}): {str(err).strip()}")
    for path, content in plan["files"].items():
        if content is None:
            if os.path.exists(path):
                os.unlink(path)
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.lcfg-xen.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)


def _drop_display(view: dict | None) -> dict | None:
    if view is None:
        return None
    return {key: value for key, value in view.items() if key not in ("mac", "stp")}


# --------------------------------------------------------------------------- requests end to end


def plan_request(request: dict, run: Runner, connect: Callable[[], Any], uri: str,
                 root: str = "/", prefix: str = "", state_file: str | None = None) -> dict:
    """Plan one request: the per-network result plus the private plans under ``_plans``.
    With ``state_file``, an existing libvirt network not recorded there is only changed
    when the request adopts it (``_network_owner``)."""
    check_vif_script(request, uri, prefix=prefix)
    result: dict = {"name": request["name"], "mode": request["mode"], "state": request["state"],
                    "bridge": request["bridge"], "vif_script": request["vif_script"],
                    "actions": [], "warnings": [], "pending_restart": False}
    before: dict = {}
    after: dict = {}
    bridge_plan = None
    net_plan = None
    if request["mode"] == "bridge" or request["state"] == "present":
        owned = read_owned(state_file) if state_file is not None else {}
        check_bridge_name(request, list_networks(connect()) if request["bridge"] else [], owned, prefix)
    if request["mode"] == "bridge":
        bridge_plan = plan_bridge(request, run, root, prefix)
        before["bridge"] = _drop_display(bridge_plan["before"])
        after["bridge"] = _drop_display(bridge_plan["after"])
        result["actions"] += bridge_plan["actions"]
        result["warnings"] += bridge_plan["warnings"]
        result["persist"] = bridge_plan["persist"]
    if request["mode"] != "bridge" or request["libvirt_network"]:
        current = read_network(connect(), request["name"])
        net_plan = plan_network(request, current, prefix)
        uuid = current["config"]["uuid"] if current else None
        check_mode_kept(request, current, prefix)
        if state_file is not None:
            check_owned(request, uuid, net_plan["actions"], read_owned(state_file), state_file, prefix)
        result["_uuid"] = uuid
        if request["mode"] != "bridge" and request["bridge"] and request["state"] == "present":
            own = current["live"]["bridge"] if current and current["live"] else None
            if request["bridge"] != own and read_link(run, request["bridge"]) is not None:
                raise Conflict(f"{prefix}bridge: {request['bridge']} already exists on this host; libvirt creates "
                               f"the bridge of a {request['mode']} network itself: choose another name")
        wanted = (net_plan["after"] or {}).get("address")
        if wanted and (current is None or current["config"]["address"] != wanted):
            own = current["live"]["bridge"] if current and current["live"] else None
            family = "-6" if ":" in wanted else "-4"
            check_subnet_free(request["name"], wanted, own, list_networks(connect()),
                              ip_json(run, ["ip", "-j", family, "route", "show"]), prefix)
        before["network"] = net_plan["before"]
        after["network"] = net_plan["after"]
        result["actions"] += net_plan["actions"]
        result["warnings"] += net_plan["warnings"]
        result["pending_restart"] = net_plan["pending_restart"]
        if request["mode"] != "bridge":
            result["bridge"] = (net_plan["after"] or net_plan["before"] or {}).get("bridge")
    result["changed"] = bool(result["actions"])
    result["diff"] = {"before": before, "after": after}
    result["_plans"] = (bridge_plan, net_plan)
    return result


def apply_request(request: dict, result: dict, run: Runner, connect: Callable[[], Any], uri: str) -> None:
    """Carry out a planned request; fills in what only the real run learns (libvirt's bridge name)."""
    bridge_plan, net_plan = result.pop("_plans")
    if not result["changed"]:
        return
    local = uri.partition(":")[2].startswith("///")
    if request["state"] == "absent":
        # guests refer to the libvirt network: remove it before its bridge
        if net_plan is not None:
            result["warnings"] += apply_network(connect(), request, net_plan, run, local)
        if bridge_plan is not None:
            apply_bridge(bridge_plan, run)
        return
    if bridge_plan is not None:
        apply_bridge(bridge_plan, run)
    if net_plan is not None:
        conn = connect()
        result["warnings"] += apply_network(conn, request, net_plan, run, local)
        if request["mode"] != "bridge":
            record = read_network(conn, request["name"])
            if record and record["live"] and record["live"]["bridge"]:
                result["bridge"] = record["live"]["bridge"]
                network_after = result["diff"]["after"].get("network")
                if network_after and network_after.get("bridge") is None:
                    network_after["bridge"] = record["live"]["bridge"]


def reconcile(requests: list, run: Runner, connect: Callable[[], Any], uri: str, check: bool,
              root: str = "/", prefixes: list | None = None, state_file: str | None = None) -> list:
    """Plan every request first (so one bad request changes nothing), then apply them in order.
    With ``state_file``, the libvirt networks created or adopted are recorded there, and those
    removed forgotten."""
    prefixes = prefixes or [""] * len(requests)
    results = [plan_request(request, run, connect, uri, root, prefix, state_file)
               for request, prefix in zip(requests, prefixes)]
    for request, result in zip(requests, results):
        uuid = result.pop("_uuid", None)
        if check:
            result.pop("_plans")
            continue
        net_plan = result["_plans"][1]
        apply_request(request, result, run, connect, uri)
        if state_file is not None and net_plan is not None:
            _record_owner(state_file, request, net_plan, uuid, connect)
    return results


def _record_owner(state_file: str, request: dict, net_plan: dict, uuid: str | None,
                  connect: Callable[[], Any]) -> None:
    """Note a network this run created or adopted; forget one it removed."""
    if request["state"] == "absent":
        if uuid is not None:
            update_owned(state_file, {}, {uuid})
        return
    if uuid is None or request["adopt"] or net_plan["steps"]:
        record = read_network(connect(), request["name"])
        if record is not None:
            update_owned(state_file, {record["config"]["uuid"]: request["name"]}, set())
