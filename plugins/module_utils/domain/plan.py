# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Plan one guest: compare the desired spec with what libvirt holds; change nothing.

``plan_domain(conn, spec, state, ...)`` reads the guest once (``current.read_current``) and
decides everything into a ``DomainPlan`` (the plan style of ``common.plan``): the new
definition (rendered for a new guest, modified in place for an existing one), the live
changes, autostart, the power step, the images to remove, and what waits for a restart.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.lcfg.xen.plugins.module_utils.common.confinement import DEFAULT_STORAGE_DIRS, real_inside
from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import Conflict, ValidationError, XenError
from ansible_collections.lcfg.xen.plugins.module_utils.disk.storage import qemu_img_info, recorded_format
from ansible_collections.lcfg.xen.plugins.module_utils.domain.access import SharedFiles, describe_users
from ansible_collections.lcfg.xen.plugins.module_utils.domain.current import Current, DriverCaps, read_current
from ansible_collections.lcfg.xen.plugins.module_utils.domain.desired import (
    METADATA_NS,
    check_driver,
    complete_spec,
    missing_network,
    validate_spec,
)
from ansible_collections.lcfg.xen.plugins.module_utils.domain.parse import carries_marker, diff_specs, reserved_targets
from ansible_collections.lcfg.xen.plugins.module_utils.domain.render import (
    console_log_missing,
    render_domain,
    update_domain_xml,
)

__all__ = ["STATES", "LIVE_FIELDS", "DomainPlan", "validate_guest", "plan_domain"]

STATES = ("present", "running", "stopped", "absent")
LIVE_FIELDS = ("memory", "vcpus", "cpus")


@dataclass
class DomainPlan:
    name: str
    state: str
    current: Current
    before: dict
    after: dict
    actions: list[str] = field(default_factory=list)
    changed_fields: list[str] = field(default_factory=list)
    new_xml: str | None = None
    live: dict = field(default_factory=dict)
    pending_restart_fields: list[str] = field(default_factory=list)
    remove_paths: list[str] = field(default_factory=list)
    fragments: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    shutdown_timeout: float = 120
    force_stop: bool = False
    #: the hypervisor is this host (image paths are resolved and removed here)
    local: bool = False
    #: the autostart flag to set (``None``: it is right already); action ``set_autostart``
    autostart: bool | None = None
    #: the power step: ``"start"``, ``"resume"``, ``"stop"`` or ``None``; action of that name
    power: str | None = None
    #: state absent: stop the running guest before it is undefined (action ``stop``)
    stop_first: bool = False
    #: a container's NAT or routed network that does not exist (yet): the real run fails on it
    #: before defining anything; a check run only warns (the play may create it first)
    missing_network: ValidationError | None = None

    @property
    def changed(self) -> bool:
        return bool(self.actions)


def validate_guest(params: dict, prefix: str = "") -> dict:
    """Validated spec from module parameters (``None`` = leave alone)."""
    return validate_spec(params, prefix=prefix)


def _disk_formats(spec: dict, local: bool, storage_dirs: list | tuple, prefix: str = "") -> None:
    """Fill undeclared image formats from xen_disk's record; never probe the contents (a guest
    controls them: a qcow2 header in a raw disk would name a backing file of its choosing).

    A declared format that contradicts the record is refused (a profile declaring qcow2 on a
    raw disk would have the guest's data read as image metadata), and so is a qcow2 image
    whose backing file lies outside the storage directories (the host would open it).
    """
    if not local:
        return
    for index, disk in enumerate(spec.get("disks") or []):
        if disk["type"] != "image":
            continue
        where = f"{prefix}disks[{index}].format"
        recorded = recorded_format(disk["path"])
        if disk["format"] is None:
            disk["format"] = recorded
        elif recorded and disk["format"] != recorded:
            raise ValidationError(
                where,
                f"{disk['path']} was created as {recorded} by xen_disk; declaring it "
                f"{disk['format']} would read the guest's data as image metadata: "
                f"declare {recorded} or leave the format out",
            )
        if disk["format"] == "qcow2" and os.path.isfile(disk["path"]):
            try:
                info = qemu_img_info(disk["path"], "qcow2")
            except XenError as exc:
                raise ValidationError(where, exc.message) from None
            backing = info["backing_file"] if info else None
            if backing and real_inside(backing, list(storage_dirs)) is None:
                raise ValidationError(
                    where,
                    f"{disk['path']} is a qcow2 image backed by {backing}, outside the "
                    f"storage directories ({', '.join(storage_dirs)}): refused (the guest "
                    "would read that host file)",
                )


