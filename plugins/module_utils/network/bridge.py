# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Linux bridges with iproute2: ``plan_bridge`` compares a bridge-mode request with the host
(a *bridge state* is ``{name, state, ports, addresses, persisted}`` read with ``ip -j``) into a
``BridgePlan`` of ``ip`` commands and persistence files; ``apply_bridge`` runs its steps
(``ensure_links``, ``ensure_files``; check mode walks them without touching anything).

A bridge xen_bridge creates carries the ifalias ``BRIDGE_MARK``; any other existing bridge
(an admin's VM bridge, libvirt's, docker's) is never changed or deleted unless adopted.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import Conflict, ValidationError
from ansible_collections.lcfg.xen.plugins.module_utils.common.plan import run_steps
from ansible_collections.lcfg.xen.plugins.module_utils.network.iproute import (
    IpCommandError,
    Runner,
    global_addresses,
    link_kind,
    link_state,
    read_link,
    read_links,
    routes_via,
    veth_peer_name,
)
from ansible_collections.lcfg.xen.plugins.module_utils.network.persist import (
    detect_persist,
    read_persist_files,
    render_persist_files,
)

__all__ = [
    "BRIDGE_MARK",
    "BridgePlan",
    "plan_bridge",
    "apply_bridge",
    "ensure_links",
    "ensure_files",
    "check_bridge_name",
    "standin_alias",
    "created_ports",
]

# The ifalias of a Linux bridge xen_bridge created (or adopted): any other existing bridge is
# someone else's (an admin's VM bridge, libvirt's, docker's) and is never changed or deleted.
BRIDGE_MARK = "lcfg.xen bridge"
# Bridge names the host's own tools use: libvirt's default networks, docker, the loopback.
_RESERVED_BRIDGE_RE = re.compile(r"^(virbr|docker)|^lo$")


@dataclass
class BridgePlan:
    """What applying a bridge request does: ``commands`` (``ip`` argv lists, in order) and
    ``files`` (path: new content, None to remove), described by ``actions``; ``before``/``after``
    are bridge states (None: no bridge), ``persist`` the persistence kind in effect."""

    bridge: str = ""
    state: str = "present"
    persist: str = "none"
    before: dict | None = None
    after: dict | None = None
    actions: list[str] = field(default_factory=list)
    commands: list[list[str]] = field(default_factory=list)
    files: dict[str, str | None] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.actions)

    def add(self, action: str | None, *commands: list[str]) -> None:
        """Append ``commands`` and the action that describes them (None: described elsewhere)."""
        self.commands.extend(commands)
        if action is not None:
            self.actions.append(action)


@dataclass
class _Host:
    """What planning read from the host for one bridge."""

    links: dict
    entry: dict | None
    net_entry: dict | None
    files: dict
    foreign: bool


@dataclass
class _Uplink:
    """What enslaving the netdev moves to the bridge: its addresses and routes."""

    addresses: list[str] = field(default_factory=list)
    routes: list[list[str]] = field(default_factory=list)
    static_routes: list[list[str]] = field(default_factory=list)
    dynamic: bool = False


def _cmd(*argv: str) -> list:
    return ["ip", *argv]


def standin_alias(bridge: str) -> str:
    """The ifalias an interface made by ``create_netdev`` carries: how teardown knows it made it."""
    return f"lcfg.xen stand-in port of bridge {bridge}"


def created_ports(links: dict, bridge: str) -> list:
    """Interfaces this collection created for ``bridge`` (sorted): those carrying its
    ``standin_alias``, and veth stand-ins made before the alias existed - a port of the
    bridge paired with a peer named by ``veth_peer_name``. Never any other interface."""
    return sorted(name for name, entry in links.items() if _made_for(bridge, name, entry, links))


def _made_for(bridge: str, name: str, entry: dict, links: dict) -> bool:
    if entry.get("ifalias") == standin_alias(bridge):
        return True
    return (
        link_kind(entry) == "veth"
        and entry.get("master") == bridge
        and not entry.get("ifalias")
        and entry.get("link") == veth_peer_name(name)
        and (links.get(veth_peer_name(name)) or {}).get("link") == name
    )


