# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The plan of one xen_disk run (pure): a DiskPlan from the request and what is there now.

The plan style is common/plan.py's: ``plan_present``/``plan_absent`` build a DiskPlan whose
fields say what each ``ensure_*`` step of disk/apply.py has to do (nothing when empty), and
whose ``actions`` say it in words, in the order of those steps.

Safety rules the plan keeps: an existing image is never overwritten (a mismatch is a
Conflict naming the fix); a template is only ever read; a new image is made under a
temporary name in the same directory (``.<name>.lcfg-xen-partial``), given its LCFG
settings there, and only the finished image takes the final name; a leftover temporary
file of an interrupted run is removed first and the work redone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.lcfg.xen.plugins.module_utils.common.confinement import real_inside
from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import Conflict, NotFound, ValidationError
from ansible_collections.lcfg.xen.plugins.module_utils.disk.request import DiskRequest
from ansible_collections.lcfg.xen.plugins.module_utils.disk.sizes import GIB, format_size

__all__ = [
    "IMAGE_MODE",
    "TEMP_SUFFIX",
    "temp_path",
    "image_state",
    "Directory",
    "Pool",
    "NewImage",
    "BlankImage",
    "TemplateCopy",
    "TemplateOverlay",
    "Resize",
    "Injection",
    "DiskPlan",
    "plan_present",
    "plan_absent",
]

IMAGE_MODE = 0o600  # guest disks hold the guests' data
TEMP_SUFFIX = ".lcfg-xen-partial"


def temp_path(path: str) -> str:
    """The temporary name a new image is prepared under: ``<dir>/.<name>.lcfg-xen-partial``."""
    directory, base = os.path.split(path)
    return os.path.join(directory, f".{base}{TEMP_SUFFIX}")


def image_state(path: str, info: dict[str, Any] | None, lcfg: dict[str, str] | None = None) -> dict[str, Any]:
    """The module's vocabulary for one image (diff before/after and the ``image`` result)."""
    if info is None:
        return {
            "path": path,
            "exists": False,
            "format": None,
            "virtual_size": None,
            "size": None,
            "backing_file": None,
            "backing_format": None,
            "lcfg_files": None,
        }
    return {
        "path": path,
        "exists": True,
        "format": info["format"],
        "virtual_size": info["virtual_size"],
        "size": format_size(info["virtual_size"]),
        "backing_file": info["backing_file"],
        "backing_format": info["backing_format"],
        "lcfg_files": dict(lcfg) if lcfg else None,
    }


# ---------------------------------------------------------------- the parts of a plan


@dataclass
class Directory:
    """A missing directory on the way to the image, created root-owned."""

    path: str
    mode: int
    gid: int | None = None

    def describe(self) -> str:
        owner = f"root:{self.gid}" if self.gid is not None else "root:root"
        return f"create directory {self.path} (mode {self.mode:04o}, owner {owner})"


@dataclass
class Pool:
    """A libvirt dir storage pool to define (when missing) and start, for ``directory``."""

    name: str
    directory: str

    def describe(self) -> str:
        return f"define and start libvirt storage pool {self.name} for {self.directory}"


@dataclass
class NewImage:
    """How a missing image is made under its temporary name ``path``; ``size`` is the
    virtual size of the finished image."""

    path: str
    format: str
    size: int

    def describe(self) -> str:
        raise NotImplementedError

    def make(self, storage: Any) -> None:
        """Make it with ``storage`` (disk/storage.py)."""
        raise NotImplementedError


@dataclass
class BlankImage(NewImage):
    def describe(self) -> str:
        return f"create {self.format} image {self.path} of {format_size(self.size)}"

    def make(self, storage: Any) -> None:
        storage.create(self.path, self.format, self.size)


@dataclass
class TemplateCopy(NewImage):
    """A full copy of the template (made at the template's size, then grown to ``size``)."""

    template: str
    template_format: str

    def describe(self) -> str:
        return f"copy template {self.template} ({self.template_format}) to {self.format} image {self.path}"

    def make(self, storage: Any) -> None:
        storage.copy(self.template, self.template_format, self.path, self.format)


@dataclass
class TemplateOverlay(NewImage):
    """A qcow2 image backed by the template."""

    template: str
    template_format: str

    def describe(self) -> str:
        return (
            f"create qcow2 overlay {self.path} of {format_size(self.size)} backed by "
            f"{self.template} ({self.template_format})"
        )

    def make(self, storage: Any) -> None:
        storage.overlay(self.template, self.template_format, self.path, self.size)


@dataclass
class Resize:
    """Grow the image at ``path`` (the new image's temporary name, or an existing image)."""

    path: str
    format: str
    size: int

    def describe(self) -> str:
        return f"grow {self.path} to {format_size(self.size)}"


@dataclass
class Injection:
    """The LCFG settings written into ``partition`` of the new image, {guest path: content}."""

    path: str
    format: str
    partition: int
    files: dict[str, str]
    template: str

    def describe(self) -> str:
        return f"write LCFG settings ({', '.join(sorted(self.files))}) into partition {self.partition} of {self.path}"


