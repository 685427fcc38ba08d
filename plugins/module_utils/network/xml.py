# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""libvirt network XML: ``parse_network_xml`` reads a definition into a *network state*
(``{name, mode, bridge, netdev, address, dhcp_range, dhcp_hosts, tftp_root, boot_file, uuid}``);
``render_network_xml`` writes one, replacing only the parts xen_bridge manages in an existing
definition; ``host_xml``/``range_xml`` are the fragments libvirt's network update takes.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.lcfg.xen.plugins.module_utils.common.imports import optional_import

etree = optional_import("lxml.etree")[0]  # the modules check for it: common/module.require_lxml

__all__ = ["parse_network_xml", "render_network_xml", "host_xml", "range_xml"]


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
    tftp_root = boot_file = None
    ip_el = _first_ip(root)
    if ip_el is not None:
        tftp_root, boot_file = _network_boot_of(ip_el)
    if ip_el is not None and ip_el.get("address"):
        prefix = _prefix_of(ip_el)
        address = f"{ipaddress.ip_address(ip_el.get('address'))}" + (f"/{prefix}" if prefix is not None else "")
        dhcp = ip_el.find("dhcp")
        if dhcp is not None:
            rng = dhcp.find("range")
            if rng is not None:
                dhcp_range = {"start": rng.get("start"), "end": rng.get("end")}
            for host in dhcp.findall("host"):
                hosts.append(
                    {
                        "mac": host.get("mac").lower() if host.get("mac") else None,
                        "ip": host.get("ip"),
                        "name": host.get("name"),
                    }
                )
    return {
        "name": root.findtext("name"),
        "mode": mode,
        "bridge": bridge_el.get("name") if bridge_el is not None else None,
        "netdev": netdev,
        "address": address,
        "dhcp_range": dhcp_range,
        "dhcp_hosts": sorted(hosts, key=lambda host: host["mac"] or ""),
        "tftp_root": tftp_root,
        "boot_file": boot_file,
        "uuid": root.findtext("uuid"),
    }


def _network_boot_of(ip_el) -> tuple:
    """(tftp root, DHCP boot file) of an ``<ip>`` element: ``<tftp root>``, ``<dhcp><bootp file>``."""
    tftp = ip_el.find("tftp")
    bootp = ip_el.find("dhcp/bootp")
    return (tftp.get("root") if tftp is not None else None, bootp.get("file") if bootp is not None else None)


def _set_network_boot(ip_el, state: dict) -> None:
    """Write ``tftp_root`` and ``boot_file`` of ``state`` into ``<ip>`` (None or "": none)."""
    for old in ip_el.findall("tftp"):
        ip_el.remove(old)
    dhcp = ip_el.find("dhcp")
    for old in dhcp.findall("bootp") if dhcp is not None else []:
        dhcp.remove(old)
    if state.get("tftp_root"):
        tftp = etree.Element("tftp")
        tftp.set("root", state["tftp_root"])
        if dhcp is not None:
            dhcp.addprevious(tftp)
        else:
            ip_el.append(tftp)
    if state.get("boot_file"):
        if dhcp is None:
            dhcp = etree.SubElement(ip_el, "dhcp")
        etree.SubElement(dhcp, "bootp").set("file", state["boot_file"])


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
        _set_network_boot(ip_el, state)
    return etree.tostring(root, encoding="unicode")


def host_xml(host: dict) -> str:
    """A DHCP reservation's ``<host>`` element, as libvirt's network update takes it."""
    return etree.tostring(_host_element(host), encoding="unicode")


def range_xml(rng: dict) -> str:
    """A DHCP range's ``<range>`` element, as libvirt's network update takes it."""
    return etree.tostring(_range_element(rng), encoding="unicode")
