# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The one result contract of the changing modules (docs/architecture.md, "Results").

Every changing module returns ``changed`` (bool), ``actions`` (list of str: what was done, or
in check mode what would be done, in order), ``pending_restart`` (list of str: the names of
the objects whose change is saved but takes effect only at their next restart; ``[]`` when
none), ``diff`` (``{before, after}``, in diff mode only) and, for a real run, ``lock_waited``.
A module that acts on one object (``xen_domain``, ``xen_disk``) returns that object's fields
beside them. A module that acts on several (``xen_guests``, ``xen_group``, ``xen_bridge``)
returns ``results``: one entry per object in the order given, each an object result (``name``,
``changed``, ``actions``, ``pending_restart`` and the object's fields), also for one object;
its top-level ``actions`` are the entries' actions prefixed with the object's name.

``diff`` of a multi-object module: one top-level ``{before: {name: ...}, after: {name: ...}}``
(diff mode only); the ``results[]`` entries never carry ``diff`` (their ``before`` and
``after`` say the same). ``warnings`` (top level or in an entry) are not returned as keys:
they become the module's warnings. ``common.module.run_module`` applies both rules, on
success and on failure (a XenError's result fields).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["object_result", "list_result"]


def object_result(
    name: str, actions: Iterable[str], pending_restart: bool = False, changed: bool | None = None, **fields: Any
) -> dict:
    """The result of one object. ``changed`` defaults to ``bool(actions)``."""
    actions = list(actions)
    return dict(
        fields,
        name=name,
        changed=bool(actions) if changed is None else changed,
        actions=actions,
        pending_restart=[name] if pending_restart else [],
    )


def list_result(results: list[dict], **fields: Any) -> dict:
    """The result of a module that acts on several objects, from their object results."""
    return dict(
        fields,
        changed=any(item["changed"] for item in results),
        actions=[f"{item['name']}: {action}" for item in results for action in item["actions"]],
        pending_restart=[name for item in results for name in item["pending_restart"]],
        results=results,
    )
