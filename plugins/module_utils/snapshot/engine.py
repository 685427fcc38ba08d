# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The entry points of the snapshot engine: xen_snapshot and xen_snapshot_info.

API (an open libvirt connection from ``common.libvirt.open_connection``)::

    result = converge_snapshot(conn, params, check_mode=False)
    # object_result: {"name" (the guest), "snapshot", "changed", "actions", "pending_restart": [],
    #   "before": {"snapshots": [names], "current"}, "after": the same, "info": the snapshot's
    #   entry afterwards or None, "warnings", "diff": {"before", "after"}}
    snapshots = snapshot_info(conn, name, snapshot=None)   # entries, oldest first

The flow: ``apply.read_facts`` / ``read_snapshots`` (libvirt) -> ``plan.plan_snapshot`` (pure)
-> ``apply.apply_plan`` (the ``ensure_*`` steps). The plan's semantics (idempotence, what
is refused) are in ``plan``.
"""

from __future__ import annotations

import time

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import Conflict, NotFound, ValidationError
from ansible_collections.lcfg.xen.plugins.module_utils.common.libvirt import driver_name
from ansible_collections.lcfg.xen.plugins.module_utils.common.result import object_result
from ansible_collections.lcfg.xen.plugins.module_utils.snapshot.apply import (
    apply_plan,
    lookup_guest,
    read_facts,
    read_snapshots,
)
from ansible_collections.lcfg.xen.plugins.module_utils.snapshot.plan import (
    listing,
    plan_snapshot,
    valid_snapshot_name,
)
from ansible_collections.lcfg.xen.plugins.module_utils.spec.schema import check_text

__all__ = ["converge_snapshot", "snapshot_info"]


def _text(option: str, value: object, free: bool = False) -> str:
    """``value`` as libvirt can take it (no NUL or control character; ``free`` text may hold
    tabs and newlines)."""
    if not isinstance(value, str):
        raise ValidationError(option, "must be a string")
    try:
        return check_text(value, free=free)
    except ValueError as exc:
        raise ValidationError(option, str(exc)) from None


def _guest_name(name: object) -> str:
    if not name:
        raise ValidationError("name", "the guest's name is required")
    return _text("name", name)


def _sorted(snapshots: list[dict]) -> list[dict]:
    return sorted(snapshots, key=lambda item: (item.get("creation_time") or 0, item["name"]))


def converge_snapshot(conn, params: dict, check_mode: bool = False) -> dict:
    """Plan and apply one snapshot request (xen_snapshot's options)."""
    name = _guest_name(params.get("name"))
    snapshot = valid_snapshot_name(params.get("snapshot"))
    state = params.get("state") or "present"
    dom = lookup_guest(conn, name=name)
    facts = read_facts(conn, dom, name=name) if dom is not None else None
    driver = facts.driver if facts is not None else driver_name(conn)
    before = read_snapshots(dom, driver, name=name) if dom is not None else []
    try:
        plan = plan_snapshot(
            facts,
            before,
            snapshot,
            state=state,
            description=_text("description", params.get("description") or "", free=True),
            memory=params.get("memory"),
            force=bool(params.get("force")),
            now=int(time.time()),
        )
    except (NotFound, Conflict) as exc:  # name the guest and snapshot in the result too
        if exc.message.startswith("guest "):
            raise type(exc)(exc.message, name=name, snapshot=snapshot) from None
        raise type(exc)(f"guest {name}: {exc.message}", name=name, snapshot=snapshot) from None
    changed, after = (False, before) if dom is None else apply_plan(plan, dom, driver, check_mode=check_mode)
    entry = next((item for item in after if item["name"] == snapshot), None)
    return object_result(
        name,
        plan.actions,
        changed=changed,
        snapshot=snapshot,
        before=listing(before),
        after=listing(after),
        info=entry,
        warnings=plan.warnings,
        diff={"before": listing(before), "after": listing(after)},
    )


def snapshot_info(conn, name: object, snapshot: str | None = None) -> dict:
    """``{"exists": bool, "snapshots": [entries, oldest first], "current": name or None}``
    of the guest ``name`` (only ``snapshot`` when given; an unknown one gives [])."""
    name = _guest_name(name)
    if snapshot is not None:
        snapshot = valid_snapshot_name(snapshot)
    dom = lookup_guest(conn, name=name)
    if dom is None:
        return {"exists": False, "snapshots": [], "current": None}
    snapshots = _sorted(read_snapshots(dom, driver_name(conn), name=name))
    current = listing(snapshots)["current"]
    if snapshot is not None:
        snapshots = [item for item in snapshots if item["name"] == snapshot]
    return {"exists": True, "snapshots": snapshots, "current": current}
