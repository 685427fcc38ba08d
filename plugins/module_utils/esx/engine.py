# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""xen_esx_guest's engine: read the VM and its host, plan (``esx.plan``), apply
(``esx.client``) unless in check mode, and say what was done."""

from __future__ import annotations

from ansible_collections.lcfg.xen.plugins.module_utils.esx import client
from ansible_collections.lcfg.xen.plugins.module_utils.esx.plan import esx_desired, plan_vm
from ansible_collections.lcfg.xen.plugins.module_utils.spec.schema import OPERATION, check_guest_item

__all__ = ["converge_esx_guest", "guest_options"]


def guest_options(params: dict) -> tuple[dict, str]:
    """The guest options to converge, and the prefix that names them in errors: the module's
    own, or its ``guest`` dict (an inventory ``xen_domain`` variable as it is, checked like a
    ``xen_guests`` item) with the module's state, shutdown_timeout, force_stop, remove_disks."""
    if not params.get("guest"):
        return params, ""
    item = check_guest_item(params["guest"], "guest.")
    for key in OPERATION:
        item[key] = params.get(key, item.get(key))
    return dict(params, **item), "guest."


def converge_esx_guest(params: dict, check_mode: bool = False) -> dict:
    """Converge the VM the guest options of ``params`` describe; the module's result."""
    params, prefix = guest_options(params)
    desired = esx_desired(params, params.get("port_groups"), prefix)  # refused before any connection
    with client.connection(params) as content:
        host = client.host_facts(content, params.get("esx_host"))
        current = client.read_vm(content, desired["name"], params.get("esx_host"))
        plan = plan_vm(
            desired,
            current,
            host,
            state=params["state"],
            adopt=params.get("adopt", False),
            remove_disks=params.get("remove_disks", False),
            prefix=prefix,
            datastore=params.get("datastore"),
        )
        if plan.changed and not check_mode:
            client.apply_plan(content, plan, params)
        seen = (
            None
            if check_mode or plan.after.get("state") == "absent"
            else client.read_vm(content, desired["name"], params.get("esx_host"))
        )
    result = {
        "changed": plan.changed,
        "name": plan.name,
        "esx_host": host["name"],
        "actions": plan.actions,
        "not_applied": plan.not_applied,
        "warnings": plan.warnings,
        "diff": {"before": plan.before, "after": plan.after},
    }
    if seen is not None:
        seen.pop("owned", None)
        result["vm"] = seen
    return result
