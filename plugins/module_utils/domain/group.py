# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Virtual groups: apply a group's settings to its member guests (the xen_group engine).

A virtual group (``xen.virtualgroup``) sets hardware and network values for its members:
``memory``, ``maxmem``, ``vcpus``, ``maxvcpus``, ``cpus`` and, for every vif, ``nettype``,
``bridge``, ``network`` and ``script``. Precedence is the inventory's (design §2): **a
member's own value wins; the group fills in what the member leaves unset**; what neither
sets is left as it is.

Pure part (no Ansible, no libvirt): :func:`validate_settings`, :func:`validate_members`,
:func:`member_target` and :func:`summarise`. The libvirt part, :func:`plan_group` and
:func:`apply_group`, goes through the domain engine's plan/apply (``plan``, ``apply``), so the members change
exactly like ``xen_domain`` would change them: live where possible (memory up to maxmem,
vcpus up to maxvcpus, CPU pinning), everything saved to the persistent definition, and
what cannot change live reported in ``pending_restart_fields``. Members are never
restarted, started or stopped. Every member is validated and planned before any is changed.
"""

from __future__ import annotations

import copy
from typing import Any

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import Conflict, NotFound, ValidationError
from ansible_collections.lcfg.xen.plugins.module_utils.common.host_access import HostAccess, check_vif_script
from ansible_collections.lcfg.xen.plugins.module_utils.common.result import list_result, object_result
from ansible_collections.lcfg.xen.plugins.module_utils.common.validate import (
    parse_int,
    valid_guest_name,
    valid_mac,
)
from ansible_collections.lcfg.xen.plugins.module_utils.domain import prune as pruning
from ansible_collections.lcfg.xen.plugins.module_utils.domain.access import check_access
from ansible_collections.lcfg.xen.plugins.module_utils.domain.apply import apply_plan
from ansible_collections.lcfg.xen.plugins.module_utils.domain.calls import list_domains, uri
from ansible_collections.lcfg.xen.plugins.module_utils.domain.current import DriverCaps
from ansible_collections.lcfg.xen.plugins.module_utils.domain.desired import DEFAULT_NETWORKS, canonical_cpuset
from ansible_collections.lcfg.xen.plugins.module_utils.domain.engine import LIVE_WAIT, domain_info, observe_results
from ansible_collections.lcfg.xen.plugins.module_utils.domain.plan import plan_domain, validate_guest
from ansible_collections.lcfg.xen.plugins.module_utils.spec.schema import (
    BRIDGE_RE,
    GROUP_KEYS,
    GUEST,
    NETWORK_RE,
    SCRIPT_RE,
    VIF_GROUP_KEYS,
)
from ansible_collections.lcfg.xen.plugins.module_utils.spec.schema import (
    scalar_problem as _scalar_problem,
)

__all__ = [
    "GROUP_FIELDS",
    "VIF_GROUP_FIELDS",
    "REPORT_FIELDS",
    "validate_settings",
    "validate_members",
    "member_target",
    "summarise",
    "plan_group",
    "apply_group",
]

#: guest-level fields a group sets
GROUP_FIELDS = GROUP_KEYS
#: per-vif fields a group sets
VIF_GROUP_FIELDS = VIF_GROUP_KEYS
#: fields reported per member (before/after/diff)
REPORT_FIELDS = GROUP_FIELDS + ("vifs",)

_NETTYPES = ("bridge", "nat", "route")
_BRIDGE_RE = BRIDGE_RE
_NETWORK_RE = NETWORK_RE
_SCRIPT_RE = SCRIPT_RE
#: guest spec keys a member dict may carry (an inventory xen_domain) that a group does not set
_IGNORED_MEMBER_KEYS = frozenset(
    (
        "uuid",
        "type",
        "autostart",
        "disks",
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
        "state",
    )
)
_VIF_KEYS = frozenset(("mac", "tag", "ip", "model", *VIF_GROUP_FIELDS))


def _fail(parameter: str, message: str) -> None:
    raise ValidationError(parameter, message)


def _values(source: dict, prefix: str) -> dict[str, Any]:
    """Validate the group fields present in ``source``; absent or None stays None."""
    out: dict[str, Any] = {}
    for key in ("memory", "maxmem", "vcpus", "maxvcpus"):
        value = source.get(key)
        if value is None or value == "":
            out[key] = None
            continue
        try:
            problem = _scalar_problem(value, GUEST[key])  # the schema's type and bounds
            if problem:
                raise ValueError(problem)
            out[key] = parse_int(value, minimum=GUEST[key].minimum, what=key)
        except ValueError as exc:
            _fail(f"{prefix}{key}", str(exc))
    cpus = source.get("cpus")
    if cpus is None:
        out["cpus"] = None
    else:
        text = str(cpus).strip()
        try:
            out["cpus"] = canonical_cpuset(text) if text else ""
        except ValueError as exc:
            _fail(f"{prefix}cpus", str(exc))
    if out["memory"] is not None and out["maxmem"] is not None and out["memory"] > out["maxmem"]:
        _fail(
            f"{prefix}memory",
            f"memory {out['memory']} MiB exceeds maxmem {out['maxmem']} MiB; raise maxmem or lower memory",
        )
    if out["vcpus"] is not None and out["maxvcpus"] is not None and out["vcpus"] > out["maxvcpus"]:
        _fail(
            f"{prefix}vcpus", f"vcpus {out['vcpus']} exceeds maxvcpus {out['maxvcpus']}; raise maxvcpus or lower vcpus"
        )
    return out


def _vif_values(source: dict, prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {key: source.get(key) for key in VIF_GROUP_FIELDS}
    for key in VIF_GROUP_FIELDS:
        if out[key] == "":
            out[key] = None
    if out["nettype"] is not None and out["nettype"] not in _NETTYPES:
        _fail(f"{prefix}nettype", f"unknown nettype {out['nettype']!r}: use bridge, nat or route")
    if out["bridge"] is not None:
        out["bridge"] = str(out["bridge"])
        if not _BRIDGE_RE.match(out["bridge"]):
            _fail(f"{prefix}bridge", f"invalid bridge name {out['bridge']!r} (1-15 letters, digits, '_.:-')")
        if out["nettype"] not in (None, "bridge"):
            _fail(
                f"{prefix}bridge",
                f"'bridge' is for nettype bridge, not {out['nettype']}; use 'network' for nat and route",
            )
    if out["network"] is not None:
        out["network"] = str(out["network"])
        if not _NETWORK_RE.match(out["network"]):
            _fail(f"{prefix}network", f"invalid network name {out['network']!r}")
        if out["nettype"] == "bridge":
            _fail(f"{prefix}network", "'network' is for nettype nat or route; a bridge vif uses 'bridge'")
    if out["script"] is not None:
        out["script"] = str(out["script"])
        if not _SCRIPT_RE.match(out["script"]):
            _fail(f"{prefix}script", f"invalid vif script {out['script']!r}")
    return out


def validate_settings(params: dict, prefix: str = "") -> dict[str, Any]:
    """The group's own settings (module options), validated; unset ones are None."""
    out = _values(params, prefix)
    out.update(_vif_values(params, prefix))
    return out