@dataclass
class DiskPlan:
    """What a run does to one image. Every field left empty is a step with nothing to do."""

    path: str
    before: dict[str, Any]
    after: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    directories: list[Directory] = field(default_factory=list)
    pools: list[Pool] = field(default_factory=list)
    partial: str | None = None  # a leftover temporary image of an interrupted run
    new: NewImage | None = None  # made under its temporary name, then moved to ``path``
    resize: Resize | None = None
    injection: Injection | None = None
    origin: dict[str, Any] | None = None  # recorded with a new clone when it takes its name
    delete: bool = False

    @property
    def actions(self) -> list[str]:
        """What applying the plan does, in words, in the order of disk/apply.py's STEPS."""
        out = [part.describe() for part in (*self.directories, *self.pools)]
        if self.partial:
            out.append(f"remove the partial image {self.partial} left by an interrupted run")
        out.extend(part.describe() for part in (self.new, self.resize, self.injection) if part is not None)
        if self.new is not None:
            out.append(
                f"move the finished image {self.new.path} to {self.path} "
                f"(mode {IMAGE_MODE:04o}, format {self.new.format} recorded)"
            )
        if self.delete:
            out.append(f"delete image {self.path}")
        return out

    @property
    def changed(self) -> bool:
        return bool(self.actions)

    @property
    def changes_image(self) -> bool:
        """True when the image is made or grown (its directory and pool must then be there)."""
        return self.new is not None or self.resize is not None


# ---------------------------------------------------------------- planning


def plan_present(
    req: DiskRequest, current: dict[str, Any] | None, template: dict[str, Any] | None, temp_exists: bool
) -> DiskPlan:
    """The plan that makes ``req.path`` present, or Conflict/NotFound/ValidationError.

    ``current`` and ``template`` are ``normalise_info`` results or None when missing.
    """
    for what, info in (("image", current), ("template", template)):
        backing = info and info["backing_file"]
        if backing and real_inside(backing, req.storage_dirs) is None:
            raise Conflict(
                f"the {what} {req.template if what == 'template' else req.path} is a qcow2 image backed by "
                f"{backing}, outside the storage directories: refused (the guest would read that host "
                "file through it). Move the backing file into a storage directory"
            )
    before = image_state(req.path, current)
    plan = DiskPlan(
        path=req.path,
        before=before,
        after=before,
        warnings=list(req.warnings),
        partial=temp_path(req.path) if temp_exists else None,
    )
    if current is None:
        _plan_new(plan, req, template)
    else:
        _plan_existing(plan, req, current, template)
    return plan


def _plan_new(plan: DiskPlan, req: DiskRequest, template: dict[str, Any] | None) -> None:
    """A missing image: made blank, or cloned from the template (grown, LCFG settings injected)."""
    temp = temp_path(req.path)
    lcfg: dict[str, str] = {}
    backing = backing_format = None
    if not req.template:
        if req.size is None:
            raise ValidationError("size_gb", f"is required to create {req.path} (or set 'template' to clone one)")
        plan.new = BlankImage(temp, req.format or "raw", req.size)
    else:
        if template is None:
            raise NotFound(f"template image {req.template} does not exist: create it first or fix 'template'")
        tsize = template["virtual_size"]
        if req.size is not None and req.size < tsize:
            raise ValidationError(
                "size_gb" if req.size % GIB == 0 else "size",
                f"{format_size(req.size)} is smaller than the template {req.template} "
                f"({format_size(tsize)}): a clone can only be the same size or larger",
            )
        size = req.size if req.size is not None else tsize
        if req.clone == "overlay":
            plan.new = TemplateOverlay(temp, "qcow2", size, req.template, template["format"])
            backing, backing_format = req.template, template["format"]
        else:
            plan.new = TemplateCopy(temp, req.format or template["format"], size, req.template, template["format"])
            if size > tsize:
                plan.resize = Resize(temp, plan.new.format, size)
        lcfg = req.lcfg_contents()
        if lcfg:
            plan.injection = Injection(temp, plan.new.format, req.partition, lcfg, req.template)
    plan.after = image_state(
        req.path,
        {
            "format": plan.new.format,
            "virtual_size": plan.new.size,
            "backing_file": backing,
            "backing_format": backing_format,
        },
        lcfg or None,
    )


def _plan_existing(plan: DiskPlan, req: DiskRequest, current: dict[str, Any], template: dict[str, Any] | None) -> None:
    """An existing image: it must match the request (it is never overwritten); grown when asked."""
    problems: list[str] = []
    wanted_format = req.format or (template["format"] if req.template and template and req.clone == "copy" else None)
    if wanted_format and current["format"] != wanted_format:
        problems.append(f"its format is {current['format']}, not {wanted_format}")
    if req.template and req.clone == "overlay" and current["backing_file"] != req.template:
        problems.append(f"it is not an overlay of {req.template} (backing file: {current['backing_file'] or 'none'})")
    if req.template and req.clone == "copy" and current["backing_file"]:
        problems.append(f"it is an overlay of {current['backing_file']}, not a full copy")
    if problems:
        raise Conflict(
            f"{req.path} already exists and differs from the request: {'; '.join(problems)}. "
            "It is never overwritten: change the parameters to match it, or remove it first "
            "(state: absent) if its contents may be lost",
            image=plan.before,
        )
    size = current["virtual_size"]
    if req.size is not None and req.size > size:
        if not req.grow:
            raise Conflict(
                f"{req.path} is {format_size(size)}, smaller than the requested {format_size(req.size)}: "
                "set grow: true to enlarge it (the filesystems inside are not resized)",
                image=plan.before,
            )
        plan.resize = Resize(req.path, current["format"], req.size)
        size = req.size
    elif req.size is not None and req.size < size:
        plan.warnings.append(
            f"{req.path} is {format_size(size)}, larger than the requested "
            f"{format_size(req.size)}; images are never shrunk"
        )
    plan.after = dict(plan.before, virtual_size=size, size=format_size(size))


def plan_absent(req: DiskRequest, current: dict[str, Any] | None, temp_exists: bool) -> DiskPlan:
    """The plan that removes ``req.path`` (and a partial file left by an interrupted run)."""
    return DiskPlan(
        path=req.path,
        before=image_state(req.path, current),
        after=image_state(req.path, None),
        warnings=list(req.warnings),
        partial=temp_path(req.path) if temp_exists else None,
        delete=current is not None,
    )
