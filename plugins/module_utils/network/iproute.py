# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Linux links and bridges through iproute2: read with ``ip -j``, change with argument lists.

Nothing here imports Ansible or libvirt. Every function that touches the host takes a
``run`` callable: ``run(argv: list[str]) -> (rc, stdout, stderr)``; the modules pass
``AnsibleModule.run_command`` (never a shell), the unit tests a fake.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import LibvirtFailure, ValidationError
from ansible_collections.lcfg.xen.plugins.module_utils.common.validate import IFNAME_MAX, IFNAME_RE

__all__ = [
    "Runner",
    "IFNAME_MAX",
    "valid_ifname",
    "IpCommandError",
    "ip_json",
    "read_link",
    "read_links",
    "link_kind",
    "link_state",
    "list_bridges",
    "global_addresses",
    "routes_via",
    "veth_peer_name",
]

Runner = Callable[[list], tuple]


class IpCommandError(LibvirtFailure):
    """An iproute2 command failed (reported like a libvirt failure: the host refused)."""


def valid_ifname(value: object, parameter: str) -> str:
    """Linux interface name rules (at most 15 characters, no '/', whitespace or ':')."""
    text = "" if value is None else str(value)
    if not text:
        raise ValidationError(parameter, "an interface name may not be empty")
    if len(text) > IFNAME_MAX:
        raise ValidationError(
            parameter,
            f"interface name {text!r} is {len(text)} characters; Linux allows at most {IFNAME_MAX}",
        )
    if text in (".", "..") or not IFNAME_RE.match(text) or ":" in text:
        raise ValidationError(
            parameter,
            f"invalid interface name {text!r}: use letters, digits, '_', '.', '-', '+'",
        )
    return text


def veth_peer_name(netdev: str) -> str:
    """Name of the peer end when ``create_netdev: veth`` makes ``netdev``."""
    return netdev[: IFNAME_MAX - 2] + "-p"


def ip_json(run: Runner, argv: list) -> list:
    """Run ``argv`` (an ``ip -j``/``bridge -j`` command) and parse its JSON list."""
    rc, out, err = run(list(argv))
    if rc != 0:
        raise IpCommandError(f"{' '.join(argv)} failed (rc={rc}): {str(err).strip()}")
    text = str(out).strip()
    if not text:
        return []
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise IpCommandError(f"{' '.join(argv)} printed no JSON: {exc}") from exc
    return data if isinstance(data, list) else [data]


def read_links(run: Runner) -> dict:
    """All links with details and addresses: ``{ifname: ip -j -d addr entry}``."""
    return {entry["ifname"]: entry for entry in ip_json(run, ["ip", "-j", "-d", "addr", "show"])}


def read_link(run: Runner, name: str) -> dict | None:
    """One link (``ip -j -d addr show dev name``), or None when it does not exist."""
    rc, out, err = run(["ip", "-j", "-d", "addr", "show", "dev", name])
    if rc != 0:
        message = str(err)
        if "does not exist" in message or "Cannot find device" in message:
            return None
        raise IpCommandError(f"ip -j -d addr show dev {name} failed (rc={rc}): {message.strip()}")
    data = json.loads(out) if str(out).strip() else []
    return data[0] if data else None


def link_kind(entry: dict) -> str | None:
    return (entry.get("linkinfo") or {}).get("info_kind")


def global_addresses(entry: dict) -> list:
    """Addresses a host uses (not link-local), as ``addr/prefix`` strings, in kernel order."""
    result = []
    for info in entry.get("addr_info") or []:
        if info.get("scope") in ("link", "host") or info.get("family") not in ("inet", "inet6"):
            continue
        result.append(f"{info['local']}/{info['prefixlen']}")
    return result


def link_state(entry: dict, links: dict | None = None) -> dict:
    """Normalised view of a bridge: name, state (admin up/down), ports, addresses, stp, mac."""
    flags = entry.get("flags") or []
    info_data = (entry.get("linkinfo") or {}).get("info_data") or {}
    name = entry["ifname"]
    ports = []
    for other in (links or {}).values():
        if other.get("master") == name:
            ports.append(other["ifname"])
    return {
        "name": name,
        "state": "up" if "UP" in flags else "down",
        "ports": sorted(ports),
        "addresses": global_addresses(entry),
        "stp": bool(info_data.get("stp_state", 0)),
        "mac": entry.get("address"),
    }


def list_bridges(run: Runner) -> list:
    """Every Linux bridge on the host in its normalised form, sorted by name."""
    links = read_links(run)
    result = []
    for entry in links.values():
        if link_kind(entry) == "bridge":
            result.append(link_state(entry, links))
    return sorted(result, key=lambda item: item["name"])


def routes_via(run: Runner, dev: str, include_dynamic: bool = True) -> list:
    """Routes through ``dev`` that the host added itself (not the kernel's connected routes);
    without ``include_dynamic``, also not those a DHCP client or router advertisement added.

    Returned as ``ip route`` argument lists without ``dev``, e.g. ``['default', 'via', '10.0.0.1']``.
    """
    result = []
    for family in ("-4", "-6"):
        for route in ip_json(run, ["ip", "-j", family, "route", "show", "dev", dev]):
            if not include_dynamic and route.get("protocol") in ("dhcp", "ra"):
                continue
            if route.get("protocol") == "kernel" or route.get("type") in ("local", "broadcast", "multicast"):
                continue
            dst = route.get("dst")
            if family == "-6" and str(dst).startswith("fe80"):
                continue
            argv = [family, str(dst)]
            if route.get("gateway"):
                argv += ["via", route["gateway"]]
            if route.get("metric") is not None:
                argv += ["metric", str(route["metric"])]
            result.append(argv)
    return result