def plan_bridge(request: dict, run: Runner, root: str = "/", prefix: str = "") -> BridgePlan:
    """Compare a bridge request with the host; return the plan (reads only, changes nothing)."""
    bridge = request["bridge"]
    links = read_links(run)
    entry = links.get(bridge)
    if entry is not None and link_kind(entry) != "bridge":
        raise Conflict(
            f"{bridge} exists on this host and is a {link_kind(entry) or 'plain'} interface, "
            f"not a bridge: choose another bridge name ({prefix}bridge)"
        )
    plan = BridgePlan(
        bridge=bridge,
        state=request["state"],
        persist=request["persist"],
        before=link_state(entry, links) if entry is not None else None,
    )
    if plan.persist == "auto":
        plan.persist, note = detect_persist(root)
        if note and request["state"] == "present":
            plan.warnings.append(f"bridge {bridge}: {note}")
    host = _Host(
        links=links,
        entry=entry,
        net_entry=links.get(request["netdev"]) if request["netdev"] else None,
        files=read_persist_files(request, root),
        foreign=entry is not None and entry.get("ifalias") != BRIDGE_MARK,
    )
    if plan.before is not None:
        plan.before["persisted"] = sorted(host.files)
    if request["state"] == "absent":
        _plan_bridge_absent(plan, request, run, host, prefix)
    else:
        _plan_bridge_present(plan, request, run, host, root, prefix)
    return plan


def _plan_bridge_absent(plan: BridgePlan, request: dict, run: Runner, host: _Host, prefix: str) -> None:
    """Delete the bridge (its addresses back to the netdev first), what was created for it and its files."""
    bridge = plan.bridge
    netdev = request["netdev"]
    if host.entry is not None:
        addresses = plan.before["addresses"]
        if addresses and not (request["migrate_address"] and netdev and host.net_entry is not None):
            raise Conflict(
                f"bridge {bridge} carries {', '.join(addresses)}: deleting it drops them; set "
                f"migrate_address: true with netdev to move them back to the netdev first"
            )
        if addresses:
            routes = routes_via(run, bridge)
            for address in addresses:
                plan.add(
                    None, _cmd("address", "del", address, "dev", bridge), _cmd("address", "add", address, "dev", netdev)
                )
            plan.add(
                f"move {', '.join(addresses)} from {bridge} back to {netdev}",
                *[_cmd(*route[:1], "route", "replace", *route[1:], "dev", netdev) for route in routes],
            )
        plan.add(f"delete bridge {bridge}", _cmd("link", "del", "dev", bridge))
        _check_bridge_owned(request, host.foreign, plan.actions, prefix)
    # what this collection created for the bridge goes with it (a veth's peer with it);
    # an interface that was there before (the uplink, a mapped netdev) stays
    for port in created_ports(host.links, bridge):
        plan.add(
            f"delete {link_kind(host.links[port]) or 'stand-in'} interface {port}", _cmd("link", "del", "dev", port)
        )
    for path in sorted(host.files):
        plan.add(f"remove {path}")
    plan.files = {path: None for path in host.files}


def _plan_netdev(plan: BridgePlan, request: dict, run: Runner, net_entry: dict | None, prefix: str) -> _Uplink:
    """Validate the netdev before planning anything else: create a missing stand-in, or check an
    existing one may be enslaved; return what enslaving it moves to the bridge."""
    bridge = plan.bridge
    netdev = request["netdev"]
    uplink = _Uplink()
    if not netdev:
        return uplink
    if net_entry is None:
        if request["create_netdev"] == "none":
            raise ValidationError(
                f"{prefix}netdev",
                f"interface {netdev} does not exist on this host (ip link shows no such device): "
                "give an existing interface, or create_netdev: dummy (or veth) to create a stand-in",
            )
        if request["create_netdev"] == "dummy":
            made = [_cmd("link", "add", netdev, "type", "dummy")]
        else:
            made = [
                _cmd("link", "add", netdev, "type", "veth", "peer", "name", veth_peer_name(netdev)),
                _cmd("link", "set", "dev", veth_peer_name(netdev), "up"),
            ]
        plan.add(
            f"create {request['create_netdev']} interface {netdev}",
            *made,
            _cmd("link", "set", "dev", netdev, "alias", standin_alias(bridge)),
        )
        return uplink
    master = net_entry.get("master")
    if link_kind(net_entry) == "bridge":
        raise Conflict(f"{prefix}netdev: {netdev} is itself a bridge; give the physical interface")
    if master and master != bridge:
        raise Conflict(
            f"{prefix}netdev: {netdev} is already a port of bridge {master}; release it "
            f"(ip link set {netdev} nomaster) or use that bridge"
        )
    if master == bridge:
        return uplink
    uplink.addresses = global_addresses(net_entry)
    if uplink.addresses and not request["migrate_address"]:
        raise Conflict(
            f"{prefix}netdev: {netdev} carries {', '.join(uplink.addresses)}; enslaving it to "
            f"{bridge} would cut that address off. Set migrate_address: true (role "
            f"lcfg.xen.network: network_migrate_address: true) to move the address(es) and "
            f"routes to the bridge, or choose another netdev"
        )
    if uplink.addresses:
        uplink.routes = routes_via(run, netdev)
        uplink.static_routes = routes_via(run, netdev, include_dynamic=False)
        uplink.dynamic = any(info.get("dynamic") for info in net_entry.get("addr_info") or [])
    return uplink


