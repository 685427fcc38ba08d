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
    guests = domain_info(conn, name=None, console_lines=20)  # list of dicts, see xen_domain_info RETURN

Every result of a guest also carries ``memory_actual`` (the balloon's size in MiB of a running
guest, else None), ``vcpus_online`` (VCPUs the guest has online, from its agent; None:
unknown) and ``live_not_followed`` (live changes the guest did not follow within
``live_wait`` seconds, in words; each one is a warning too). A guest started by the run that
stops again within ``start_wait`` seconds fails its run with its console's last lines.

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
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ansible_collections.lcfg.xen.plugins.module_utils.common.confinement import DEFAULT_STORAGE_DIRS
from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import (
    Conflict,
    NotFound,
    ValidationError,
    XenError,
)
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
from ansible_collections.lcfg.xen.plugins.module_utils.domain.desired import METADATA_NS
from ansible_collections.lcfg.xen.plugins.module_utils.domain.observe import (
    console_log,
    flat_addresses,
    follow_live,
    guest_side,
    interfaces,
    start_failure,
    start_failures,
)
from ansible_collections.lcfg.xen.plugins.module_utils.domain.plan import DomainPlan, plan_domain, validate_guest
from ansible_collections.lcfg.xen.plugins.module_utils.spec.schema import check_guest_item, check_text

__all__ = [
    "validate_guest",
    "plan_domain",
    "apply_plan",
    "converge_domain",
    "converge_guests",
    "domain_info",
    "observe_results",
    "wait_for_address",
    "guest_info",
    "LIVE_WAIT",
    "START_WAIT",
    "start_wait_default",
]

#: seconds a live change is waited for until the guest follows it (module option live_wait)
LIVE_WAIT = 10
#: seconds a guest the run started is watched for an early stop (module option start_wait), by
#: driver. create() returns before a Xen guest's kernel or a container's init runs, and they die
#: within a second when that fails. A QEMU/KVM guest can only stop by powering itself off, after
#: its firmware and a boot (6 s at the least under TCG here), and its kernel panics do not stop
#: it: not watched (0), like guests of every other driver.
START_WAIT = {"xen": 3.0, "lxc": 3.0}


def start_wait_default(driver: str) -> float:
    """``start_wait`` when the play sets none: 3 s on Xen and LXC, 0 (no watch) elsewhere."""
    return START_WAIT.get(driver, 0.0)


def _start_wait(value: float | None, caps: DriverCaps) -> float:
    """The play's ``start_wait``, checked, or the default of the connection's driver."""
    return _wait({"start_wait": value}, "start_wait", start_wait_default(caps.basic()["driver"]))


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
    result = _apply_checked(conn, plan, check_mode, _start_wait(params.get("start_wait"), caps), caps)
    observe_results(conn, [plan], [result], check_mode, _wait(params, "live_wait", LIVE_WAIT))
    return result


def _wait(params: dict, key: str, default: float) -> float:
    value = params.get(key)
    value = default if value is None else value
    if value < 0:
        raise ValidationError(key, f"must be 0 or more seconds, got {value}")
    return float(value)


def _apply_checked(conn, plan: DomainPlan, check_mode: bool, start_wait: float, caps: DriverCaps) -> dict:
    """``apply_plan``, then, when it started the guest, watch it for ``start_wait`` seconds: a
    guest that stops again fails with its console's last lines (the failure names why)."""
    result = apply_plan(conn, plan, check_mode=check_mode)
    if check_mode or not _starts_are_watched(start_wait, caps) or "start" not in result["actions"]:
        return result
    dom = calls.lookup(conn, name=plan.name)
    failure = None
    if dom is not None:
        failure = start_failure(dom, plan.name, caps.basic()["driver"], caps.local, start_wait)
    if failure:
        raise XenError(failure, **{k: v for k, v in result.items() if k not in ("diff", "name")})
    return result


def observe_results(
    conn, plans: list[DomainPlan], results: list[dict], check_mode: bool, live_wait: float, parallel: int = 8
) -> None:
    """Add ``memory_actual``, ``vcpus_online`` and ``live_not_followed`` to each guest result
    (in place): running guests given memory or VCPUs live are waited for together, up to
    ``live_wait`` seconds, and what they did not follow is said in words and as a warning.
    The other running guests are read ``parallel`` at a time (each read asks QEMU or Xen)."""
    by_name = {plan.name: plan for plan in plans}
    watch = []
    running = {}
    for result in results:
        result.setdefault("live_not_followed", [])
        result["memory_actual"] = result["vcpus_online"] = None
        if (result.get("after") or {}).get("state") != "running":
            continue
        plan = by_name.get(result["name"])
        dom = plan.current.dom if plan is not None and plan.current.exists else calls.lookup(conn, name=result["name"])
        if dom is None:
            continue
        running[result["name"]] = dom
        done = [a[len("set_") : -len("_live")] for a in result["actions"] if a.endswith("_live")]
        want = {
            f: result["after"][f]
            for f in ("memory", "vcpus")
            if f in done and f not in result["pending_restart_fields"] and not check_mode
        }
        if want:
            watch.append((dom, result["name"], want))
    followed = follow_live(watch, live_wait) if watch else {}

    def read_guest_side(result: dict) -> None:
        dom = running[result["name"]]
        result["memory_actual"], result["vcpus_online"] = guest_side(dom, calls.live_xml(dom, name=result["name"]))

    _in_parallel(read_guest_side, [r for r in results if r["name"] in running and r["name"] not in followed], parallel)
    for result in results:
        seen = followed.get(result["name"])
        if seen is None:
            continue
        result.update(seen)
        for what in seen["live_not_followed"]:
            result["warnings"].append(
                f"guest {result['name']}: the live change was made but the guest did not follow it within "
                f"{live_wait:g}s ({what}); no balloon driver or CPU hotplug in the guest? The saved value "
                "applies at its next start"
            )


