# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Carrying out a DiskPlan: the ordered ``ensure_*`` steps, run by common/plan.run_steps.

Each step looks at its part of the plan, does it (nothing in check mode) and returns
``(changed, image)``: the image as the step leaves it, in the vocabulary of
``plan.image_state``, so check mode walks the same steps as the real run. A new image is
made, grown and given its LCFG settings under its temporary name, checked, and only then
moved to its final name; a failed real run removes the temporary file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import XenError
from ansible_collections.lcfg.xen.plugins.module_utils.common.plan import run_steps
from ansible_collections.lcfg.xen.plugins.module_utils.disk.guestfs import inject_files
from ansible_collections.lcfg.xen.plugins.module_utils.disk.imagecheck import image_problems
from ansible_collections.lcfg.xen.plugins.module_utils.disk.plan import (
    DiskPlan,
    Injection,
    NewImage,
    image_state,
    temp_path,
)
from ansible_collections.lcfg.xen.plugins.module_utils.disk.sizes import format_size
from ansible_collections.lcfg.xen.plugins.module_utils.disk.storage import LocalStorage

__all__ = [
    "DiskRun",
    "ensure_directories",
    "ensure_pools",
    "ensure_no_partial",
    "ensure_made",
    "ensure_size",
    "ensure_lcfg_settings",
    "ensure_named",
    "ensure_deleted",
    "STEPS",
    "apply_plan",
]


@dataclass
class DiskRun:
    """What the ``ensure_*`` steps share while a plan is applied."""

    plan: DiskPlan
    storage: LocalStorage
    check_mode: bool
    warnings: list[str] = field(default_factory=list)
    injection: dict[str, float] | None = None  # timings of the LCFG injection


def ensure_directories(run: DiskRun, image: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """The missing directories on the way to the image (root-owned, never wider than planned)."""
    if not run.plan.directories:
        return False, image
    if not run.check_mode:
        for directory in run.plan.directories:
            run.storage.make_directory(directory.path, directory.mode, directory.gid)
    return True, image


def ensure_pools(run: DiskRun, image: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """The libvirt storage pools of the image's directory (and a copied template's), active."""
    if not run.plan.pools:
        return False, image
    if not run.check_mode:
        for pool in run.plan.pools:
            run.storage.define_pool(pool)
    return True, image


def ensure_no_partial(run: DiskRun, image: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """No temporary image left by an interrupted run."""
    if not run.plan.partial:
        return False, image
    if not run.check_mode:
        run.storage.remove_partial(run.plan.partial)
    return True, image


def ensure_made(run: DiskRun, image: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """A missing image made under its temporary name: blank, copied or an overlay."""
    if run.plan.new is None:
        return False, image
    if not run.check_mode:
        run.plan.new.make(run.storage)
    return True, image


def ensure_size(run: DiskRun, image: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """The image (new under its temporary name, or existing) grown to the size asked for."""
    resize = run.plan.resize
    if resize is None:
        return False, image
    if not run.check_mode:
        run.storage.grow(resize.path, resize.format, resize.size)
    if resize.path != run.plan.path:  # the new image: it has no name yet
        return True, image
    return True, dict(image, virtual_size=resize.size, size=format_size(resize.size))


def ensure_lcfg_settings(run: DiskRun, image: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """The LCFG settings written into the new image's partition (libguestfs)."""
    if run.plan.injection is None:
        return False, image
    if not run.check_mode:
        _inject(run, run.plan.injection)
    return True, image


def _inject(run: DiskRun, injection: Injection) -> None:
    try:
        timing = inject_files(injection.path, injection.format, injection.partition, injection.files)
    except XenError as exc:
        damaged = image_problems(injection.path, injection.format)
        found = f" The clone itself is damaged: {'; '.join(damaged)}." if damaged else ""
        raise XenError(
            f"cannot write the LCFG settings into the clone of {injection.template}: "
            f"{exc.message}.{found} Nothing was created at {run.plan.path}"
        ) from exc
    run.injection = {"seconds": timing["seconds"], "launch_seconds": timing["launch_seconds"]}
    run.warnings.extend(timing["notes"])


def ensure_named(run: DiskRun, image: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """The finished new image checked, sealed (0600, format and origin recorded) and moved to its name."""
    if run.plan.new is None:
        return False, image
    if not run.check_mode:
        _check_and_name(run, run.plan.new)
    return True, run.plan.after


def _check_and_name(run: DiskRun, new: NewImage) -> None:
    damaged = image_problems(new.path, new.format, new.size if new.format == "raw" else None)
    if damaged:  # a clone that does not check out never takes its final name
        raise XenError(
            f"the new image {new.path} failed its check: {'; '.join(damaged)}. Nothing was created at {run.plan.path}"
        )
    warning = run.storage.rename(new.path, run.plan.path, new.format, run.plan.origin)
    if warning:
        run.warnings.append(warning)


def ensure_deleted(run: DiskRun, image: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """The image deleted (state: absent)."""
    if not run.plan.delete:
        return False, image
    if not run.check_mode:
        run.storage.delete(run.plan.path)
    return True, image_state(run.plan.path, None)


# In the order of DiskPlan.actions.
STEPS = (
    ensure_directories,
    ensure_pools,
    ensure_no_partial,
    ensure_made,
    ensure_size,
    ensure_lcfg_settings,
    ensure_named,
    ensure_deleted,
)


def apply_plan(plan: DiskPlan, storage: LocalStorage, check_mode: bool) -> tuple[DiskRun, dict[str, Any]]:
    """Walk STEPS over ``plan`` (in check mode: simulated); the run and the image it leaves."""
    run = DiskRun(plan=plan, storage=storage, check_mode=check_mode, warnings=list(plan.warnings))
    if check_mode:
        return run, run_steps(STEPS, run, plan.before)[1]
    temp = temp_path(plan.path)
    umask = os.umask(0o077)  # nothing we create is readable by others, even for a moment
    try:
        image = run_steps(STEPS, run, plan.before)[1]
    except BaseException:
        # Never leave a partial image behind a failed run (the final name is untouched).
        if os.path.lexists(temp):
            storage.remove_partial(temp)
        raise
    finally:
        os.umask(umask)
    return run, image
