# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Network requests end to end, for xen_bridge: every request is checked and planned first
(``plan_request``: the bridge plan of ``bridge.py`` and/or the libvirt network plan of
``libvirt_network.py``), so one bad request changes nothing; then each is applied in order
(``apply_request``; check mode walks the same steps) and the libvirt networks created, adopted
or removed are recorded (``owner.py``). ``reconcile`` returns the module's result
(``common/result.list_result``: ``results``, one object result per network).

The flow: ``request.py`` (validate) -> ``bridge.py``/``libvirt_network.py`` (plan, apply;
``persist.py`` for a bridge's files, ``xml.py`` for a network's XML, ``iproute.py`` for ``ip``)
-> this file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import Conflict
from ansible_collections.lcfg.xen.plugins.module_utils.common.result import list_result, object_result
from ansible_collections.lcfg.xen.plugins.module_utils.network.bridge import (
    BridgePlan,
    apply_bridge,
    check_bridge_name,
    plan_bridge,
)
from ansible_collections.lcfg.xen.plugins.module_utils.network.iproute import Runner, ip_json, read_link
from ansible_collections.lcfg.xen.plugins.module_utils.network.libvirt_network import (
    NetworkPlan,
    apply_network,
    check_mode_kept,
    check_subnet_free,
    list_networks,
    plan_network,
    read_network,
)
from ansible_collections.lcfg.xen.plugins.module_utils.network.owner import check_owned, read_owned, update_owned
from ansible_collections.lcfg.xen.plugins.module_utils.network.request import check_vif_script

__all__ = [
    "RequestPlan",
    "plan_request",
    "apply_request",
    "reconcile",
]


@dataclass
class RequestPlan:
    """One request planned: its bridge plan and/or libvirt network plan, and what the module
    returns for it (``fields``: mode, state, bridge, vif_script and, for a bridge, persist)."""

    request: dict
    bridge: BridgePlan | None = None
    network: NetworkPlan | None = None
    uuid: str | None = None  # the libvirt network's before this run
    fields: dict = field(default_factory=dict)
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.request["name"]

    @property
    def actions(self) -> list[str]:
        return [*(self.bridge.actions if self.bridge else []), *(self.network.actions if self.network else [])]

    @property
    def changed(self) -> bool:
        return bool(self.actions)

    @property
    def pending_restart(self) -> bool:
        return bool(self.network and self.network.pending_restart)


def _drop_display(view: dict | None) -> dict | None:
    if view is None:
        return None
    return {key: value for key, value in view.items() if key not in ("mac", "stp")}


def plan_request(
    request: dict,
    run: Runner,
    connect: Callable[[], Any],
    uri: str,
    root: str = "/",
    prefix: str = "",
    state_file: str | None = None,
) -> RequestPlan:
    """Plan one request (reads only). With ``state_file``, an existing libvirt network not
    recorded there is only changed when the request adopts it (``owner.check_owned``)."""
    check_vif_script(request, uri, prefix=prefix)
    plan = RequestPlan(
        request=request,
        fields={
            "mode": request["mode"],
            "state": request["state"],
            "bridge": request["bridge"],
            "vif_script": request["vif_script"],
        },
    )
    if request["mode"] == "bridge" or request["state"] == "present":
        owned = read_owned(state_file) if state_file is not None else {}
        check_bridge_name(request, list_networks(connect()) if request["bridge"] else [], owned, prefix)
    if request["mode"] == "bridge":
        plan.bridge = plan_bridge(request, run, root, prefix)
        plan.before["bridge"] = _drop_display(plan.bridge.before)
        plan.after["bridge"] = _drop_display(plan.bridge.after)
        plan.warnings += plan.bridge.warnings
        plan.fields["persist"] = plan.bridge.persist
    if request["mode"] != "bridge" or request["libvirt_network"]:
        _plan_libvirt_network(plan, run, connect, prefix, state_file)
    return plan