def _plan_bridge_present(plan: BridgePlan, request: dict, run: Runner, host: _Host, root: str, prefix: str) -> None:
    """Create the bridge, enslave the netdev (moving its addresses and routes), bring both up,
    add the address, write the persistence files."""
    bridge = plan.bridge
    netdev = request["netdev"]
    before = plan.before
    uplink = _plan_netdev(plan, request, run, host.net_entry, prefix)
    if host.entry is None:
        plan.add(
            f"create bridge {bridge}",
            _cmd("link", "add", "name", bridge, "type", "bridge", "stp_state", "0", "forward_delay", "0"),
            _cmd("link", "set", "dev", bridge, "alias", BRIDGE_MARK),
        )
    if netdev and (host.net_entry is None or host.net_entry.get("master") != bridge):
        plan.add(f"enslave {netdev} to {bridge}", _cmd("link", "set", "dev", netdev, "master", bridge))
    if netdev and (host.net_entry is None or "UP" not in (host.net_entry.get("flags") or [])):
        plan.add(f"bring {netdev} up", _cmd("link", "set", "dev", netdev, "up"))
    if uplink.addresses:
        plan.add(
            f"move {', '.join(uplink.addresses)} from {netdev} to {bridge}",
            *[_cmd("address", "del", address, "dev", netdev) for address in uplink.addresses],
            *[_cmd("address", "add", address, "dev", bridge) for address in uplink.addresses],
        )
    if before is None or before["state"] != "up":
        plan.add(f"bring {bridge} up", _cmd("link", "set", "dev", bridge, "up"))
    plan.add(
        f"move {len(uplink.routes)} route(s) from {netdev} to {bridge}" if uplink.routes else None,
        *[_cmd(route[0], "route", "replace", *route[1:], "dev", bridge) for route in uplink.routes],
    )
    addresses = list(before["addresses"]) if before else []
    addresses += [address for address in uplink.addresses if address not in addresses]
    if request["address"] and request["address"] not in addresses:
        plan.add(f"add {request['address']} to {bridge}", _cmd("address", "add", request["address"], "dev", bridge))
        addresses.append(request["address"])
    routes = (routes_via(run, bridge, include_dynamic=False) if host.entry is not None else []) + uplink.static_routes
    files = render_persist_files(
        plan.persist,
        request,
        [a for a in addresses if not uplink.dynamic or a not in uplink.addresses],
        routes,
        uplink.dynamic,
        root,
    )
    _plan_files(plan, files, host.files)
    plan.after = {
        "name": bridge,
        "state": "up",
        "ports": sorted(set(before["ports"] if before else []) | ({netdev} if netdev else set())),
        "addresses": addresses,
        "stp": before["stp"] if before else False,
        "mac": before["mac"] if before else None,
        "persisted": sorted(files),
    }
    _check_bridge_owned(request, host.foreign, plan.actions, prefix)
    if host.foreign and request["adopt"]:
        # adopted: marked first, so a run that stops half-way leaves it lcfg.xen's
        plan.commands.insert(0, _cmd("link", "set", "dev", bridge, "alias", BRIDGE_MARK))
        plan.actions.insert(0, f"adopt bridge {bridge} (mark it lcfg.xen's)")
    if plan.persist == "ifupdown" and netdev:
        _warn_ifupdown_stanza(plan, netdev, root)


def _plan_files(plan: BridgePlan, files: dict, current: dict) -> None:
    """Write the persistence files that differ, remove those no longer wanted."""
    for path in sorted(set(files) | set(current)):
        if path not in files:
            plan.files[path] = None
            plan.add(f"remove {path}")
        elif current.get(path) != files[path]:
            plan.files[path] = files[path]
            plan.add(f"{'update' if path in current else 'write'} {path}")


