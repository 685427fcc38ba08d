# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The entry points of the domain engine: xen_domain, xen_guests and xen_domain_info.

API (everything takes an open libvirt connection from ``common.libvirt.open_connection``)::

    spec = validate_guest(params, prefix="")      # pure; ValidationError names the parameter
    plan = plan_domain(conn, spec, state="present",      # present|running|stopped|absent
                       shutdown_timeout=120, force_stop=False, remove_disks=False,
                       dom=None, prefix="")        # reads libvirt, changes nothing
    result = apply_plan(conn, plan, check_mode=False)
    # result == object_result: {"name", "changed": bool, "actions": [str], "before": dict,
    #            "after": dict, "pending_restart": [name] or [], "pending_restart_fields": [str],
    #            "warnings": [str], "diff": {"before": dict, "after": dict}}
    result = converge_domain(conn, params, check_mode=False)  # the three steps above
    result = converge_guests(conn, [item, ...], check_mode=False, default_bridge=None, parallel=8,
                             prune=False, prune_timeout=120, prune_force=False, prune_disks=False, owner=None)
    # -> list_result: {"changed", "actions", "pending_restart": [names], "results": [result
    #    per guest, in the order given], "diff", "stale": [names], "pruned": [result per pruned guest]}
    guests = domain_info(conn, name=None)          # list of dicts, see xen_domain_info RETURN

The flow, one file per step: ``desired`` (validate and complete the spec) -> ``current``
(what libvirt holds, parsed back by ``parse``) -> ``plan`` (compare; the new definition from
``render``) -> ``apply`` (the ``ensure_*`` steps, libvirt calls in ``calls``); ``access``
checks what a guest may reach on the host before anything is planned.

``before``/``after`` are normalised guest specs (architecture.md vocabulary) plus ``state``
(``running``, ``paused``, ``stopped`` or ``absent``); an absent guest is ``{"name", "state":
"absent"}``. In check mode ``after`` is the prediction; after a real run it is read back from
libvirt. Plans of several guests are made first (all validation and reading) and applied
afterwards, so bad input for any guest fails before anything changes.