def _removable_disks(
    plan: DomainPlan, disks: list[dict], storage_dirs: list | tuple, local: bool, shared: SharedFiles | None = None
) -> None:
    """Queue the image files of ``disks`` for removal, only inside ``storage_dirs`` (resolved
    paths on a local host); an image elsewhere, or a symbolic link, is kept and reported, and
    so is one that another guest uses or that is a clone's template (``shared``)."""
    for disk in disks:
        if disk["type"] != "image":
            continue
        path = disk["path"]
        if local:
            if not os.path.lexists(path):
                continue
            if not os.path.islink(path) and not os.path.isfile(path):
                kind = "a directory" if os.path.isdir(path) else "a device, socket or pipe"
                plan.notes.append(
                    f"guest {plan.name}: disk image {path} kept: it is {kind}, not an image file; "
                    "remove_disks deletes only image files"
                )
                continue
            real = None if os.path.islink(path) else real_inside(path, list(storage_dirs))
        else:
            real = path if any(path.startswith(d.rstrip("/") + "/") for d in storage_dirs) else None
        if real is None:
            plan.notes.append(
                f"guest {plan.name}: disk image {path} kept: it is outside the storage directories "
                f"({', '.join(storage_dirs)}) or a symbolic link; remove_disks deletes only there"
            )
            continue
        if shared is not None:
            users = shared.others(plan.name).get(shared.key(real))
            clones = shared.templates().get(shared.key(real))
            if users or clones:
                why = (
                    f"guest(s) {describe_users(users)} use it"
                    if users
                    else f"it is the template of {', '.join(sorted(clones))}"
                )
                plan.notes.append(
                    f"guest {plan.name}: disk image {path} kept: {why}; remove_disks never deletes "
                    "an image another guest or clone still needs"
                )
                continue
        plan.remove_paths.append(real)
        plan.actions.append(f"remove_disk {real}")


def _cosmetic_only(field_name: str, target: dict, current: dict, driver: str) -> bool:
    """True when a disks/vifs difference is in labels kept in metadata only (no restart)."""
    if field_name == "disks":
        strip = ("tag", "name")
    elif field_name == "vifs":
        strip = ("tag",) if driver == "xen" else ("tag", "ip", "script")
    else:
        return False

    def clean(items: list[dict]) -> list[dict]:
        return [{k: v for k, v in item.items() if k not in strip} for item in items or []]

    return clean(target.get(field_name)) == clean(current.get(field_name))


def _check_owned(current: Current, state: str, adopt: bool, prefix: str) -> None:
    """Refuse any plan for an existing domain lcfg.xen did not define (an admin's VM, another
    tool's), unless the play adopts it: a profile naming its guest after such a domain would
    otherwise redefine it (dropping its disks and vifs) or undefine it and delete its images.
    A foreign domain that already matches is refused too: the answer does not depend on it."""
    if not current.exists or adopt or carries_marker(current.xml):
        return
    would = (
        "be stopped, undefined (and its disks removed with remove_disks)"
        if state == "absent"
        else "be redefined from the spec"
    )
    raise Conflict(
        f"{prefix}name: guest {current.name} exists on the hypervisor but was not defined by lcfg.xen "
        f"(its definition has no <metadata> element of namespace {METADATA_NS}); it would {would}. "
        "It is left alone: give the guest a name of its own (the profile's xen.name_<vm>), or, if "
        "lcfg.xen should manage this domain from now on, adopt it once (xen_domain adopt: true; "
        f"xen_guests adopt: [{current.name}]; role lcfg.xen.guest guest_adopt: [{current.name}]; "
        f"playbooks/teardown.yml teardown_adopt: [{current.name}])"
    )


def plan_domain(
    conn,
    desired: dict,
    state: str = "present",
    *,
    shutdown_timeout: float = 120,
    force_stop: bool = False,
    remove_disks: bool = False,
    dom: Any = None,
    known_missing: bool = False,
    prefix: str = "",
    storage_dirs: list | tuple | None = None,
    adopt: bool = False,
    caps: DriverCaps | None = None,
) -> DomainPlan:
    """Compare the validated ``desired`` spec with libvirt; return what ``apply_plan`` will do.

    ``dom`` (a virDomain) or ``known_missing`` skip the lookup when the caller listed the
    domains already (xen_guests). ``adopt``: the play lets lcfg.xen take over an existing
    domain it did not define (else refused, see ``_check_owned``); the adopted definition
    gets the marker, so later runs need no adopt. ``caps``: the run's ``DriverCaps`` (made
    here when not given). Raises XenError for requests that cannot be met.
    """
    if state not in STATES:
        raise ValidationError(f"{prefix}state", f"unknown state {state!r}: use one of {', '.join(STATES)}")
    caps = caps or DriverCaps(conn)
    name = desired["name"]
    current = read_current(conn, name, dom=dom, known_missing=known_missing)
    _check_owned(current, state, adopt, prefix)
    before = current.view()
    plan = DomainPlan(
        name=name,
        state=state,
        current=current,
        before=before,
        after=before,
        shutdown_timeout=shutdown_timeout,
        force_stop=force_stop,
        local=caps.local,
    )
    dirs = storage_dirs or DEFAULT_STORAGE_DIRS
    if state == "absent":
        _plan_absent(plan, conn, dirs if remove_disks else None)
        return plan
    if remove_disks:
        raise ValidationError(f"{prefix}remove_disks", "only valid with state: absent")
    driver = caps.basic()["driver"]
    check_driver(desired, driver, prefix=prefix)
    if driver == "lxc":  # the networks were read for the containers' addresses
        plan.missing_network = missing_network(desired, caps.basic()["networks"], prefix)
        if plan.missing_network:
            plan.notes.append(
                f"guest {name}: {plan.missing_network.message} (the real run stops there, "
                "unless the play creates it first)"
            )
    desired = copy.deepcopy(desired)
    _disk_formats(desired, plan.local, dirs, prefix)
    if current.exists:
        target = _plan_existing(plan, desired, caps.basic(), prefix)
    else:
        target = _plan_new(plan, desired, caps.full(), prefix)
    if target["autostart"] != (current.spec["autostart"] if current.exists else False):
        plan.autostart = target["autostart"]
        plan.actions.append("set_autostart")
    plan.after = dict(copy.deepcopy(target), state=_plan_power(plan))
    if driver != "xen" and ("define" in plan.actions or "vifs" in plan.changed_fields):
        scripts = sorted({v["script"] for v in target["vifs"] if v.get("script")})
        if scripts:
            plan.notes.append(
                f"guest {name}: vif scripts ({', '.join(scripts)}) are a Xen feature; "
                f"on {driver} they are only recorded in the guest's metadata"
            )
    return plan