def _plan_libvirt_network(
    plan: RequestPlan, run: Runner, connect: Callable[[], Any], prefix: str, state_file: str | None
) -> None:
    """The libvirt network of a request: planned, and checked against what else is on the host
    (its kind, who made it, a Linux bridge of that name, a subnet in use)."""
    request = plan.request
    current = read_network(connect(), request["name"])
    plan.network = plan_network(request, current, prefix)
    plan.uuid = current["config"]["uuid"] if current else None
    check_mode_kept(request, current, prefix)
    if state_file is not None:
        check_owned(request, plan.uuid, plan.network.actions, read_owned(state_file), state_file, prefix)
    own = current["live"]["bridge"] if current and current["live"] else None
    if (
        request["mode"] != "bridge"
        and request["bridge"]
        and request["state"] == "present"
        and request["bridge"] != own
        and read_link(run, request["bridge"]) is not None
    ):
        raise Conflict(
            f"{prefix}bridge: {request['bridge']} already exists on this host; libvirt creates "
            f"the bridge of a {request['mode']} network itself: choose another name"
        )
    wanted = (plan.network.after or {}).get("address")
    if wanted and (current is None or current["config"]["address"] != wanted):
        family = "-6" if ":" in wanted else "-4"
        check_subnet_free(
            request["name"],
            wanted,
            own,
            list_networks(connect()),
            ip_json(run, ["ip", "-j", family, "route", "show"]),
            prefix,
        )
    plan.before["network"] = plan.network.before
    plan.after["network"] = plan.network.after
    plan.warnings += plan.network.warnings
    if request["mode"] != "bridge":
        plan.fields["bridge"] = (plan.network.after or plan.network.before or {}).get("bridge")


def apply_request(
    plan: RequestPlan, run: Runner, connect: Callable[[], Any], uri: str, check_mode: bool = False
) -> None:
    """Carry out a planned request (in check mode: walk its steps changing nothing); fills in
    what only the real run learns (the bridge libvirt gave a network)."""
    if not plan.changed:
        return
    request = plan.request
    local = uri.partition(":")[2].startswith("///")
    conn = None if check_mode or plan.network is None else connect()
    if plan.bridge is not None and request["state"] == "present":
        apply_bridge(plan.bridge, run, check_mode)
    if plan.network is not None:
        plan.warnings += apply_network(conn, plan.network, run, local, check_mode)
    if plan.bridge is not None and request["state"] == "absent":
        # guests refer to the libvirt network: it went before its bridge
        apply_bridge(plan.bridge, run, check_mode)
    if plan.network is None or request["mode"] == "bridge" or request["state"] == "absent" or check_mode:
        return
    record = read_network(conn, request["name"])
    if record and record["live"] and record["live"]["bridge"]:
        plan.fields["bridge"] = record["live"]["bridge"]
        if plan.after.get("network") and plan.after["network"].get("bridge") is None:
            plan.after["network"]["bridge"] = record["live"]["bridge"]


def reconcile(
    requests: list,
    run: Runner,
    connect: Callable[[], Any],
    uri: str,
    check: bool,
    root: str = "/",
    prefixes: list | None = None,
    state_file: str | None = None,
) -> dict:
    """Plan every request first (so one bad request changes nothing), then apply them in order;
    return the module's result. With ``state_file``, the libvirt networks created or adopted are
    recorded there, and those removed forgotten."""
    prefixes = prefixes or [""] * len(requests)
    plans = [
        plan_request(request, run, connect, uri, root, prefix, state_file)
        for request, prefix in zip(requests, prefixes, strict=True)
    ]
    for plan in plans:
        apply_request(plan, run, connect, uri, check)
        if state_file is not None and plan.network is not None and not check:
            _record_owner(state_file, plan, connect)
    return list_result(
        [object_result(plan.name, plan.actions, plan.pending_restart, **plan.fields) for plan in plans],
        diff={"before": {plan.name: plan.before for plan in plans}, "after": {plan.name: plan.after for plan in plans}},
        warnings=[warning for plan in plans for warning in plan.warnings],
    )


def _record_owner(state_file: str, plan: RequestPlan, connect: Callable[[], Any]) -> None:
    """Note a network this run created or adopted; forget one it removed."""
    request = plan.request
    if request["state"] == "absent":
        if plan.uuid is not None:
            update_owned(state_file, {}, {plan.uuid})
        return
    if plan.uuid is None or request["adopt"] or plan.network.changed:
        record = read_network(connect(), request["name"])
        if record is not None:
            update_owned(state_file, {record["config"]["uuid"]: request["name"]}, set())
