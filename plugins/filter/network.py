# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters of the network role and the teardown playbook: what a host's settings (``xen_host``,
as the lcfg.xen.lcfg inventory plugin gives it) mean as ``xen_bridge`` items, and which
hypervisor profiles of the inventory describe the same machine.

Documentation: the ``<filter>.yml`` files beside this one (``ansible-doc -t filter``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

NONE = "none"


def _networks(host: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The bridges and libvirt networks ``host`` (a ``xen_host``) defines, in converge order:
    ``{name, mode, device, tag, netdev, custom}`` for bridges (``device``: the Linux device,
    which differs from ``name`` for a name Linux refuses; ``custom``: xen.xendconfcustombridge),
    ``{name, mode, address}`` for the NAT and routed networks that are on."""
    if not isinstance(host, Mapping):
        raise AnsibleFilterError(f"expected the host's network settings (xen_host), got {type(host).__name__}")
    found: list[dict[str, Any]] = []
    for bridge in (host.get("bridges") or []) if host.get("bridge_network") else []:
        found.append(
            {
                "name": bridge["bridge"],
                "mode": "bridge",
                "device": bridge.get("device") or bridge["bridge"],
                "tag": bridge.get("tag"),
                "netdev": bridge.get("netdev"),
                "custom": False,
            }
        )
    custom = host.get("custom_bridge")
    if custom:
        found.append(
            {
                "name": custom,
                "mode": "bridge",
                "device": host.get("custom_bridge_device") or custom,
                "tag": None,
                "netdev": None,
                "custom": True,
            }
        )
    if host.get("nat_network"):
        found.append({"name": host["nat_network_name"], "mode": "nat", "address": host.get("nat_address")})
    if host.get("route_network"):
        found.append({"name": host["route_network_name"], "mode": "route", "address": host.get("route_address")})
    return found


def _named(network: Mapping[str, Any], adopt: Iterable[str], **fields: Any) -> dict[str, Any]:
    """The ``xen_bridge`` item of ``network``: a bridge whose Linux device differs from its
    name is the libvirt network of that name on the device."""
    item: dict[str, Any] = {"name": network["name"]}
    if network["mode"] == "bridge" and network["device"] != network["name"]:
        item.update(bridge=network["device"], libvirt_network=True)
    item.update(fields)
    item["adopt"] = network["name"] in adopt
    return item


def _bridge_port(
    network: Mapping[str, Any],
    persist: str,
    standin: str,
    standin_prefix: str,
    netdevs: Mapping[str, str],
    netdevs_create: str,
    migrate_address: bool,
) -> dict[str, Any]:
    """A profile bridge's port: the host interface the play maps its netdev to, else a stand-in
    (``<prefix><tag>``), else none. Stand-ins and port-less bridges are not persisted."""
    netdev = network["netdev"]
    if netdev and netdev in netdevs:
        port: dict[str, Any] = {"netdev": netdevs[netdev], "persist": persist}
        if netdevs_create != NONE:
            port.update(create_netdev=netdevs_create, persist=NONE)
    elif standin != NONE and not netdev:
        port = {"netdev": f"{standin_prefix}{network['tag']}", "create_netdev": standin, "persist": NONE}
    else:  # (a netdev the play did not map never gets here: the role's preflight refuses it)
        return {"persist": NONE}
    if migrate_address:
        port["migrate_address"] = True
    return port


def network_items(
    host: Mapping[str, Any],
    state: str = "present",
    adopt: Iterable[str] = (),
    bridges: bool = True,
    custom_bridge: bool = True,
    nat: bool = True,
    route: bool = True,
    persist: str = "auto",
    standin: str = "veth",
    standin_prefix: str = "lcfg-",
    netdevs: Mapping[str, str] | None = None,
    netdevs_create: str = NONE,
    migrate_address: bool = False,
    dhcp_hosts: list | None = None,
    tftp_root: str | None = None,
    boot_file: str | None = None,
) -> list[dict[str, Any]]:
    """The ``networks`` option of ``xen_bridge`` for ``host``'s bridges and libvirt networks."""
    adopt = list(adopt or [])
    if state == "absent":
        return [
            _named(n, adopt, **({} if n["mode"] == "bridge" else {"mode": n["mode"]}), state="absent")
            for n in _networks(host)
        ]
    if state != "present":
        raise AnsibleFilterError(f"network_items: state must be present or absent, got {state!r}")
    items = []
    for network in _networks(host):
        if network["mode"] == "bridge" and network["custom"] and custom_bridge:
            items.append(_named(network, adopt, mode="bridge", persist=NONE))
        elif network["mode"] == "bridge" and not network["custom"] and bridges:
            items.append(
                _named(
                    network,
                    adopt,
                    mode="bridge",
                    **_bridge_port(
                        network, persist, standin, standin_prefix, netdevs or {}, netdevs_create, migrate_address
                    ),
                )
            )
        elif network["mode"] == "nat" and nat:
            dhcp = {} if dhcp_hosts is None else {"dhcp_hosts": list(dhcp_hosts)}
            # network boot: the play's TFTP directory and boot file (never a profile's)
            dhcp.update({k: v for k, v in (("tftp_root", tftp_root), ("boot_file", boot_file)) if v is not None})
            items.append(_named(network, adopt, mode="nat", address=network["address"], **dhcp))
        elif network["mode"] == "route" and route and network["address"]:
            items.append(_named(network, adopt, mode="route", address=network["address"]))
    return items


def _machine(hostvars: Mapping[str, Any], name: str) -> str:
    """Which machine an inventory host is: localhost for a local connection, else its address."""
    host = hostvars[name]
    if host.get("ansible_connection", "ssh") == "local":
        return "localhost"
    return host.get("ansible_host", name)


def network_peers(hosts: Iterable[str], hostvars: Mapping[str, Any], machine: str, myself: str) -> dict[str, Any]:
    """The other hypervisor profiles (``hosts``, in order) of ``machine`` with their ``xen_host``."""
    return {
        name: hostvars[name]["xen_host"]
        for name in hosts or []
        if name != myself and "xen_host" in hostvars[name] and _machine(hostvars, name) == machine
    }


def _kinds(host: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(name, mode) of the libvirt networks ``host`` defines (a bridge is one only on a derived device)."""
    return [(n["name"], n["mode"]) for n in _networks(host) if n["mode"] != "bridge" or n["device"] != n["name"]]


def network_kind_clashes(host: Mapping[str, Any], myself: str, peers: Mapping[str, Any]) -> list[str]:
    """One message per libvirt network ``host`` defines with another kind than a peer profile does."""
    clashes = []
    for name, mode in _kinds(host):
        for peer, peer_host in (peers or {}).items():
            for other_mode in [m for n, m in _kinds(peer_host) if n == name and m != mode]:
                clashes.append(
                    f"libvirt network {name} is a {mode} network in the profile of {myself} but a "
                    f"{other_mode} network in the profile of {peer} on the same machine: one name is "
                    "one network; give one of them another name (xen.natnetwork, xen.routenetwork or "
                    "the bridge)"
                )
    return clashes


def network_nat_sharing(host: Mapping[str, Any], peers: Mapping[str, Any]) -> list[str]:
    """The peer profiles (in ``peers`` order) that define ``host``'s NAT network (same name)."""
    return [
        name
        for name, peer in (peers or {}).items()
        if peer.get("nat_network") and peer.get("nat_network_name") == host.get("nat_network_name")
    ]


def _unique(values: Iterable[Any]) -> list[Any]:
    """``values`` without repeats, first occurrence kept; text compared ignoring case (as
    Ansible's ``unique`` filter does)."""
    seen: list[Any] = []
    found: list[Any] = []
    for value in values:
        key = value.lower() if isinstance(value, str) else value
        if key not in seen:
            seen.append(key)
            found.append(value)
    return found


def network_nat_other_addresses(host: Mapping[str, Any], peers: Mapping[str, Any]) -> list[str]:
    """The addresses the profiles sharing ``host``'s NAT network give it other than ``host``'s own."""
    addresses = _unique(peers[name].get("nat_address") for name in network_nat_sharing(host, peers))
    return [address for address in addresses if address != host.get("nat_address")]


def network_dhcp_hosts(
    host: Mapping[str, Any], peers: Mapping[str, Any], guests: Iterable[str], hostvars: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The DHCP reservations of ``host``'s NAT network, sorted by MAC: ``host``'s own for the
    inventory hosts ``guests`` (by their ``xen_domain.name``) and, as the model gives them, those
    of every profile sharing the network (they all define the same network)."""
    names = []
    for guest in guests or []:
        if "xen_domain" not in hostvars[guest]:
            raise AnsibleFilterError(
                f"network_dhcp_hosts: guest {guest} has no xen_domain (not a guest of the inventory)"
            )
        names.append(hostvars[guest]["xen_domain"]["name"])
    own = [item for item in host.get("nat_dhcp_hosts") or [] if item.get("name") in names]
    shared = [item for name in network_nat_sharing(host, peers) for item in peers[name].get("nat_dhcp_hosts") or []]
    return sorted(_unique(own + shared), key=lambda item: str(item.get("mac", "")).lower())


class FilterModule:
    """lcfg.xen network filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "network_items": network_items,
            "network_peers": network_peers,
            "network_kind_clashes": network_kind_clashes,
            "network_nat_sharing": network_nat_sharing,
            "network_nat_other_addresses": network_nat_other_addresses,
            "network_dhcp_hosts": network_dhcp_hosts,
        }