def validate_members(members: Any, parameter: str = "members") -> list[dict[str, Any]]:
    """Members as names or dicts (a member's own values); returns dicts with every field.

    A member dict holds ``name`` and any of the group fields, plus ``vifs``: a list of
    ``{mac or tag, nettype, bridge, network, script}`` overriding the group per vif.
    """
    if not isinstance(members, list) or not members:
        _fail(parameter, "list the member guests (names, or dicts with a name and their own values)")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, member in enumerate(members):
        where = f"{parameter}[{index}]"
        if isinstance(member, str):
            member = {"name": member}
        if not isinstance(member, dict):
            _fail(where, "each member is a guest name or a dict with 'name'")
        unknown = sorted(set(member) - {"name", "vifs", *GROUP_FIELDS} - _IGNORED_MEMBER_KEYS)
        if unknown:
            _fail(
                f"{where}.{unknown[0]}", f"unknown member key; a member may set name, vifs, {', '.join(GROUP_FIELDS)}"
            )
        try:
            name = valid_guest_name(str(member.get("name") or ""))
        except ValueError as exc:
            _fail(f"{where}.name", str(exc))
        if name in seen:
            _fail(f"{where}.name", f"guest {name} is listed twice")
        seen.add(name)
        entry = {"name": name}
        entry.update(_values(member, f"{where}."))
        vifs = member.get("vifs")
        if vifs is None:
            entry["vifs"] = None
        else:
            if not isinstance(vifs, list):
                _fail(f"{where}.vifs", "must be a list of dicts")
            entry["vifs"] = []
            for vindex, vif in enumerate(vifs):
                vwhere = f"{where}.vifs[{vindex}]"
                if not isinstance(vif, dict):
                    _fail(vwhere, "each vif is a dict with 'mac' or 'tag'")
                extra = sorted(set(vif) - _VIF_KEYS)
                if extra:
                    _fail(
                        f"{vwhere}.{extra[0]}",
                        f"unknown vif key; a member vif may set mac, tag, {', '.join(VIF_GROUP_FIELDS)}",
                    )
                item = _vif_values(vif, f"{vwhere}.")
                mac = vif.get("mac")
                if mac is not None:
                    try:
                        mac = valid_mac(str(mac))
                    except ValueError as exc:
                        _fail(f"{vwhere}.mac", str(exc))
                item["mac"] = mac
                item["tag"] = None if vif.get("tag") is None else str(vif["tag"])
                entry["vifs"].append(item)
        out.append(entry)
    return out


