# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""libvirt networks (NAT, routed, bridge): ``read_network``/``list_networks`` read them (a
*network state* is ``{name, mode, bridge, netdev, address, dhcp_range, dhcp_hosts, autostart,
active}``); ``plan_network`` compares a request with one into a ``NetworkPlan``;
``apply_network`` runs its steps (``ensure_*``; check mode walks them changing nothing).

Reservations and the DHCP range change live (libvirt's network update); what only a restart
changes (mode, bridge, forward device, address) redefines the network and restarts it when the
request says ``restart``, else waits for its next restart (``pending_restart``).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import Conflict, LibvirtFailure, ValidationError
from ansible_collections.lcfg.xen.plugins.module_utils.common.libvirt import is_missing, libvirt
from ansible_collections.lcfg.xen.plugins.module_utils.common.plan import run_steps
from ansible_collections.lcfg.xen.plugins.module_utils.network.iproute import IpCommandError, Runner
from ansible_collections.lcfg.xen.plugins.module_utils.network.request import DEFAULT_VIF_SCRIPTS, MODES, inside_subnet
from ansible_collections.lcfg.xen.plugins.module_utils.network.xml import (
    etree,
    host_xml,
    parse_network_xml,
    range_xml,
    render_network_xml,
)

__all__ = [
    "DhcpUpdate",
    "NetworkPlan",
    "read_network",
    "list_networks",
    "plan_network",
    "check_mode_kept",
    "check_subnet_free",
    "apply_network",
    "ensure_stopped",
    "ensure_undefined",
    "ensure_defined",
    "ensure_dhcp_updated",
    "ensure_autostart",
    "ensure_started",
    "ensure_restarted",
]


@dataclass
class DhcpUpdate:
    """One live change of a network's DHCP section (libvirt's ``virNetworkUpdate``):
    ``command`` ``delete``, ``modify`` or ``add-last`` of ``section`` ``host`` or ``range``
    with the element ``xml``."""

    command: str
    section: str
    xml: str


@dataclass
class NetworkPlan:
    """What applying a network request does, described by ``actions``; ``before``/``after`` are
    network states (None: no network). The ensure_* steps act on the fields they read."""

    name: str
    state: str = "present"
    before: dict | None = None
    after: dict | None = None
    actions: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    pending_restart: bool = False
    stop: bool = False  # ensure_stopped (removal)
    undefine: bool = False  # ensure_undefined
    define_xml: str | None = None  # ensure_defined: define or redefine with this XML
    dhcp_updates: list[DhcpUpdate] = field(default_factory=list)  # ensure_dhcp_updated
    autostart: bool | None = None  # ensure_autostart: set it to this
    start: bool = False  # ensure_started
    restart: bool = False  # ensure_restarted: stop, start, reattach running guests

    @property
    def changed(self) -> bool:
        return bool(self.actions)


# --------------------------------------------------------------------------- reading


def _lookup(conn, name: str):
    try:
        return conn.networkLookupByName(name)
    except Exception as exc:  # libvirt.libvirtError
        if is_missing(exc):
            return None
        raise LibvirtFailure(f"looking up libvirt network {name!r}: {exc}") from exc


def _config_of(state: dict) -> dict:
    keys = ("name", "mode", "bridge", "netdev", "address", "dhcp_range", "dhcp_hosts", "tftp_root", "boot_file")
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
        flags = libvirt.VIR_NETWORK_XML_INACTIVE
        try:
            inactive_xml = net.XMLDesc(flags)
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
    for net in conn.listAllNetworks(0):  # every network, active or not
        record = _network_record(net)
        item = _config_of(record["config"])
        item.update(
            {
                "uuid": record["config"]["uuid"],
                "active": record["active"],
                "autostart": record["autostart"],
                "persistent": record["persistent"],
                "vif_script": DEFAULT_VIF_SCRIPTS.get(item["mode"] if item["mode"] in MODES else "bridge"),
            }
        )
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


# --------------------------------------------------------------------------- planning


def _desired_network(request: dict, current: dict | None) -> dict:
    """Request -> full desired network state; None fields keep the current value."""
    base = _config_of(current["config"]) if current else {}
    desired = {"name": request["name"], "mode": request["mode"]}
    desired["bridge"] = request["bridge"] if request["bridge"] is not None else base.get("bridge")
    if request["mode"] == "bridge":
        desired.update(
            {
                "netdev": None,
                "address": None,
                "dhcp_range": None,
                "dhcp_hosts": [],
                "tftp_root": None,
                "boot_file": None,
            }
        )
        return desired
    for key in ("tftp_root", "boot_file"):  # "" removes it
        value = request.get(key)
        desired[key] = (value or None) if value is not None else base.get(key)
    desired["netdev"] = request["netdev"] if request["netdev"] is not None else base.get("netdev")
    desired["address"] = request["address"] if request["address"] is not None else base.get("address")
    desired["dhcp_range"] = request["dhcp_range"] if request["dhcp_range"] is not None else base.get("dhcp_range")
    desired["dhcp_hosts"] = request["dhcp_hosts"] if request["dhcp_hosts"] is not None else base.get("dhcp_hosts", [])
    return desired


def plan_network(request: dict, current: dict | None, prefix: str = "") -> NetworkPlan:
    """Compare a network request with libvirt's record (``read_network``); return the plan
    (reads nothing more, changes nothing)."""
    plan = NetworkPlan(name=request["name"], state=request["state"], before=_network_view(current))
    if request["state"] == "absent":
        if current is not None:
            plan.stop = current["active"]
            plan.undefine = current["persistent"]
            plan.actions += [f"stop libvirt network {plan.name}"] if plan.stop else []
            plan.actions += [f"undefine libvirt network {plan.name}"] if plan.undefine else []
        return plan
    desired = _desired_network(request, current)
    _check_desired(desired, prefix)
    plan.after = dict(desired, autostart=request["autostart"], active=True)
    if current is None:
        plan.define_xml = render_network_xml(desired)
        plan.autostart = request["autostart"]
        plan.start = True
        plan.actions += [
            f"define libvirt network {plan.name}",
            f"set autostart {_on(request['autostart'])}",
            f"start libvirt network {plan.name}",
        ]
        return plan
    _plan_existing(plan, request, current, desired)
    return plan


def _on(flag: bool) -> str:
    return "on" if flag else "off"


def _check_desired(desired: dict, prefix: str) -> None:
    """What a network needs before it is defined: an address (nat/route) or a bridge (bridge),
    DHCP inside the subnet (a value kept from the current definition too)."""
    name = desired["name"]
    if desired["mode"] != "bridge" and desired["address"] is None:
        raise ValidationError(
            f"{prefix}address",
            f"libvirt network {name} does not exist yet: give the host's address on it, e.g. address: 10.0.0.254/24",
        )
    if desired["mode"] == "bridge" and desired["bridge"] is None:
        raise ValidationError(f"{prefix}bridge", f"network {name} needs the bridge device it forwards to")
    for index, host in enumerate(desired["dhcp_hosts"] or []):
        inside_subnet(host["ip"], desired["address"], f"{prefix}dhcp_hosts[{index}].ip")
    if desired.get("boot_file") and not desired.get("tftp_root"):
        raise ValidationError(
            f"{prefix}boot_file",
            f"network {name} serves no TFTP: set tftp_root (the directory holding {desired['boot_file']})",
        )
    if desired["dhcp_range"]:
        inside_subnet(desired["dhcp_range"]["start"], desired["address"], f"{prefix}dhcp_range")
        inside_subnet(desired["dhcp_range"]["end"], desired["address"], f"{prefix}dhcp_range")


def _plan_existing(plan: NetworkPlan, request: dict, current: dict, desired: dict) -> None:
    """An existing network: redefine it or update it live, set autostart, start or restart it."""
    name = plan.name
    config = _config_of(current["config"])
    restart_keys = [key for key in _STATIC_KEYS if config.get(key) != desired.get(key)]
    if config["dhcp_range"] != desired["dhcp_range"] and (
        config["dhcp_range"] is None or desired["dhcp_range"] is None
    ):
        restart_keys.append("dhcp_range")
    redefine_keys = restart_keys + ([] if current["persistent"] else ["persistent"])
    if redefine_keys:
        plan.define_xml = render_network_xml(desired, current["xml"])
        plan.actions.append(f"redefine libvirt network {name} ({', '.join(redefine_keys)})")
    else:
        if config["dhcp_range"] != desired["dhcp_range"]:
            plan.dhcp_updates += [
                DhcpUpdate("delete", "range", range_xml(config["dhcp_range"])),
                DhcpUpdate("add-last", "range", range_xml(desired["dhcp_range"])),
            ]
            plan.actions.append(
                f"change DHCP range of {name} to {desired['dhcp_range']['start']}-{desired['dhcp_range']['end']} (live)"
            )
        _plan_hosts(plan, config["dhcp_hosts"], desired["dhcp_hosts"])
    if current["autostart"] != request["autostart"]:
        plan.autostart = request["autostart"]
        plan.actions.append(f"set autostart {_on(request['autostart'])}")
    # the running network keeps its old definition for what cannot change live
    stale_live = current["active"] and current["live"] is not None and (_static(current["live"]) != _static(config))
    if not current["active"]:
        plan.start = True
        plan.actions.append(f"start libvirt network {name}")
    elif restart_keys or stale_live:
        if request["restart"]:
            plan.restart = True
            plan.actions.append(f"restart libvirt network {name} and reattach running guests' interfaces")
        else:
            plan.pending_restart = True
            plan.warnings.append(
                f"libvirt network {name}: the new definition takes effect when the network restarts; "
                "restarting detaches running guests' interfaces (set restart: true to restart now and "
                "reattach them)"
            )


#: what only a restart changes (dnsmasq reads its TFTP root and boot file when it starts)
_STATIC_KEYS = ("mode", "bridge", "netdev", "address", "tftp_root", "boot_file")


def _static(state: dict) -> dict:
    """The part of a network's definition that only a restart changes."""
    return {key: state.get(key) for key in _STATIC_KEYS}


def _plan_hosts(plan: NetworkPlan, current: list, desired: list) -> None:
    """DHCP reservations changed in place: deletes, then modifies, then additions."""
    name = plan.name
    have = {host["mac"]: host for host in current if host.get("mac")}
    want = {host["mac"]: host for host in desired}
    for mac in sorted(set(have) - set(want)):
        plan.dhcp_updates.append(DhcpUpdate("delete", "host", host_xml(have[mac])))
        plan.actions.append(f"remove DHCP reservation {mac} {have[mac]['ip']} from {name} (live)")
    for mac in sorted(set(have) & set(want)):
        if have[mac] != want[mac]:
            plan.dhcp_updates.append(DhcpUpdate("modify", "host", host_xml(want[mac])))
            plan.actions.append(f"change DHCP reservation {mac} to {want[mac]['ip']} in {name} (live)")
    for mac in sorted(set(want) - set(have)):
        plan.dhcp_updates.append(DhcpUpdate("add-last", "host", host_xml(want[mac])))
        plan.actions.append(f"add DHCP reservation {mac} {want[mac]['ip']} to {name} (live)")


def check_mode_kept(request: dict, current: dict | None, prefix: str = "") -> None:
    """Refuse to turn an existing libvirt network into another kind (NAT, routed, bridge) in place:
    its guests and whoever made it rely on its kind, so a profile naming it with another mode is
    a mistake or a takeover, never a change to make quietly (adopted or not)."""
    if current is None or request["state"] != "present":
        return
    have = current["config"].get("mode")
    if have != request["mode"]:
        raise Conflict(
            f"{prefix}mode: libvirt network {request['name']} is a {have} network; changing it to "
            f"{request['mode']} in place is refused. Remove it first (state: absent, or "
            "playbooks/teardown.yml -e teardown_remove_networks=true) and converge again, or give "
            "this network another name"
        )


def check_subnet_free(
    name: str, address: str, own_bridge: str | None, networks: list, routes: list, prefix: str = ""
) -> None:
    """Refuse a subnet that another libvirt network or a host route already uses (libvirt would
    only find out when starting the network, after the definition was saved)."""
    wanted = ipaddress.ip_interface(address).network
    for other in networks:
        if other["name"] == name or not other.get("address"):
            continue
        theirs = ipaddress.ip_interface(other["address"]).network
        if theirs.version == wanted.version and theirs.overlaps(wanted):
            raise Conflict(
                f"{prefix}address: {wanted} overlaps libvirt network {other['name']} ({theirs}); choose another subnet"
            )
    for route in routes:
        dst = route.get("dst")
        if not dst or dst == "default" or route.get("dev") in (own_bridge, None):
            continue
        try:
            theirs = ipaddress.ip_network(dst if "/" in dst else f"{dst}/{wanted.max_prefixlen}", strict=False)
        except ValueError:
            continue
        if theirs.version == wanted.version and theirs.overlaps(wanted):
            raise Conflict(
                f"{prefix}address: {wanted} is already routed through {route['dev']} ({theirs}); choose another subnet"
            )


# --------------------------------------------------------------------------- applying


@dataclass
class _NetworkRun:
    """What the ``ensure_*`` steps of a network plan share."""

    conn: Any
    plan: NetworkPlan
    runner: Runner | None
    local: bool
    check_mode: bool
    net: Any = None
    warnings: list[str] = field(default_factory=list)


Met = Callable[[Any], bool]  # met(the network as it is now, or None) -> is the step's aim there?


def _attempt(ctx: _NetworkRun, kind: str, call: Callable[[], Any], met: Met | None = None) -> None:
    """``call()``. When it fails: if another run met its aim meanwhile (``met``), pass over it;
    otherwise remove a network this run defined and could not start, and fail naming ``kind``."""
    try:
        call()
    except Exception as exc:  # libvirt.libvirtError
        if not isinstance(exc, LibvirtFailure) and met is not None and _is_met(ctx, met):
            ctx.net = _lookup(ctx.conn, ctx.plan.name)
            return
        rolled_back = _roll_back(ctx) if kind != "define" else ""
        if isinstance(exc, LibvirtFailure):
            raise
        raise LibvirtFailure(f"libvirt network {ctx.plan.name}: {kind} failed: {exc}{rolled_back}") from exc


def _is_met(ctx: _NetworkRun, met: Met) -> bool:
    try:
        return bool(met(_lookup(ctx.conn, ctx.plan.name)))
    except Exception:  # pylint: disable=broad-except
        return False  # cannot tell: the step's own error is reported


def _roll_back(ctx: _NetworkRun) -> str:
    """A network this run defined and could not start: leave nothing behind."""
    net = ctx.net
    if ctx.plan.before is not None or net is None:
        return ""
    try:
        if net.isActive():
            net.destroy()
        net.undefine()
    except Exception:  # pylint: disable=broad-except
        return ""
    return " (the new definition was removed again)"


def _is_active(net: Any) -> bool:
    return net is not None and bool(net.isActive())


def _is_stopped(net: Any) -> bool:
    return net is not None and not net.isActive()


def _destroy(ctx: _NetworkRun) -> None:
    if ctx.net.isActive():
        ctx.net.destroy()


def _create(ctx: _NetworkRun) -> None:
    if not ctx.net.isActive():
        ctx.net.create()


def _define(ctx: _NetworkRun) -> None:
    ctx.net = ctx.conn.networkDefineXML(ctx.plan.define_xml)


def _definition_met(xml: str, net: Any) -> bool:
    """Is ``net`` defined as ``xml`` says? What the definition leaves to libvirt (uuid, a bridge
    name, ...) may differ."""
    if net is None:
        return False
    wanted = parse_network_xml(xml)
    have = _network_record(net)["config"]
    return all(have.get(key) == value for key, value in wanted.items() if value is not None and key != "uuid")


def _update(ctx: _NetworkRun, update: DhcpUpdate) -> None:
    commands = {
        "delete": libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE,
        "modify": libvirt.VIR_NETWORK_UPDATE_COMMAND_MODIFY,
        "add-last": libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST,
    }
    sections = {"host": libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST, "range": libvirt.VIR_NETWORK_SECTION_IP_DHCP_RANGE}
    flags = libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG | (
        libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE if ctx.net.isActive() else 0
    )
    ctx.net.update(commands[update.command], sections[update.section], -1, update.xml, flags)


def _host_update_met(update: DhcpUpdate, net: Any) -> bool:
    """Is the reservation there (or gone) as ``update`` wants?"""
    if net is None:
        return False
    host = etree.fromstring(update.xml.encode())
    mac = (host.get("mac") or "").lower()
    hosts = {h["mac"]: h for h in parse_network_xml(net.XMLDesc(0))["dhcp_hosts"]}
    if update.command == "delete":
        return mac not in hosts
    return mac in hosts and hosts[mac]["ip"] == host.get("ip") and hosts[mac]["name"] == host.get("name")


# Each ensure_* step takes the network state so far (None: no network) and returns
# (changed, state after it). In check mode it changes nothing and returns the simulated state.


def ensure_stopped(ctx: _NetworkRun, state: dict | None) -> tuple[bool, dict | None]:
    """Removal: stop the network (a transient one is gone then)."""
    if not ctx.plan.stop:
        return False, state
    if not ctx.check_mode:
        _attempt(ctx, "destroy", lambda: _destroy(ctx), _is_stopped)
    return True, dict(state, active=False) if ctx.plan.undefine else None


def ensure_undefined(ctx: _NetworkRun, state: dict | None) -> tuple[bool, dict | None]:
    """Removal: undefine the network."""
    if not ctx.plan.undefine:
        return False, state
    if not ctx.check_mode:
        _attempt(ctx, "undefine", ctx.net.undefine, lambda net: net is None)
    return True, None


def ensure_defined(ctx: _NetworkRun, state: dict | None) -> tuple[bool, dict | None]:
    """Define a new network, or redefine one (what cannot change live)."""
    plan = ctx.plan
    if plan.define_xml is None:
        return False, state
    if not ctx.check_mode:
        _attempt(ctx, "define", lambda: _define(ctx), lambda net: _definition_met(plan.define_xml, net))
    return True, dict(
        plan.after, autostart=(state or {}).get("autostart", False), active=(state or {}).get("active", False)
    )


def ensure_dhcp_updated(ctx: _NetworkRun, state: dict | None) -> tuple[bool, dict | None]:
    """Change the DHCP range and reservations live (and in the saved definition)."""
    plan = ctx.plan
    if not plan.dhcp_updates:
        return False, state
    for update in plan.dhcp_updates if not ctx.check_mode else ():
        met = functools.partial(_host_update_met, update) if update.section == "host" else None
        _attempt(ctx, "update", functools.partial(_update, ctx, update), met)
    return True, dict(state, dhcp_range=plan.after["dhcp_range"], dhcp_hosts=plan.after["dhcp_hosts"])


def ensure_autostart(ctx: _NetworkRun, state: dict | None) -> tuple[bool, dict | None]:
    plan = ctx.plan
    if plan.autostart is None:
        return False, state
    if not ctx.check_mode:
        _attempt(ctx, "autostart", lambda: ctx.net.setAutostart(1 if plan.autostart else 0))
    return True, dict(state, autostart=plan.autostart)


def ensure_started(ctx: _NetworkRun, state: dict | None) -> tuple[bool, dict | None]:
    if not ctx.plan.start:
        return False, state
    if not ctx.check_mode:
        _attempt(ctx, "create", lambda: _create(ctx), _is_active)
    return True, dict(state, active=True)


def ensure_restarted(ctx: _NetworkRun, state: dict | None) -> tuple[bool, dict | None]:
    """Restart the network for its new definition and put running guests' interfaces back."""
    if not ctx.plan.restart:
        return False, state
    if not ctx.check_mode:
        _attempt(ctx, "destroy", lambda: _destroy(ctx), _is_stopped)
        _attempt(ctx, "create", lambda: _create(ctx), _is_active)
        _attempt(ctx, "reattach", lambda: ctx.warnings.extend(_reattach(ctx.conn, ctx.net, ctx.runner, ctx.local)))
    return True, state


def apply_network(
    conn, plan: NetworkPlan, run: Runner | None = None, local: bool = True, check_mode: bool = False
) -> list:
    """Carry out ``plan`` step by step (in check mode: walk the steps changing nothing); return
    the warnings produced on the way. A step whose aim is met already (another run defined,
    started or updated the network meanwhile) is passed over instead of failing."""
    ctx = _NetworkRun(
        conn=conn,
        plan=plan,
        runner=run,
        local=local,
        check_mode=check_mode,
        net=None if check_mode else _lookup(conn, plan.name),
    )
    steps = (
        (ensure_stopped, ensure_undefined)
        if plan.state == "absent"
        else (ensure_defined, ensure_dhcp_updated, ensure_autostart, ensure_started, ensure_restarted)
    )
    run_steps(steps, ctx, plan.before)
    return ctx.warnings


def _reattach(conn, net, run: Runner | None, local: bool) -> list:
    """After a restart, put running guests' tap devices back on the network's bridge."""
    name = net.name()
    bridge = parse_network_xml(net.XMLDesc(0))["bridge"]
    taps = []
    for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
        root = etree.fromstring(dom.XMLDesc(0).encode())
        for iface in root.findall("devices/interface"):
            source = iface.find("source")
            target = iface.find("target")
            if source is not None and source.get("network") == name and target is not None and target.get("dev"):
                taps.append((dom.name(), target.get("dev")))
    if not taps:
        return []
    if run is None or not local or not bridge:
        return [
            f"libvirt network {name} restarted: reattach the interfaces of "
            f"{', '.join(sorted({d for d, _t in taps}))} to its bridge (remote host: not done here)"
        ]
    for _dom, tap in taps:
        rc, _out, err = run(["ip", "link", "set", "dev", tap, "master", bridge])
        if rc != 0:
            raise IpCommandError(f"reattaching {tap} to {bridge} failed: {str(err).strip()}")
    return []