Semantics: the persistent definition (``XMLDesc(VIR_DOMAIN_XML_INACTIVE)``) is parsed back to
the spec vocabulary and compared with the desired spec completed from it (fields left out
are not touched; UUID and MACs already there are kept; new guests get a stable UUID and
MACs derived from the name, so check mode predicts them). Differences are written by
modifying the existing XML in place and redefining. On a running guest, memory (up to
maxmem), vcpus (up to maxvcpus) and CPU pinning change live as well; other changes wait
for the next restart and are listed in ``pending_restart_fields``; the guest is never
restarted for them.
"""

from __future__ import annotations

import copy
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ansible_collections.lcfg.xen.plugins.module_utils.common.confinement import DEFAULT_STORAGE_DIRS
from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import Conflict, ValidationError, XenError
from ansible_collections.lcfg.xen.plugins.module_utils.common.host_access import HostAccess
from ansible_collections.lcfg.xen.plugins.module_utils.common.result import list_result
from ansible_collections.lcfg.xen.plugins.module_utils.domain import calls
from ansible_collections.lcfg.xen.plugins.module_utils.domain import prune as pruning
from ansible_collections.lcfg.xen.plugins.module_utils.domain.access import (
    SharedFiles,
    check_access,
    check_disks_not_claimed_twice,
)
from ansible_collections.lcfg.xen.plugins.module_utils.domain.apply import apply_plan
from ansible_collections.lcfg.xen.plugins.module_utils.domain.current import DriverCaps, read_current
from ansible_collections.lcfg.xen.plugins.module_utils.domain.plan import DomainPlan, plan_domain, validate_guest
from ansible_collections.lcfg.xen.plugins.module_utils.spec.schema import check_guest_item, check_text

__all__ = [
    "validate_guest",
    "plan_domain",
    "apply_plan",
    "converge_domain",
    "converge_guests",
    "domain_info",
]


def converge_domain(conn, params: dict, check_mode: bool = False, access: HostAccess | None = None) -> dict:
    """validate_guest + plan_domain + apply_plan for one guest from module-style ``params``;
    ``access``: what the play lets the spec reach on the host (see ``access.check_access``)."""
    caps = DriverCaps(conn)
    spec = validate_guest(params)
    check_access(conn, spec, access, state=params.get("state") or "present", caps=caps)
    plan = plan_domain(
        conn,
        spec,
        params.get("state") or "present",
        shutdown_timeout=params.get("shutdown_timeout") if params.get("shutdown_timeout") is not None else 120,
        force_stop=bool(params.get("force_stop")),
        remove_disks=bool(params.get("remove_disks")),
        storage_dirs=access.storage_dirs if access is not None else None,
        adopt=bool(params.get("adopt")),
        caps=caps,
    )
    return apply_plan(conn, plan, check_mode=check_mode)


def domain_info(conn, name: str | None = None) -> list[dict]:
    """Every guest (or the one called ``name``), defined or running, sorted by name."""
    if name is not None:
        try:
            check_text(name)  # libvirt cannot take a NUL; no name holds a control character
        except ValueError as exc:
            raise ValidationError("name", str(exc)) from None
        dom = calls.lookup(conn, name=name)
        doms = {name: dom} if dom is not None else {}
    else:
        doms = calls.list_domains(conn)
    out = []
    for guest_name in sorted(doms):
        try:
            out.append(_info_item(conn, guest_name, doms[guest_name]))
        except XenError:
            if name is None and calls.lookup(conn, name=guest_name) is None:
                continue  # undefined since it was listed (another run removed it): not a failure
            raise
    return out


def _info_item(conn, name: str, dom: Any) -> dict:
    current = read_current(conn, name, dom=dom)
    return {
        "name": name,
        "uuid": current.spec["uuid"],
        "state": current.power,
        "autostart": current.spec["autostart"],
        "persistent": calls.is_persistent(current.dom, name=name),
        "live": calls.live_values(current.dom, name=name) if current.active else None,
        "config": current.spec,
    }


def converge_guests(
    conn,
    guests: list,
    check_mode: bool = False,
    default_bridge: str | None = None,
    parallel: int = 8,
    access: HostAccess | None = None,
    adopt: list | None = None,
    prune: bool = False,
    prune_timeout: float = 120,
    prune_force: bool = False,
    prune_disks: bool = False,
    owner: str | None = None,
) -> dict:
    """Converge every guest of ``guests`` (dicts in xen_domain's options, checked by
    ``spec.schema.check_guest_item``) on one connection.

    All guests are validated and planned (one ``listAllDomains`` plus a couple of reads per
    guest) before the first change, so bad input anywhere changes nothing. Then up to
    ``parallel`` guests are changed at the same time (guest starts wait on QEMU/Xen, not on
    us). A failing guest does not stop the others; the error names it and carries the
    results of the rest. ``adopt``: names of existing domains lcfg.xen did not define that
    the play lets it take over (see ``plan_domain``). Returns ``list_result`` of the
    ``apply_plan`` results (in the order given) with ``diff``.

    Pruning (``domain/prune.py``): ``stale`` (always returned) names the guests lcfg.xen
    defined for ``owner`` that ``guests`` does not list; with ``prune`` they are shut down
    (``prune_timeout`` seconds, then destroyed only with ``prune_force``), undefined and, with
    ``prune_disks``, their image files inside the storage directories removed; ``pruned``
    holds their object results. ``owner`` (None: none) is recorded on the guests converged
    and limits both pruning and convergence to this owner's guests (``prune.owner_conflict``).
    """
    if not isinstance(guests, list):
        raise ValidationError("guests", "must be a list of guest dicts")
    if parallel < 1:
        raise ValidationError("parallel", f"must be at least 1, got {parallel}")
    adopt = adopt or []
    if not isinstance(adopt, list) or not all(isinstance(n, str) for n in adopt):
        raise ValidationError("adopt", "must be a list of guest names")
    caps = DriverCaps(conn)
    items = _checked_items(conn, guests, default_bridge, access, caps)
    domains = calls.list_domains(conn)
    plans = [
        plan_domain(
            conn,
            spec,
            item["state"],
            shutdown_timeout=item["shutdown_timeout"],
            force_stop=item["force_stop"],
            remove_disks=item["remove_disks"],
            dom=domains.get(spec["name"]),
            known_missing=spec["name"] not in domains,
            prefix=prefix,
            storage_dirs=access.storage_dirs if access is not None else None,
            adopt=spec["name"] in adopt,
            caps=caps,
        )
        for prefix, item, spec in items
    ]
    _own(plans, owner, adopt)
    stale, prune_plans = _plan_prune(
        conn, items, domains, owner, prune, prune_timeout, prune_force, prune_disks, access, caps
    )
    results = _apply_all(conn, plans, check_mode, parallel)
    pruned = _apply_prune(conn, prune_plans, check_mode, parallel, results)
    every = results + pruned
    return dict(
        list_result(
            results,
            stale=stale,
            pruned=pruned,
            warnings=[w for r in pruned for w in r.pop("warnings", None) or []],
            diff={"before": {r["name"]: r["before"] for r in every}, "after": {r["name"]: r["after"] for r in every}},
        ),
        **_with_pruned(every),
    )


def _with_pruned(every: list[dict]) -> dict:
    """``changed`` and ``actions`` of the listed and the pruned guests together (the listed
    ones first, in the order given; then the pruned ones by name)."""
    return {
        "changed": any(r["changed"] for r in every),
        "actions": [f"{r['name']}: {action}" for r in every for action in r["actions"]],
    }


# --------------------------------------------------------------------------- owners and pruning


def _own(plans: list[DomainPlan], owner: str | None, adopt: list) -> None:
    """Hold the listed guests to ``owner`` (another site's guest is refused unless adopted)
    and record ``owner`` on those defined or redefined, claiming unowned ones once."""
    error = pruning.check_owner_name(owner)
    if error:
        raise ValidationError("owner", error)
    for plan in plans:
        if not plan.current.exists:
            if owner and plan.new_xml is not None:
                plan.new_xml = pruning.stamp_owner(plan.new_xml, owner)
            continue
        marked, recorded = pruning.owner_of(plan.current.xml)
        adopted = plan.name in adopt
        if marked and not adopted:
            conflict = pruning.owner_conflict(plan.name, recorded, owner)
            if conflict:
                raise Conflict(conflict)
        if not owner or plan.state == "absent" or (recorded == owner and plan.new_xml is None):
            continue
        if plan.new_xml is None:
            plan.new_xml = plan.current.xml
            plan.actions.insert(0, "redefine")
            plan.notes.append(f"guest {plan.name}: recorded as owned by {owner!r} (xen_guests owner)")
        plan.new_xml = pruning.stamp_owner(plan.new_xml, owner)


def _plan_prune(
    conn,
    items: list,
    domains: dict,
    owner: str | None,
    wanted: bool,
    timeout: float,
    force: bool,
    disks: bool,
    access: HostAccess | None,
    caps: DriverCaps,
) -> tuple[list[str], list[DomainPlan]]:
    """The stale guests (always) and, when ``wanted``, their absent plans, made before any change."""
    if timeout is None or timeout < 0:
        raise ValidationError("prune_timeout", f"must be 0 or more seconds, got {timeout}")
    listed = {spec["name"] for _prefix, _item, spec in items}
    definitions = {}
    for name, dom in domains.items():
        if name in listed:
            continue
        try:
            if not calls.is_persistent(dom, name=name):
                continue  # a transient domain was not defined by lcfg.xen: nothing to undefine
            definitions[name] = calls.read_definition(dom, name=name)[0]
        except XenError:
            if calls.lookup(conn, name=name) is None:
                continue  # undefined since it was listed (another run, another tool): not ours to judge
            raise
    stale = pruning.plan_prune(definitions, listed, owner).stale
    if not wanted:
        return stale, []
    listed_paths = {
        os.path.normpath(os.path.realpath(disk["path"]) if caps.local else disk["path"])
        for _prefix, item, spec in items
        if item["state"] != "absent"
        for disk in spec.get("disks") or []
        if disk.get("path")
    }
    plans = []
    for name in stale:
        plan = plan_domain(
            conn,
            {"name": name},
            "absent",
            shutdown_timeout=timeout,
            force_stop=force,
            remove_disks=disks,
            dom=domains[name],
            storage_dirs=access.storage_dirs if access is not None else None,
            caps=caps,
        )
        for path in pruning.kept_paths(plan.remove_paths, listed_paths):
            plan.remove_paths.remove(path)
            plan.actions.remove(f"remove_disk {path}")
            plan.notes.append(f"guest {name}: disk image {path} kept: a guest of the list names it")
        plans.append(plan)
    return stale, plans


def _apply_prune(conn, plans: list[DomainPlan], check_mode: bool, parallel: int, results: list[dict]) -> list[dict]:
    """Prune the stale guests (after the listed ones converged), up to ``parallel`` at a time;
    a guest that does not shut down fails naming it and the options that decide."""

    def prune_one(plan: DomainPlan) -> dict | XenError:
        try:
            if plan.stop_first and not check_mode:
                how = calls.stop(plan.current.dom, plan.shutdown_timeout, plan.force_stop, name=plan.name)
                if how == "destroy":
                    plan.notes.append(
                        f"guest {plan.name} did not shut down within prune_timeout={plan.shutdown_timeout:g}s "
                        "and was powered off (prune_force: true)"
                    )
            return apply_plan(conn, plan, check_mode=check_mode)
        except Conflict as exc:
            if "did not shut down" not in exc.message:
                return exc
            return Conflict(
                f"stale guest {plan.name} (no longer in the guests list, so pruned) did not shut down within "
                f"prune_timeout={plan.shutdown_timeout:g}s (no ACPI/PV shutdown support in the guest?); it is "
                "still defined and running. Set prune_force: true (role lcfg.xen.guest: guest_prune_force) to "
                "power it off after the timeout, raise prune_timeout (guest_prune_timeout), or shut it down "
                "yourself and run again"
            )
        except XenError as exc:
            return exc

    pruned, failures = _each(prune_one, plans, check_mode, parallel)
    if failures:
        plan, exc = failures[0]
        others = f" ({len(failures) - 1} more stale guests failed too)" if len(failures) > 1 else ""
        fields = list_result(results)
        fields.update(
            _with_pruned(results + pruned),
            pruned=pruned,
            warnings=[w for r in pruned for w in r.pop("warnings", None) or []],
            failed_guests=[p.name for p, _e in failures],
        )
        raise XenError(f"{exc.message}{others}", **fields)
    return pruned


def _checked_items(
    conn, guests: list, default_bridge: str | None, access: HostAccess | None, caps: DriverCaps
) -> list[tuple[str, dict, dict]]:
    """``(prefix, item, spec)`` of every guest, validated and held to the host-access rules;
    a guest named twice, or two guests opening one disk, fail."""
    items = []
    seen: dict[str, int] = {}
    shared = SharedFiles(conn, access.storage_dirs if access is not None else DEFAULT_STORAGE_DIRS, caps.local)
    claimed: dict = {}
    for index, raw in enumerate(guests):
        prefix = f"guests[{index}]."
        item = check_guest_item(copy.deepcopy(raw), prefix)
        if default_bridge:
            for vif in item.get("vifs") or []:
                if isinstance(vif, dict) and (vif.get("nettype") or "bridge") == "bridge" and not vif.get("bridge"):
                    vif["bridge"] = default_bridge
        spec = validate_guest(item, prefix=prefix)
        template = raw.get("template") if isinstance(raw, dict) and isinstance(raw.get("template"), str) else None
        check_access(conn, spec, access, prefix, state=item["state"], shared=shared, template=template, caps=caps)
        if spec["name"] in seen:
            raise ValidationError(f"{prefix}name", f"guest {spec['name']} is also guests[{seen[spec['name']]}]")
        seen[spec["name"]] = index
        if item["state"] != "absent" and not (access and access.allow_host_resources):
            check_disks_not_claimed_twice(spec, prefix, shared, claimed)
        items.append((prefix, item, spec))
    return items


def _apply_all(conn, plans: list[DomainPlan], check_mode: bool, parallel: int) -> list[dict]:
    """Apply the plans, up to ``parallel`` at a time; the results in plan order. A failing
    guest does not stop the others: the first failure is raised afterwards, with the rest."""

    def apply_one(plan: DomainPlan) -> dict | XenError:
        try:
            return apply_plan(conn, plan, check_mode=check_mode)
        except XenError as exc:
            return exc

    results, failures = _each(apply_one, plans, check_mode, parallel)
    if failures:
        plan, exc = failures[0]
        others = f" ({len(failures) - 1} more guests failed too)" if len(failures) > 1 else ""
        raise XenError(
            f"guest {plan.name}: {exc.message}{others}",
            **list_result(results),
            failed_guests=[p.name for p, _e in failures],
        )
    return results


def _each(apply_one, plans: list[DomainPlan], check_mode: bool, parallel: int) -> tuple[list[dict], list[tuple]]:
    """``apply_one`` (a result, or the XenError it caught) over ``plans``, up to ``parallel`` at
    a time when more than one changes; ``(results in plan order, [(plan, error)])``."""
    busy = [plan for plan in plans if plan.actions and not check_mode]
    if parallel > 1 and len(busy) > 1:
        with ThreadPoolExecutor(max_workers=min(parallel, len(busy))) as pool:
            outcomes = list(pool.map(apply_one, plans))
    else:
        outcomes = [apply_one(plan) for plan in plans]
    results = [o for o in outcomes if isinstance(o, dict)]
    failures = [(plan, o) for plan, o in zip(plans, outcomes, strict=True) if isinstance(o, XenError)]
    return results, failures