def _pick(own: Any, group: Any) -> Any:
    return own if own is not None else group


def _own_vif(member_vifs: list[dict] | None, current: dict) -> dict:
    """The member's own values for the current vif: same MAC, else same tag, else none."""
    for vif in member_vifs or []:
        if vif.get("mac") and current.get("mac") and vif["mac"] == current["mac"]:
            return vif
    for vif in member_vifs or []:
        if not vif.get("mac") and vif.get("tag") and vif["tag"] == current.get("tag"):
            return vif
    return {}


def _target_vifs(
    settings: dict, member: dict, current_vifs: list[dict], warnings: list[str] | None = None
) -> list[dict]:
    """The current vifs with the group and member network values applied.

    A group's bridge fills bridge vifs only: on a member's nat or route vif it is ignored,
    with a warning (the member's own nettype wins)."""
    out = []
    for index, cur in enumerate(current_vifs):
        own = _own_vif(member.get("vifs"), cur)
        vif = copy.deepcopy(cur)
        nettype = _pick(own.get("nettype"), settings.get("nettype")) or cur.get("nettype") or "bridge"
        if (
            nettype != "bridge"
            and settings.get("bridge") is not None
            and own.get("bridge") is None
            and warnings is not None
        ):
            warnings.append(
                f"guest {member['name']}: the group's bridge {settings['bridge']} is ignored for "
                f"vif {cur.get('tag') or cur.get('mac') or index}, whose nettype is {nettype} "
                "(a group bridge only applies to bridge vifs)"
            )
        if nettype == "bridge":
            bridge = _pick(own.get("bridge"), settings.get("bridge"))
            if bridge is None:
                bridge = cur.get("bridge") if cur.get("nettype") == "bridge" else None
            vif.update(nettype="bridge", bridge=bridge, network=None)
        else:
            network = _pick(own.get("network"), settings.get("network"))
            if network is None:
                network = cur.get("network") if cur.get("nettype") == nettype else None
            vif.update(nettype=nettype, bridge=None, network=network or DEFAULT_NETWORKS[nettype])
        script = _pick(own.get("script"), settings.get("script"))
        if script is not None:
            vif["script"] = script
        out.append(vif)
    return out


def _sets_vifs(settings: dict, member: dict) -> bool:
    if any(settings.get(key) is not None for key in VIF_GROUP_FIELDS):
        return True
    return any(vif.get(key) is not None for vif in member.get("vifs") or [] for key in VIF_GROUP_FIELDS)


def member_target(
    settings: dict, member: dict, current: dict | None = None, warnings: list[str] | None = None
) -> dict[str, Any]:
    """Desired spec of one member: ``name`` plus the fields the group or member sets.

    Fields neither sets are None ("leave alone" for ``plan_domain``). ``current`` (the member's
    current spec) is needed only when vif values are set: vifs are rewritten from it.
    What the group sets but cannot apply is appended to ``warnings``.
    """
    desired: dict[str, Any] = {"name": member["name"]}
    for key in GROUP_FIELDS:
        desired[key] = _pick(member.get(key), settings.get(key))
    # A group memory above the member's own maxmem (or the reverse) is the member's error.
    if desired["memory"] is not None and desired["maxmem"] is not None and desired["memory"] > desired["maxmem"]:
        _fail(
            f"members[{member['name']}].memory",
            f"guest {member['name']}: memory {desired['memory']} MiB exceeds maxmem "
            f"{desired['maxmem']} MiB once the group and the guest's own values are combined",
        )
    if desired["vcpus"] is not None and desired["maxvcpus"] is not None and desired["vcpus"] > desired["maxvcpus"]:
        _fail(
            f"members[{member['name']}].vcpus",
            f"guest {member['name']}: vcpus {desired['vcpus']} exceeds maxvcpus {desired['maxvcpus']} "
            "once the group and the guest's own values are combined",
        )
    desired["vifs"] = None
    if current is not None and _sets_vifs(settings, member):
        desired["vifs"] = _target_vifs(settings, member, current.get("vifs") or [], warnings)
    return desired


def _report(view: dict) -> dict[str, Any]:
    """The group-relevant part of a guest view (spec + state)."""
    if view.get("state") == "absent":
        return {"state": "absent"}
    out = {key: copy.deepcopy(view.get(key)) for key in GROUP_FIELDS}
    out["vifs"] = [{key: vif.get(key) for key in ("tag", "mac") + VIF_GROUP_FIELDS} for vif in view.get("vifs") or []]
    out["state"] = view.get("state")
    return out