def domain_info(conn, name: str | None = None, console_lines: int = 20) -> list[dict]:
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
    if console_lines < 0:
        raise ValidationError("console_lines", f"must be 0 or more, got {console_lines}")
    caps = DriverCaps(conn).basic()
    out = []
    for guest_name in sorted(doms):
        try:
            out.append(_info_item(conn, guest_name, doms[guest_name], console_lines, caps))
        except XenError:
            if name is None and calls.lookup(conn, name=guest_name) is None:
                continue  # undefined since it was listed (another run removed it): not a failure
            raise
    return out


def _info_item(conn, name: str, dom: Any, console_lines: int, caps: dict) -> dict:
    current = read_current(conn, name, dom=dom)
    live_xml = calls.live_xml(current.dom, name=name) if current.active else None
    vifs, problems = interfaces(
        conn, current.dom, live_xml or current.xml, caps["driver"], caps["local"], current.power == "running"
    )
    actual = online = None
    if current.power == "running":
        actual, online = guest_side(current.dom, live_xml)
    return {
        "name": name,
        "uuid": current.spec["uuid"],
        "state": current.power,
        "autostart": current.spec["autostart"],
        "persistent": calls.is_persistent(current.dom, name=name),
        "live": calls.live_values(current.dom, name=name) if current.active else None,
        "config": current.spec,
        "interfaces": vifs,
        "addresses": flat_addresses(vifs),
        "address_problems": problems,
        "console_log": console_log(name, caps["driver"], live_xml or current.xml, caps["local"], console_lines),
        "memory_actual": actual,
        "vcpus_online": online,
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
    live_wait: float = LIVE_WAIT,
    start_wait: float | None = None,
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
    waits = (
        _wait({"live_wait": live_wait}, "live_wait", LIVE_WAIT),
        _start_wait(start_wait, caps),
    )
    results = _apply_all(conn, plans, check_mode, parallel, waits[1], caps)
    observe_results(conn, plans, results, check_mode, waits[0], parallel)
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
    # A transient domain was not defined by lcfg.xen: nothing to undefine. The others are
    # judged by their marker alone (one small call each: a hypervisor may run many guests
    # that are not this play's).
    persistent = calls.persistent_names(conn) if any(name not in listed for name in domains) else set()
    definitions: dict[str, str | None] = {}
    for name, dom in domains.items():
        if name in listed or name not in persistent:
            continue
        try:
            definitions[name] = calls.metadata_element(dom, METADATA_NS, name=name)
        except XenError:
            again = calls.lookup(conn, name=name)
            if again is None or not calls.is_persistent(again, name=name):
                continue  # undefined since it was listed (another run, another tool): not ours to judge
            # a driver may refuse the metadata call for some domains (libxl: Domain-0): the
            # whole definition tells the same
            definitions[name] = calls.read_definition(again, name=name)[0]
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


def _apply_all(
    conn, plans: list[DomainPlan], check_mode: bool, parallel: int, start_wait: float, caps: DriverCaps
) -> list[dict]:
    """Apply the plans, up to ``parallel`` at a time, then watch the guests this run started,
    all together, for ``start_wait`` seconds; the results in plan order. A failing guest does
    not stop the others: the first failure is raised afterwards, with the rest."""

    finished: dict[str, float] = {}  # when apply_plan returned: a start is watched from there

    def apply_one(plan: DomainPlan) -> dict | XenError:
        try:
            result = apply_plan(conn, plan, check_mode=check_mode)
        except XenError as exc:
            return exc
        finished[plan.name] = time.monotonic()
        return result

    results, failures = _each(apply_one, plans, check_mode, parallel)
    if not check_mode and _starts_are_watched(start_wait, caps):
        results, failures = _watch_starts(conn, plans, (results, failures), finished, start_wait, caps)
    if failures:
        plan, exc = failures[0]
        others = f" ({len(failures) - 1} more guests failed too)" if len(failures) > 1 else ""
        raise XenError(
            f"guest {plan.name}: {exc.message}{others}",
            **list_result(results),
            failed_guests=[p.name for p, _e in failures],
        )
    return results


def _starts_are_watched(start_wait: float, caps: DriverCaps) -> bool:
    """0 turns the watch off. libvirt's test driver runs no guest, so none of its guests can stop
    again by itself: watching them would only add ``start_wait`` seconds to every run that
    starts one."""
    return start_wait > 0 and caps.basic()["driver"] != "test"


def _watch_starts(conn, plans, outcome: tuple[list, list], finished: dict[str, float], start_wait: float, caps):
    """Move the guests that stopped again within ``start_wait`` of their own start (``finished``:
    when each apply returned) from the results to the failures of ``outcome`` (the message
    shows their console; a guest that cannot be looked up or read fails with that error)."""
    results, failures = outcome
    watched = []
    stopped: dict[str, str] = {}
    for name in [r["name"] for r in results if "start" in r["actions"]]:
        try:
            dom = calls.lookup(conn, name=name)
        except XenError as exc:
            stopped[name] = exc.message
            continue
        if dom is not None:
            watched.append((dom, name, finished.get(name, time.monotonic())))
    stopped.update(start_failures(watched, caps.basic()["driver"], caps.local, start_wait))
    if not stopped:
        return results, failures
    by_name = {plan.name: plan for plan in plans}
    for result in [r for r in results if r["name"] in stopped]:
        fields = {k: v for k, v in result.items() if k not in ("diff", "name")}
        failures.append((by_name[result["name"]], XenError(stopped[result["name"]], **fields)))
    order = {plan.name: index for index, plan in enumerate(plans)}
    failures.sort(key=lambda failure: order[failure[0].name])
    return [r for r in results if r["name"] not in stopped], failures


def _each(apply_one, plans: list[DomainPlan], check_mode: bool, parallel: int) -> tuple[list[dict], list[tuple]]:
    """``apply_one`` (a result, or the XenError it caught) over ``plans``, up to ``parallel`` at
    a time when more than one changes; ``(results in plan order, [(plan, error)])``."""
    busy = [plan for plan in plans if plan.actions and not check_mode]
    outcomes = _in_parallel(apply_one, plans, min(parallel, len(busy)))
    results = [o for o in outcomes if isinstance(o, dict)]
    failures = [(plan, o) for plan, o in zip(plans, outcomes, strict=True) if isinstance(o, XenError)]
    return results, failures


def _in_parallel(func, items: list, parallel: int) -> list:
    """``func`` over ``items`` (results in order), up to ``parallel`` at a time."""
    if parallel > 1 and len(items) > 1:
        with ThreadPoolExecutor(max_workers=min(parallel, len(items))) as pool:
            return list(pool.map(func, items))
    return [func(item) for item in items]


ADDRESS_FAMILIES = ("ipv4", "ipv6", "any")


def wait_for_address(conn, name: str, timeout: float, family: str = "ipv4", console_lines: int = 20) -> list[dict]:
    """``domain_info`` of guest ``name``, polled until the guest has an address of ``family``
    (``ipv4``, ``ipv6`` or ``any``) or ``timeout`` seconds have passed; then it fails, naming the
    guest, its state and its console's last lines (why a guest got no address is usually there)."""
    if family not in ADDRESS_FAMILIES:
        raise ValidationError("address_family", f"must be one of {', '.join(ADDRESS_FAMILIES)}, got {family!r}")
    if timeout < 0:
        raise ValidationError("wait_for_address", f"must be 0 or more seconds, got {timeout}")
    deadline = time.monotonic() + timeout
    while True:
        guests = domain_info(conn, name, console_lines)
        if not guests:
            raise NotFound(f"guest {name} does not exist: no address to wait for")
        guest = guests[0]
        found = [a for vif in guest["interfaces"] for a in vif["addresses"] if family in ("any", a["family"])]
        if found:
            return guests
        if time.monotonic() >= deadline:
            log = guest["console_log"] or {}
            tail = "\n".join(log.get("lines") or []) or "(no console lines)"
            problems = "; ".join(guest["address_problems"]) or "none"
            raise XenError(
                f"guest {name} ({guest['state']}) has no {family} address after {timeout:g}s "
                f"(sources that failed: {problems}); last lines of its console {log.get('path', '')}:\n{tail}",
                guests=guests,
            )
        time.sleep(2)


def guest_info(conn, params: dict) -> dict:
    """xen_domain_info's result from its ``params`` (``name``, ``console_lines``,
    ``wait_for_address``, ``address_family``)."""
    lines = params.get("console_lines")
    lines = 20 if lines is None else lines
    if params.get("wait_for_address"):
        if not params.get("name"):
            raise ValidationError("wait_for_address", "needs name: the guest whose address to wait for")
        guests = wait_for_address(
            conn, params["name"], params["wait_for_address"], params.get("address_family") or "ipv4", lines
        )
    else:
        guests = domain_info(conn, params.get("name"), lines)
    return {"changed": False, "guests": guests}
