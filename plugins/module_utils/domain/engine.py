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
    result = converge_guests(conn, [item, ...], check_mode=False, default_bridge=None, parallel=8)
    # -> list_result: {"changed", "actions", "pending_restart": [names], "results": [result
    #    per guest, in the order given], "diff"}
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
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ansible_collections.lcfg.xen.plugins.module_utils.common.confinement import DEFAULT_STORAGE_DIRS
from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import NotFound, ValidationError, XenError
from ansible_collections.lcfg.xen.plugins.module_utils.common.host_access import HostAccess
from ansible_collections.lcfg.xen.plugins.module_utils.common.result import list_result
from ansible_collections.lcfg.xen.plugins.module_utils.domain import calls
from ansible_collections.lcfg.xen.plugins.module_utils.domain.access import (
    SharedFiles,
    check_access,
    check_disks_not_claimed_twice,
)
from ansible_collections.lcfg.xen.plugins.module_utils.domain.apply import apply_plan
from ansible_collections.lcfg.xen.plugins.module_utils.domain.current import DriverCaps, read_current
from ansible_collections.lcfg.xen.plugins.module_utils.domain.observe import (
    console_log,
    flat_addresses,
    follow_live,
    guest_side,
    interfaces,
    start_failure,
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
]

#: seconds a live change is waited for until the guest follows it (module option live_wait)
LIVE_WAIT = 10
#: seconds a guest the run started is watched for an early stop (module option start_wait)
START_WAIT = 3


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
    result = _apply_checked(conn, plan, check_mode, _wait(params, "start_wait", START_WAIT), caps)
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
    if check_mode or start_wait <= 0 or "start" not in result["actions"]:
        return result
    dom = calls.lookup(conn, name=plan.name)
    failure = None
    if dom is not None:
        failure = start_failure(dom, plan.name, caps.basic()["driver"], caps.local, start_wait)
    if failure:
        raise XenError(failure, **{k: v for k, v in result.items() if k not in ("diff", "name")})
    return result


def observe_results(conn, plans: list[DomainPlan], results: list[dict], check_mode: bool, live_wait: float) -> None:
    """Add ``memory_actual``, ``vcpus_online`` and ``live_not_followed`` to each guest result
    (in place): running guests given memory or VCPUs live are waited for together, up to
    ``live_wait`` seconds, and what they did not follow is said in words and as a warning."""
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
    for result in results:
        dom = running.get(result["name"])
        if dom is None:
            continue
        seen = followed.get(result["name"])
        if seen is None:
            xml = calls.live_xml(dom, name=result["name"])
            result["memory_actual"], result["vcpus_online"] = guest_side(dom, xml)
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
    live_wait: float = LIVE_WAIT,
    start_wait: float = START_WAIT,
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
    waits = (
        _wait({"live_wait": live_wait}, "live_wait", LIVE_WAIT),
        _wait({"start_wait": start_wait}, "start_wait", START_WAIT),
    )
    results = _apply_all(conn, plans, check_mode, parallel, waits[1], caps)
    observe_results(conn, plans, results, check_mode, waits[0])
    return list_result(
        results,
        diff={"before": {r["name"]: r["before"] for r in results}, "after": {r["name"]: r["after"] for r in results}},
    )


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
    """Apply the plans, up to ``parallel`` at a time; the results in plan order. A failing
    guest does not stop the others: the first failure is raised afterwards, with the rest."""

    def apply_one(plan: DomainPlan) -> dict | XenError:
        try:
            return _apply_checked(conn, plan, check_mode, start_wait, caps)
        except XenError as exc:
            return exc

    busy = [plan for plan in plans if plan.actions and not check_mode]
    if parallel > 1 and len(busy) > 1:
        with ThreadPoolExecutor(max_workers=min(parallel, len(busy))) as pool:
            outcomes = list(pool.map(apply_one, plans))
    else:
        outcomes = [apply_one(plan) for plan in plans]
    results = [o for o in outcomes if isinstance(o, dict)]
    failures = [(plan, o) for plan, o in zip(plans, outcomes, strict=True) if isinstance(o, XenError)]
    if failures:
        plan, exc = failures[0]
        others = f" ({len(failures) - 1} more guests failed too)" if len(failures) > 1 else ""
        raise XenError(
            f"guest {plan.name}: {exc.message}{others}",
            **list_result(results),
            failed_guests=[p.name for p, _e in failures],
        )
    return results


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