def summarise(result: dict) -> dict[str, Any]:
    """One member's object result (``common.result``), from ``apply.apply_plan``'s result:
    ``name``, ``changed``, ``actions``, ``pending_restart`` and the group's view of it."""
    before = _report(result["before"])
    after = _report(result["after"])
    changed_fields = [key for key in REPORT_FIELDS if before.get(key) != after.get(key)]
    live = [a[len("set_") : -len("_live")] for a in result["actions"] if a.endswith("_live")]
    return object_result(
        result["name"],
        result["actions"],
        pending_restart=bool(result["pending_restart"]),
        changed=bool(result["changed"]),
        changed_fields=changed_fields,
        live=[
            f
            for f in live
            if f not in result["pending_restart_fields"]
            and not any(n.startswith(f"{f}:") for n in result.get("live_not_followed") or [])
        ],
        memory_actual=result.get("memory_actual"),
        vcpus_online=result.get("vcpus_online"),
        live_not_followed=list(result.get("live_not_followed") or []),
        pending_restart_fields=list(result["pending_restart_fields"]),
        state=after.get("state"),
        before=before,
        after=after,
        warnings=list(result.get("warnings") or []),
    )


def plan_group(
    conn,
    settings: dict,
    members: list[dict],
    group: str = "",
    access: HostAccess | None = None,
    owner: str | None = None,
) -> list:
    """Plan every member (reads libvirt, changes nothing); raise before anything changes.
    What a group or member sets is held to the host-access rules of xen_domain (``access``;
    None: the defaults), so a vif script path is refused as it is there. With ``owner``, a
    member lcfg.xen recorded for another owner is refused (``prune.owner_conflict``)."""
    error = pruning.check_owner_name(owner)
    if error:
        raise ValidationError("owner", error)
    allow = access is not None and access.allow_host_resources
    if settings.get("script") and not allow:
        check_vif_script(settings["script"], "script", access or HostAccess())
    for index, member in enumerate(members):
        for vindex, vif in enumerate(member.get("vifs") or []):
            if vif.get("script") and not allow:
                check_vif_script(vif["script"], f"members[{index}].vifs[{vindex}].script", access or HostAccess())
    domains = list_domains(conn)
    missing = [m["name"] for m in members if m["name"] not in domains]
    if missing:
        label = f"group {group}" if group else "the group"
        raise NotFound(
            f"{label}: guest(s) {', '.join(missing)} are not defined on {uri(conn)}; "
            "create them first (lcfg.xen.xen_domain, xen_guests or the guest role), "
            "or remove them from members",
            missing=missing,
        )
    caps = DriverCaps(conn)
    plans = []
    for index, member in enumerate(members):
        current = None
        if _sets_vifs(settings, member):
            info = domain_info(conn, member["name"])
            current = info[0]["config"] if info else None
        ignored: list[str] = []
        desired = member_target(settings, member, current, ignored)
        spec = validate_guest(desired, prefix=f"members[{index}].")
        check_access(conn, spec, access, prefix=f"members[{index}].", caps=caps)
        plan = plan_domain(conn, spec, "present", dom=domains[member["name"]], prefix=f"members[{index}].", caps=caps)
        if owner and plan.current.exists:
            conflict = pruning.owner_conflict(plan.name, pruning.owner_of(plan.current.xml)[1], owner)
            if conflict:
                raise Conflict(f"group {group or '?'}: {conflict}")
        plan.notes.extend(ignored)  # reported as the module's warnings
        plans.append(plan)
    return plans


def apply_group(conn, plans: list, check_mode: bool = False, live_wait: float = LIVE_WAIT) -> dict[str, Any]:
    """Apply the member plans in order; the module's result (``list_result`` of the members,
    with ``changed_members``, ``diff`` and ``warnings``)."""
    results = []
    warnings: list[str] = []
    if live_wait < 0:
        raise ValidationError("live_wait", f"must be 0 or more seconds, got {live_wait}")
    applied = [apply_plan(conn, plan, check_mode=check_mode) for plan in plans]
    observe_results(conn, plans, applied, check_mode, live_wait)  # waits for all members at once
    for result in applied:
        entry = summarise(result)
        warnings.extend(entry.pop("warnings"))
        results.append(entry)
    return list_result(
        results,
        changed_members=[m["name"] for m in results if m["changed"]],
        diff={
            "before": {m["name"]: m["before"] for m in results},
            "after": {m["name"]: m["after"] for m in results},
        },
        warnings=warnings,
    )
