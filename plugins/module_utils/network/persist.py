# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""How a Linux bridge survives a reboot: the host's own network configuration (ifupdown's
``/etc/network/interfaces.d`` or systemd-networkd's ``/etc/systemd/network``), written under a
root directory so a chroot or an image can be prepared too.
"""

from __future__ import annotations

import os

from ansible_collections.lcfg.xen.plugins.module_utils.network.iproute import veth_peer_name

__all__ = ["MANAGED_MARK", "detect_persist", "render_persist_files", "read_persist_files"]

MANAGED_MARK = "lcfg.xen.xen_bridge"


def detect_persist(root: str = "/") -> tuple:
    """(kind, warning) for ``persist: auto``: networkd when enabled, else ifupdown, else none."""
    systemd = os.path.join(root, "etc/systemd/system")
    if os.path.isdir(systemd):
        for entry in os.listdir(systemd):
            if entry.endswith(".wants") and os.path.exists(os.path.join(systemd, entry, "systemd-networkd.service")):
                return "networkd", None
    if os.path.exists(os.path.join(root, "etc/network/interfaces")):
        return "ifupdown", None
    return "none", (
        "neither systemd-networkd nor ifupdown (/etc/network/interfaces) manages this host's "
        "network: the bridge is live only and disappears at reboot; set persist: to choose"
    )


def _persist_paths(kind: str, request: dict, root: str) -> list:
    bridge = request["bridge"]
    if kind == "ifupdown":
        return [os.path.join(root, "etc/network/interfaces.d", f"lcfg-xen-{bridge}")]
    if kind == "networkd":
        base = os.path.join(root, "etc/systemd/network")
        paths = [
            os.path.join(base, f"20-lcfg-xen-{bridge}.netdev"),
            os.path.join(base, f"20-lcfg-xen-{bridge}.network"),
        ]
        if request["netdev"]:
            paths.append(os.path.join(base, f"20-lcfg-xen-{bridge}-port.network"))
            paths.append(os.path.join(base, f"20-lcfg-xen-{bridge}-port.netdev"))
        return paths
    return []


def render_persist_files(kind: str, request: dict, addresses: list, routes: list, dhcp: bool, root: str = "/") -> dict:
    """``{path: content}`` that recreate the bridge at boot (empty for ``none``)."""
    header = f"# Written by {MANAGED_MARK} for bridge {request['bridge']}; changes here are overwritten.\n"
    paths = _persist_paths(kind, request, root)
    if kind == "ifupdown":
        return {paths[0]: _ifupdown_stanzas(header, request, addresses, routes, dhcp)}
    if kind == "networkd":
        units = _networkd_units(header, request, addresses, routes, dhcp)
        return dict(zip(paths[: len(units)], units, strict=True))
    return {}


def _ifupdown_stanzas(header: str, request: dict, addresses: list, routes: list, dhcp: bool) -> str:
    """The interfaces.d file: the stand-in netdev (if made here), then the bridge."""
    bridge = request["bridge"]
    netdev = request["netdev"]
    lines = [header.rstrip("\n")]
    if netdev and request["create_netdev"] == "dummy":
        lines += [
            f"auto {netdev}",
            f"iface {netdev} inet manual",
            f"    pre-up ip link add {netdev} type dummy || true",
            "",
        ]
    if netdev and request["create_netdev"] == "veth":
        peer = veth_peer_name(netdev)
        lines += [
            f"auto {netdev}",
            f"iface {netdev} inet manual",
            f"    pre-up ip link add {netdev} type veth peer name {peer} || true",
            f"    up ip link set {peer} up",
            "",
        ]
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
    return "\n".join(lines) + "\n"


def _networkd_units(header: str, request: dict, addresses: list, routes: list, dhcp: bool) -> list:
    """The networkd files in ``_persist_paths`` order: the bridge's .netdev and .network, then
    the port's .network and the stand-in's .netdev (as far as they apply)."""
    bridge = request["bridge"]
    netdev = request["netdev"]
    units = [header + f"[NetDev]\nName={bridge}\nKind=bridge\n\n[Bridge]\nSTP=no\nForwardDelaySec=0\n"]
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
    units.append("\n".join(network) + "\n")
    if netdev:
        units.append(header + f"[Match]\nName={netdev}\n\n[Network]\nBridge={bridge}\n")
        if request["create_netdev"] == "dummy":
            units.append(header + f"[NetDev]\nName={netdev}\nKind=dummy\n")
        elif request["create_netdev"] == "veth":
            units.append(header + (f"[NetDev]\nName={netdev}\nKind=veth\n\n[Peer]\nName={veth_peer_name(netdev)}\n"))
    return units


def read_persist_files(request: dict, root: str = "/") -> dict:
    """``{path: content}`` of this bridge's persistence files that exist, of every kind."""
    files = {}
    for kind in ("ifupdown", "networkd"):
        for path in _persist_paths(kind, request, root):
            if os.path.exists(path):
                with open(path, encoding="utf-8") as handle:
                    files[path] = handle.read()
    return files
