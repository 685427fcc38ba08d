# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The one plan style of the engines (domain, disk, network).

Each engine plans into a dataclass (``DomainPlan``, ``DiskPlan``, ``NetworkPlan``,
``BridgePlan``) built by a pure ``plan_*`` function from the request and what is there now;
its ``actions`` (strings, in order) say what applying it will do, and ``changed`` is
``bool(actions)``. ``apply_*`` then runs an ordered tuple of named ``ensure_*`` steps through
``run_steps``: each step looks at the plan, does its part (nothing in check mode) and returns
``(changed, state)``, the state as it is after the step (simulated in check mode), so check
mode walks the same steps as the real run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["Step", "run_steps"]

# step(run, state) -> (changed, state after the step)
Step = Callable[[Any, Any], tuple[bool, Any]]


def run_steps(steps: Iterable[Step], run: Any, state: Any) -> tuple[bool, Any]:
    """Run ``steps`` in order, threading the state; True when any of them changed something."""
    changed = False
    for step in steps:
        step_changed, state = step(run, state)
        changed = changed or step_changed
    return changed, state
