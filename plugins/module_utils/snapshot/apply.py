# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The libvirt half of the snapshot engine: reading a guest and its snapshots, and carrying
out a SnapshotPlan through the ordered ``ensure_*`` steps (common/plan.run_steps).

Each step looks at its part of the plan, makes its one libvirt call (nothing in check mode)
and returns ``(changed, snapshots)``: the snapshot entries as the step leaves them (the
plan's prediction in check mode, read back from libvirt after a real call).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ansible_collections.lcfg.xen.plugins.module_utils.common.libvirt import (
    driver_name,
    libvirt,
    libvirt_errors,
    missing_is_none,
)
from ansible_collections.lcfg.xen.plugins.module_utils.common.plan import run_steps
from ansible_collections.lcfg.xen.plugins.module_utils.domain.calls import POWER
from ansible_collections.lcfg.xen.plugins.module_utils.snapshot.plan import (
    SNAPSHOT_DRIVERS,
    GuestFacts,
    SnapshotPlan,
    parse_guest_disks,
    parse_snapshot,
    render_snapshot,
)

__all__ = [
    "lookup_guest",
    "read_facts",
    "read_snapshots",
    "SnapshotRun",
    "ensure_created",
    "ensure_reverted",
    "ensure_deleted",
    "STEPS",
    "apply_plan",
]


@libvirt_errors("look up guest {name}")
@missing_is_none
def lookup_guest(conn, *, name: str):
    return conn.lookupByName(name)


@libvirt_errors("read guest {name}")
def read_facts(conn, dom, *, name: str) -> GuestFacts:
    xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    return GuestFacts(
        name=name, driver=driver_name(conn), power=POWER.get(dom.state()[0], "running"), disks=parse_guest_disks(xml)
    )


@libvirt_errors("list the snapshots of guest {name}")
def read_snapshots(dom, driver: str, *, name: str) -> list[dict]:
    """The guest's snapshots (``plan.parse_snapshot`` entries); none on a driver without them."""
    if driver not in SNAPSHOT_DRIVERS:
        return []
    out = []
    for snap in dom.listAllSnapshots(0):
        out.append(parse_snapshot(snap.getXMLDesc(0), bool(snap.isCurrent(0))))
    return out


@dataclass
class SnapshotRun:
    """What the ``ensure_*`` steps share while a plan is applied."""

    plan: SnapshotPlan
    dom: Any
    driver: str
    check_mode: bool


def _after(run: SnapshotRun, predicted: list[dict]) -> list[dict]:
    return predicted if run.check_mode else read_snapshots(run.dom, run.driver, name=run.plan.domain)


@libvirt_errors("create snapshot {snapshot} of guest {name}")
def _create(dom, xml: str, *, snapshot: str, name: str) -> None:
    dom.snapshotCreateXML(xml, 0)


@libvirt_errors("revert guest {name} to snapshot {snapshot}")
def _revert(dom, force: bool, *, snapshot: str, name: str) -> None:
    flags = libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_FORCE if force else 0
    dom.revertToSnapshot(dom.snapshotLookupByName(snapshot, 0), flags)


@libvirt_errors("delete snapshot {snapshot} of guest {name}")
def _delete(dom, *, snapshot: str, name: str) -> None:
    dom.snapshotLookupByName(snapshot, 0).delete(0)


def _step(run: SnapshotRun, snapshots: list[dict], wanted: bool, call: Any) -> tuple[bool, list[dict]]:
    """The shape of every step: nothing unless ``wanted``; ``call()`` unless in check mode."""
    if not wanted:
        return False, snapshots
    if not run.check_mode:
        call()
    return True, _after(run, run.plan.after)


def ensure_created(run: SnapshotRun, snapshots: list[dict]) -> tuple[bool, list[dict]]:
    """state=present: take the snapshot (with the memory of a running guest)."""
    plan = run.plan
    xml = render_snapshot(plan.snapshot, plan.description)
    return _step(run, snapshots, plan.create, lambda: _create(run.dom, xml, snapshot=plan.snapshot, name=plan.domain))


def ensure_reverted(run: SnapshotRun, snapshots: list[dict]) -> tuple[bool, list[dict]]:
    """state=reverted: the guest's disks (and memory and power state) back to the snapshot."""
    plan = run.plan
    return _step(
        run, snapshots, plan.revert, lambda: _revert(run.dom, plan.force, snapshot=plan.snapshot, name=plan.domain)
    )


def ensure_deleted(run: SnapshotRun, snapshots: list[dict]) -> tuple[bool, list[dict]]:
    """state=absent: delete the snapshot (its data inside the images too)."""
    plan = run.plan
    return _step(run, snapshots, plan.delete, lambda: _delete(run.dom, snapshot=plan.snapshot, name=plan.domain))


STEPS = (ensure_created, ensure_reverted, ensure_deleted)


def apply_plan(plan: SnapshotPlan, dom: Any, driver: str, check_mode: bool = False) -> tuple[bool, list[dict]]:
    """Run the steps; return (changed, the snapshots afterwards)."""
    return run_steps(STEPS, SnapshotRun(plan=plan, dom=dom, driver=driver, check_mode=check_mode), plan.before)
