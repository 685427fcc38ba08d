# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Disk images: one xen_disk run (``run_disk``) and the listing of xen_disk_info (``list_images``).

A run flows through the files of this folder:

  request.py      the module's parameters, checked (confinement.py: the storage directories)
  storage.py      what is there now (qemu-img, libvirt's storage API)
  plan.py         the DiskPlan: what to do, and its ``actions`` in words (pure)
  apply.py        the ensure_* steps that carry the plan out (check mode walks them too)

(sizes.py reads and writes sizes; guestfs.py writes the LCFG settings into a clone.)

Here, between reading and planning, the checks that need the host: a disk a domain uses is
not deleted, nor an overlay's backing file; a template is checked before it is cloned and a
clone's recorded origin compared with its template now (imagecheck.py). The result is the
collection's single-object result (common/result.py): ``pending_restart`` is always ``[]``,
as a change to an image needs no restart to take effect.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Iterator
from typing import Any

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import Conflict, ValidationError, XenError
from ansible_collections.lcfg.xen.plugins.module_utils.common.libvirt import open_connection
from ansible_collections.lcfg.xen.plugins.module_utils.common.lock import flock_by, lock_directory, open_lock_file
from ansible_collections.lcfg.xen.plugins.module_utils.common.result import object_result
from ansible_collections.lcfg.xen.plugins.module_utils.disk import debian
from ansible_collections.lcfg.xen.plugins.module_utils.disk.apply import apply_plan
from ansible_collections.lcfg.xen.plugins.module_utils.disk.guestfs import make_template, template_layout
from ansible_collections.lcfg.xen.plugins.module_utils.disk.imagecheck import (
    compare_origin,
    image_problems,
    partition_problem,
    recorded_origin,
    template_state,
)
from ansible_collections.lcfg.xen.plugins.module_utils.disk.plan import (
    DiskPlan,
    image_state,
    plan_absent,
    plan_present,
    temp_path,
)
from ansible_collections.lcfg.xen.plugins.module_utils.disk.request import DiskRequest, build_request
from ansible_collections.lcfg.xen.plugins.module_utils.disk.sizes import format_size
from ansible_collections.lcfg.xen.plugins.module_utils.disk.storage import (
    LibvirtStorage,
    LocalStorage,
    domains_using,
    qemu_img_info,
    recorded_format,
)

__all__ = [
    "image_lock",
    "image_format",
    "run_disk",
    "list_images",
]


@contextlib.contextmanager
def image_lock(path: str, timeout: float, directory: str | None = None) -> Iterator[None]:
    """Serialise runs on one image (a second run waits, then finds the image made).

    The lock file is named by a hash of the image path in ``lock_directory()``, opened
    without following links; the wait is bounded by ``timeout`` seconds.
    """
    directory = lock_directory(directory)
    name = hashlib.sha256(path.encode()).hexdigest()[:24]
    lock = os.path.join(directory, f"disk-{name}.lock")
    fd = open_lock_file(lock, f" for {path}")
    try:
        if not flock_by(fd, time.monotonic() + timeout):
            raise Conflict(
                f"another run has been working on {path} for more than {timeout:g} s (lock file "
                f"{lock}): let it finish and run again, or raise lock_timeout"
            )
        yield
    finally:
        os.close(fd)


def run_disk(params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    """Check, read, plan and apply (in check mode: walk the steps, changing nothing); the
    module result."""
    req = build_request(params)
    run = _run_template if req.state == "template" else _run_locked
    if check_mode:  # check mode changes nothing, so it takes no lock
        return run(req, check_mode)
    with image_lock(req.path, req.lock_timeout):
        return run(req, check_mode)


TEMPLATE_SIZE = 1024**3  # a built template's size when the request names none
TEMPLATE_PARTITION = 5


def _run_template(req: DiskRequest, check_mode: bool) -> dict[str, Any]:
    """state=template: build an empty LCFG template image at ``req.path`` when it is missing
    (guestfs.make_template: msdos table, ext4 on ``req.partition``); an existing file is
    never touched, whatever it holds. Local only (no ``uri``)."""
    if req.uri:
        raise ValidationError("uri", "state=template builds the image on the managed host itself: leave uri unset")
    size = req.size or TEMPLATE_SIZE
    partition = req.partition or TEMPLATE_PARTITION
    try:
        template_layout(size, partition)
    except XenError as exc:
        raise ValidationError("size_gb" if req.size else "partition", exc.message) from None
    if os.path.lexists(req.path):
        return object_result(req.path, [], image={"path": req.path, "exists": True}, built=False)
    storage = LocalStorage()
    directories = storage.missing_directories(req)
    actions = [f"create directory {d.path} (mode {d.mode:04o})" for d in directories]
    actions.append(f"build template image {req.path} (raw, {format_size(size)}, msdos, ext4 on partition {partition})")
    prepare, extra = _bootable(req, actions)
    if not check_mode:
        for directory in directories:
            storage.make_directory(directory.path, directory.mode, directory.gid)
        make_template(req.path, size, partition=partition, populate=prepare() if prepare else None)
    return object_result(
        req.path,
        actions,
        image={"path": req.path, "exists": not check_mode},
        built=True,
        **extra,
        diff={"before": {"path": req.path, "exists": False}, "after": {"path": req.path, "exists": True}},
    )


def _bootable(req: DiskRequest, actions: list[str]) -> tuple[Any, dict[str, Any]]:
    """With os=debian: the preparation of a bootable template (debian.py; it returns the
    populate step of make_template) and its result fields; the last action says so.
    Without: (None, {})."""
    if req.os != "debian":
        return None, {}
    try:
        suite = req.suite or debian.host_suite()
        mirror = req.mirror or debian.apt_mirror(suite)
        debian.check_inputs(suite, mirror)
    except XenError as exc:
        raise ValidationError("mirror" if req.suite else "suite", exc.message) from None
    cache_dir = req.cache_dir or debian.DEFAULT_CACHE_DIR
    key = debian.cache_key(suite, mirror)
    actions[-1] = (
        actions[-1]
        .replace("build template image", f"build bootable Debian {suite} template image")
        .replace("ext4 on partition", "/boot and extlinux on partition 1, the root filesystem on partition")
        + f" from {mirror} (root filesystem cached in {cache_dir}, key {key})"
    )
    bootable = {"os": "debian", "suite": suite, "mirror": mirror, "cache_key": key}

    def prepare() -> Any:
        """The cached root filesystem (debootstrap first when missing), then the step that
        installs it into the laid-out image."""
        tarball = debian.rootfs_tarball(suite, mirror, cache_dir)
        bootable["rootfs_cached"] = not tarball["built"]
        return lambda g, partition: debian.install_rootfs(g, partition, tarball["path"])

    return prepare, {"bootable": bootable}


def _run_locked(req: DiskRequest, check_mode: bool) -> dict[str, Any]:
    conn = open_connection(req.uri) if req.uri else None
    try:
        storage = LibvirtStorage(conn, req.pool) if conn is not None else LocalStorage()
        current = _read_existing(req)
        temp_exists = os.path.lexists(temp_path(req.path))
        users = domains_using(conn) if conn is not None else {}
        if req.state == "absent":
            plan, fields = _plan_absent(req, current, temp_exists, users), {}
        else:
            plan, fields = _plan_present(req, current, temp_exists, users, storage)
        run, image = apply_plan(plan, storage, check_mode)
        if plan.changed and not check_mode:
            image = _image_now(req, storage, plan)
        result = object_result(
            req.path,
            plan.actions,
            image=image,
            diff={"before": plan.before, "after": plan.after},
            warnings=run.warnings,
            **fields,
        )
        if run.injection is not None:
            result["injection"] = run.injection
        return result
    finally:
        if conn is not None:
            conn.close()


def _plan_absent(
    req: DiskRequest, current: dict[str, Any] | None, temp_exists: bool, users: dict[str, list[dict[str, Any]]]
) -> DiskPlan:
    """plan_absent, refused for an image a domain uses or an overlay reads through."""
    plan = plan_absent(req, current, temp_exists)
    in_use = users.get(req.path)
    if current is not None and in_use:
        names = ", ".join(u["name"] for u in in_use)
        raise Conflict(
            f"{req.path} is used by domain(s) {names}: undefine them (lcfg.xen.xen_domain "
            "state: absent) before deleting the image"
        )
    overlays = _overlays_of(req.path, req.storage_dirs) if current is not None else []
    if overlays:
        raise Conflict(
            f"{req.path} is the backing file of {', '.join(overlays)}: delete those "
            "overlays first (they would become unreadable)"
        )
    return plan


def _plan_present(
    req: DiskRequest,
    current: dict[str, Any] | None,
    temp_exists: bool,
    users: dict[str, list[dict[str, Any]]],
    storage: LocalStorage,
) -> tuple[DiskPlan, dict[str, Any]]:
    """plan_present with the template checked, the directories and pools it needs, and
    the result's origin fields (with a template)."""
    template = None
    template_users = (
        (users.get(req.template) or users.get(os.path.realpath(req.template)) or []) if req.template else []
    )
    if template_users:
        raise ValidationError(
            "template",
            f"{req.template} is a disk of domain(s) "
            f"{', '.join(u['name'] for u in template_users)}, not a template: a clone "
            "never copies another guest's data; name the template itself",
        )
    if req.template:
        template = qemu_img_info(
            os.path.realpath(req.template), req.template_format or recorded_format(os.path.realpath(req.template))
        )
    plan = plan_present(req, current, template, temp_exists)
    origin = _check_origin(req, current, template, plan)
    if plan.changes_image:
        plan.directories = storage.missing_directories(req)
        plan.pools = storage.missing_pools(req)
    running = [u["name"] for u in users.get(req.path, []) if u["active"]]
    if running and plan.resize is not None:
        raise Conflict(
            f"{req.path} is in use by running domain(s) {', '.join(running)}: shut them "
            "down before growing it (or grow it live with virsh blockresize)"
        )
    return plan, origin if req.template else {}


def _image_now(req: DiskRequest, storage: LocalStorage, plan: DiskPlan) -> dict[str, Any]:
    """The image as a real run left it (read again), with the bytes it takes on the host."""
    storage.refresh(os.path.dirname(req.path))
    final = qemu_img_info(req.path, image_format(req))
    image = image_state(req.path, final, plan.after.get("lcfg_files"))
    image["actual_size"] = final["actual_size"] if final else None
    return image


def image_format(req: DiskRequest) -> str | None:
    """The format an existing image is read as: declared (the request's format, or a copy's
    declared template format), else recorded by xen_disk, else raw -- never probed."""
    if req.format:
        return req.format
    if req.template and req.clone == "copy" and req.template_format:
        return req.template_format
    return None  # qemu_img_info: recorded, else raw


def _read_existing(req: DiskRequest) -> dict[str, Any] | None:
    """The existing image read as its recorded format (a declared one that differs is then a
    conflict the plan names), else as the declared one, else as raw."""
    fmt = recorded_format(req.path) or image_format(req) or "raw"
    try:
        return qemu_img_info(req.path, fmt)
    except Conflict:
        raise
    except XenError as exc:
        raise Conflict(
            f"{req.path} already exists and cannot be read as {fmt} ({exc.message}). It is never "
            "overwritten: declare its real format, or remove it first (state: absent) if its "
            "contents may be lost"
        ) from None


def _check_origin(
    req: DiskRequest, current: dict[str, Any] | None, template: dict[str, Any] | None, plan: DiskPlan
) -> dict[str, Any]:
    """Refuse a template unfit to clone (nothing is created) and an existing image that is
    damaged (never overwritten); report a clone whose template changed or broke since.

    Returns the result's ``origin``, ``template_state`` and ``template_changed``."""
    if current is not None:
        damaged = image_problems(req.path, current["format"], whole_sectors=False)  # other tools' sizes vary
        if damaged:
            raise Conflict(
                f"{req.path} exists but is damaged: {'; '.join(damaged)}. It is never overwritten or "
                "repaired: remove it (state: absent) and run again to clone it anew (its contents are "
                "lost), or repair it yourself",
                image=plan.before,
            )
    if not req.template or template is None:
        return {
            "origin": recorded_origin(req.path) if current is not None else None,
            "template_state": "missing" if current is not None else None,
            "template_changed": False,
        }
    real = os.path.realpath(req.template)
    problems = image_problems(real, template["format"], template["virtual_size"])
    if current is None:
        if not problems and req.lcfg_managed:
            problem = partition_problem(real, req.partition, template["format"], template["virtual_size"])
            if problem:
                problems.append(f"{problem}: set 'partition' to the partition holding the guest's root filesystem")
        if problems:
            raise Conflict(
                f"template {req.template} (read as {template['format']}) cannot be cloned: "
                f"{'; '.join(problems)}. Nothing was created: repair or replace the template (it is "
                "only ever read), or declare its real format (template_format)",
                image=plan.before,
            )
        origin = template_state(real, template["format"])
        plan.origin = origin  # recorded with the clone when it takes its name
        return {"origin": origin, "template_state": "unchanged", "template_changed": False}
    recorded = recorded_origin(req.path)
    state, differs = compare_origin(recorded, template_state(real, template["format"]))
    overlay = current["backing_file"] is not None
    if problems:
        if overlay:
            raise Conflict(
                f"{req.path} is an overlay of {req.template}, which is now damaged: "
                f"{'; '.join(problems)}. The guest reads its disk through the template: restore the "
                "template as it was, or remove the overlay (state: absent) and clone again",
                image=plan.before,
            )
        plan.warnings.append(
            f"the template {req.template} of {req.path} is now damaged ({'; '.join(problems)}); "
            "the copy is independent of it, but new clones will be refused until it is repaired"
        )
        state = "broken"
    elif state in ("changed", "other") and recorded is not None:
        why = "; ".join(differs)
        consequence = (
            "an overlay reads the unchanged blocks through its template, so the guest now sees a mix "
            "of old and new data: restore the template, or remove the overlay (state: absent) and "
            "clone again"
            if overlay
            else "the copy is independent and unaffected; remove it (state: absent) and run again for a "
            "clone of the template as it is now"
        )
        if state == "other":
            what = f"{req.path} was cloned from {recorded.get('template')}, not from {req.template}"
        else:
            what = f"{req.path} was cloned from {req.template} as it was before it changed ({why})"
        plan.warnings.append(f"{what}: {consequence}")
    return {"origin": recorded, "template_state": state, "template_changed": state in ("changed", "other", "broken")}


def _overlays_of(path: str, dirs: list[str]) -> list[str]:
    """Images in the storage directories whose backing file is ``path``."""
    found = []
    for image in list_images(dirs, [], None):
        if image.get("backing_file") == path:
            found.append(image["path"])
    return found


def _origin_now(path: str, templates_now: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
    """``origin`` (recorded when xen_disk cloned ``path``) and ``template_state`` against the
    template as it is now (None for an image that is not a recorded clone)."""
    origin = recorded_origin(path)
    if origin is None:
        return {"origin": None, "template_state": None}
    template = str(origin.get("template"))
    if template not in templates_now:
        try:
            templates_now[template] = template_state(template, str(origin.get("format")))
        except OSError:
            templates_now[template] = None
    return {"origin": origin, "template_state": compare_origin(origin, templates_now[template])[0]}


def list_images(dirs: list[str], paths: list[str], uri: str | None) -> list[dict[str, Any]]:
    """Images in ``dirs`` (regular, non-hidden files, not recursive) plus ``paths``."""
    candidates: list[str] = []
    for directory in dirs:
        if not os.path.isdir(directory):
            continue
        with os.scandir(directory) as entries:
            for entry in entries:
                if not entry.name.startswith(".") and entry.is_file(follow_symlinks=False):
                    candidates.append(os.path.normpath(entry.path))
    for path in paths:
        if not os.path.isabs(path):
            raise ValidationError("paths", f"{path!r} is not an absolute path")
        candidates.append(os.path.normpath(path))
    users: dict[str, list[dict[str, Any]]] = {}
    if uri:
        conn = open_connection(uri)
        try:
            users = domains_using(conn)
        finally:
            conn.close()
    images = []
    templates_now: dict[str, dict[str, Any] | None] = {}
    for path in sorted(set(candidates)):
        entry: dict[str, Any] = {"path": path, "exists": os.path.lexists(path)}
        if entry["exists"]:
            try:
                info = qemu_img_info(path)
            except XenError as exc:
                entry["error"] = exc.message
            else:
                if info is not None:
                    entry.update(info)
                    entry["size"] = format_size(info["virtual_size"])
            entry.update(_origin_now(path, templates_now))
        if uri:
            entry["used_by"] = [u["name"] for u in users.get(path, [])]
        images.append(entry)
    return images