def _plan_absent(plan: DomainPlan, conn, remove_from: list | tuple | None) -> None:
    """Stop and undefine an existing guest; queue its images when ``remove_from`` (the
    storage directories) is given."""
    current = plan.current
    if not current.exists:
        return
    if current.active:
        plan.stop_first = True
        plan.actions.append("stop")
    plan.actions.append("undefine")
    if remove_from is not None:
        _removable_disks(
            plan, current.spec["disks"], remove_from, plan.local, SharedFiles(conn, remove_from, plan.local)
        )
    plan.after = {"name": plan.name, "state": "absent"}


def _plan_existing(plan: DomainPlan, desired: dict, caps: dict, prefix: str) -> dict:
    """An existing guest: the fields that differ, which of them change live, which wait for a
    restart, and the modified definition. Returns the complete target spec."""
    current = plan.current
    if desired.get("uuid") and desired["uuid"] != current.spec["uuid"]:
        raise Conflict(
            f"guest {plan.name} exists with UUID {current.spec['uuid']}, not {desired['uuid']}; "
            "a UUID cannot be changed in place: remove the guest first (state: absent) "
            "or drop the uuid option"
        )
    render_caps = dict(caps, domain_type=current.domain_type)
    target = complete_spec(desired, current.spec, caps["driver"], prefix=prefix, reserved=reserved_targets(current.xml))
    plan.fragments = target["extra"]["xml"]
    compare = current.view(plan.fragments)
    plan.before = compare
    changed = diff_specs(target, compare)
    config = [f for f in changed if f != "autostart"]
    if console_log_missing(current.xml, plan.name, caps["driver"]):
        # A guest defined before the console was logged (or adopted) gets the log once; a running
        # guest writes it after its next restart (pending_restart_fields: console_log).
        config.append("console_log")
        plan.notes.append(f"guest {plan.name}: its serial console is logged from now on (redefined once)")
    plan.changed_fields = changed
    live_ok: list[str] = []
    if current.active and plan.state != "stopped":
        if "memory" in config and "maxmem" not in config:
            live_ok.append("memory")
        if "vcpus" in config and "maxvcpus" not in config:
            live_ok.append("vcpus")
        if "cpus" in config and caps["driver"] != "lxc":  # libvirt's LXC driver pins nothing live
            live_ok.append("cpus")
        plan.pending_restart_fields = [
            f for f in config if f not in live_ok and not _cosmetic_only(f, target, compare, caps["driver"])
        ]
        for f in live_ok:
            plan.live[f] = target[f]
    redefine = [f for f in config if f not in ("memory", "vcpus") or f not in live_ok]
    if caps["driver"] == "lxc":
        redefine = config  # a container's saved limits are in its definition (memtune, cputune)
    # An adopted domain is redefined once even when it matches, to carry the marker.
    if redefine or "cpus" in live_ok or not carries_marker(current.xml):
        plan.new_xml = update_domain_xml(current.xml, target, config, render_caps)
        plan.actions.append("redefine")
    for f in LIVE_FIELDS:
        if f in plan.live:
            plan.actions.append(f"set_{f}_live")
    return target


def _plan_new(plan: DomainPlan, desired: dict, caps: dict, prefix: str) -> dict:
    """A new guest: its complete spec and rendered definition. Returns the target spec."""
    target = complete_spec(desired, None, caps["driver"], prefix=prefix, domain_type=caps["domain_type"])
    plan.fragments = target["extra"]["xml"]
    plan.new_xml = render_domain(target, caps)
    plan.actions.append("define")
    return target


def _plan_power(plan: DomainPlan) -> str:
    """Queue the power step the state asks for; the power state after it."""
    power = plan.current.power if plan.current.exists else "stopped"
    if plan.state == "running" and power == "stopped":
        plan.power = "start"
    elif plan.state == "running" and power == "paused":
        plan.power = "resume"
    elif plan.state == "stopped" and power in ("running", "paused"):
        plan.power = "stop"
    else:
        return power
    plan.actions.append(plan.power)
    return "stopped" if plan.power == "stop" else "running"