def _warn_ifupdown_stanza(plan: BridgePlan, netdev: str, root: str) -> None:
    """/etc/network/interfaces configuring the netdev itself would win at the next boot."""
    interfaces = os.path.join(root, "etc/network/interfaces")
    if os.path.exists(interfaces):
        with open(interfaces, encoding="utf-8") as handle:
            if re.search(rf"^\s*iface\s+{re.escape(netdev)}\s", handle.read(), re.M):
                plan.warnings.append(
                    f"{interfaces} also configures {netdev}: remove its stanza, or the "
                    f"address stays on {netdev} instead of {plan.bridge} after a reboot"
                )


def _check_bridge_owned(request: dict, foreign: bool, actions: list, prefix: str) -> None:
    """Refuse to change or delete an existing bridge xen_bridge did not create, unless adopted."""
    if not foreign or not actions or request["adopt"]:
        return
    raise Conflict(
        f"{prefix}name: bridge {request['bridge']} exists on this host and was not created by lcfg.xen "
        f"(its ifalias is not {BRIDGE_MARK!r}); it would {'; '.join(actions)}. It is left alone: give the "
        "profile's bridge a name of its own, or, if lcfg.xen should manage it from now on, set adopt: true "
        f"(role lcfg.xen.network and playbooks/teardown.yml: network_adopt: [{request['name']}])"
    )


def check_bridge_name(request: dict, networks: list, owned: dict, prefix: str = "") -> None:
    """Refuse a bridge name the host's own tools use (``virbr*``, ``docker*``, ``lo``) or that a
    libvirt network lcfg.xen did not create names as its bridge (active or not: holding the name
    would stop that network from starting), unless the request adopts it."""
    bridge = request["bridge"]
    if bridge is None or request["adopt"]:
        return
    if _RESERVED_BRIDGE_RE.search(bridge):
        raise Conflict(
            f"{prefix}{'name' if bridge == request['name'] else 'bridge'}: {bridge} is a bridge name "
            "libvirt, docker or the kernel use for their own: choose another name (or, if lcfg.xen "
            f"should manage it, adopt: true / network_adopt: [{request['name']}])"
        )
    for network in networks:
        if (
            network.get("bridge") != bridge
            or network["name"] == request["name"]
            or owned.get(network.get("uuid")) == network["name"]
        ):
            continue
        raise Conflict(
            f"{prefix}{'name' if bridge == request['name'] else 'bridge'}: {bridge} is the bridge of "
            f"libvirt network {network['name']}, which lcfg.xen did not create: choose another name "
            f"(or, if lcfg.xen should manage it, adopt: true / network_adopt: [{request['name']}])"
        )


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


@dataclass
class _BridgeRun:
    """What the ``ensure_*`` steps of a bridge plan share."""

    plan: BridgePlan
    run: Runner
    check_mode: bool


# Each ensure_* step takes the bridge state so far and returns (changed, state after it).


def ensure_links(ctx: _BridgeRun, state: dict | None) -> tuple[bool, dict | None]:
    """Run the plan's iproute2 commands; stop at the first failure that left the host short of
    what the command wanted (a command whose aim another run met meanwhile is passed over)."""
    plan = ctx.plan
    if not plan.commands:
        return False, state
    if not ctx.check_mode:
        for argv in plan.commands:
            rc, _out, err = ctx.run(list(argv))
            if rc != 0 and not _command_done(argv, ctx.run):
                raise IpCommandError(f"{' '.join(argv)} failed (rc={rc}): {str(err).strip()}")
    if plan.after is None:
        return True, None
    return True, dict(plan.after, persisted=(state or {}).get("persisted", []))


def ensure_files(ctx: _BridgeRun, state: dict | None) -> tuple[bool, dict | None]:
    """Write (atomically, mode 0644) or remove the plan's persistence files."""
    plan = ctx.plan
    if not plan.files:
        return False, state
    if not ctx.check_mode:
        for path, content in plan.files.items():
            _write_file(path, content)
    return True, None if state is None else dict(state, persisted=(plan.after or {}).get("persisted", []))


def _write_file(path: str, content: str | None) -> None:
    if content is None:
        if os.path.exists(path):
            os.unlink(path)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.lcfg-xen.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(content)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def apply_bridge(plan: BridgePlan, run: Runner, check_mode: bool = False) -> tuple[bool, Any]:
    """Carry out ``plan`` (in check mode: walk its steps changing nothing); return
    ``(changed, bridge state after)``."""
    return run_steps((ensure_links, ensure_files), _BridgeRun(plan=plan, run=run, check_mode=check_mode), plan.before)
