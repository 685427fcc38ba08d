# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Apply one guest's plan: ``apply_plan(conn, plan, check_mode)`` runs the steps
``ensure_defined``, ``ensure_live``, ``ensure_autostart`` and ``ensure_power_state`` (or
``ensure_absent``) through ``common.plan.run_steps``; each returns ``(changed, new_state)``
and only simulates in check mode. The result is an object result (``common.result``) with
the guest's ``before``, ``after``, ``pending_restart_fields``, ``warnings`` and ``diff``.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.lcfg.xen.plugins.module_utils.common.plan import run_steps
from ansible_collections.lcfg.xen.plugins.module_utils.common.result import object_result
from ansible_collections.lcfg.xen.plugins.module_utils.common.validate import cpuset_members
from ansible_collections.lcfg.xen.plugins.module_utils.domain import calls
from ansible_collections.lcfg.xen.plugins.module_utils.domain.current import read_current
from ansible_collections.lcfg.xen.plugins.module_utils.domain.plan import DomainPlan
from ansible_collections.lcfg.xen.plugins.module_utils.domain.render import container_quota

__all__ = ["apply_plan", "ensure_defined", "ensure_live", "ensure_autostart", "ensure_power_state", "ensure_absent"]


@dataclass
class _Run:
    """What the ``ensure_*`` steps share while a plan is applied."""

    conn: Any
    plan: DomainPlan
    check_mode: bool
    dom: Any = None
    done: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)


# Each ensure_* step takes the state so far (a spec view with ``state``) and returns
# (changed, new_state). In check mode it changes nothing and returns the simulated state.


def ensure_defined(run: _Run, state: dict) -> tuple[bool, dict]:
    plan = run.plan
    if plan.new_xml is None:
        return False, state
    if plan.missing_network is not None and not run.check_mode:
        raise plan.missing_network  # before anything of this guest changes
    new_state = dict(
        copy.deepcopy(plan.after), state=state.get("state", "stopped"), autostart=state.get("autostart", False)
    )
    if state.get("state") == "absent":
        new_state["state"] = "stopped"
    if not run.check_mode:
        run.dom = calls.define(run.conn, plan.new_xml, name=plan.name)
        run.done.append("redefine" if plan.current.exists else "define")
    return True, new_state


def ensure_live(run: _Run, state: dict) -> tuple[bool, dict]:
    """memory, vcpus and pinning of a running guest (the saved values are in place already)."""
    plan = run.plan
    if not plan.live:
        return False, state
    new_state = dict(state, **plan.live)
    if run.check_mode:
        return True, new_state
    dom = run.dom
    failures: dict[str, str | None] = {}
    container = plan.after.get("type") == "container"
    if "memory" in plan.live and container:  # the saved limit is in the new definition
        failures["memory"] = calls.live_only(dom.setMemoryFlags, plan.live["memory"] * 1024)
    elif "memory" in plan.live:
        failures["memory"] = calls.live_and_config(dom.setMemoryFlags, plan.live["memory"] * 1024)
    if "vcpus" in plan.live and container:
        failures["vcpus"] = calls.set_container_quota(dom, container_quota(plan.live["vcpus"]))
    elif "vcpus" in plan.live:
        failures["vcpus"] = calls.live_and_config(dom.setVcpusFlags, plan.live["vcpus"])
    if "cpus" in plan.live:
        ncpus = calls.host_cpu_count(run.conn)
        members = set(cpuset_members(plan.live["cpus"])) if plan.live["cpus"] else set(range(ncpus))
        cpumap = tuple(i in members for i in range(ncpus))
        vcpus = calls.vcpu_count(dom, name=plan.name)
        errors = [e for e in (calls.pin(dom, vcpu, cpumap) for vcpu in range(vcpus)) if e]
        failures["cpus"] = errors[0] if errors else None
    for field_name, error in failures.items():
        run.done.append(f"set_{field_name}_live")
        if error is None:
            continue
        run.pending.append(field_name)
        run.warnings.append(
            f"guest {plan.name}: {field_name} could not change live ({error}); "
            "the new value is saved and applies at the next restart"
        )
    return True, new_state


def ensure_autostart(run: _Run, state: dict) -> tuple[bool, dict]:
    plan = run.plan
    if plan.autostart is None:
        return False, state
    if not run.check_mode:
        calls.set_autostart(run.dom, plan.autostart, name=plan.name)
        run.done.append("set_autostart")
    return True, dict(state, autostart=plan.autostart)


def ensure_power_state(run: _Run, state: dict) -> tuple[bool, dict]:
    plan = run.plan
    if plan.power is None:
        return False, state
    if not run.check_mode:
        # Read again: what was planned may have happened meanwhile (another run, a guest
        # paused while it started up); do only what is still missing.
        now = calls.power_now(run.dom, name=plan.name)
        if now == plan.after["state"]:
            return False, dict(state, state=now)
        if now == "stopped" and plan.after["state"] == "running":
            calls.start(run.dom, name=plan.name)
            run.done.append("start")
        elif now == "paused" and plan.after["state"] == "running":
            calls.resume(run.dom, name=plan.name)
            run.done.append("resume")
        else:
            _stop_noted(run)
    return True, dict(state, state=plan.after["state"])


def _stop_noted(run: _Run) -> None:
    plan = run.plan
    how = calls.stop(run.dom, plan.shutdown_timeout, plan.force_stop, name=plan.name)
    run.done.append("stop")
    if how == "destroy":
        run.warnings.append(
            f"guest {plan.name} did not shut down within {plan.shutdown_timeout:g}s and "
            "was powered off (force_stop: true)"
        )


def ensure_absent(run: _Run, state: dict) -> tuple[bool, dict]:
    plan = run.plan
    if not plan.actions:
        return False, state
    if not run.check_mode:
        if plan.stop_first:
            _stop_noted(run)
        calls.undefine(run.dom, name=plan.name)
        run.done.append("undefine")
        local = plan.local
        for path in plan.remove_paths:
            if calls.remove_image(run.conn, path=path, local=local):
                run.done.append(f"remove_disk {path}")
            elif local and os.path.lexists(path):  # it changed since the plan
                run.warnings.append(f"guest {plan.name}: disk image {path} kept: it is no longer a regular file")
            else:
                run.warnings.append(f"guest {plan.name}: disk image {path} was not found; nothing removed")
    return True, {"name": plan.name, "state": "absent"}


def apply_plan(conn, plan: DomainPlan, check_mode: bool = False) -> dict:
    """Carry out ``plan`` step by step (in check mode: simulate the steps)."""
    run = _Run(
        conn=conn,
        plan=plan,
        check_mode=check_mode,
        dom=plan.current.dom,
        pending=list(plan.pending_restart_fields),
        warnings=list(plan.notes),
    )
    steps = (
        (ensure_absent,)
        if plan.state == "absent"
        else (ensure_defined, ensure_live, ensure_autostart, ensure_power_state)
    )
    changed, state = run_steps(steps, run, copy.deepcopy(plan.before))
    if changed and not check_mode and plan.state != "absent":
        state = read_current(conn, plan.name, dom=run.dom).view(plan.fragments)
    pending = sorted(set(run.pending))
    return object_result(
        plan.name,
        list(plan.actions) if check_mode else run.done,
        pending_restart=bool(pending),
        changed=changed,
        before=plan.before,
        after=state,
        pending_restart_fields=pending,
        warnings=run.warnings,
        diff={"before": plan.before, "after": state},
    )
