# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The pure half of the snapshot engine: names, what libvirt's XML says, refusals and the plan.

Nothing here talks to libvirt. ``calls`` reads a guest into ``GuestFacts`` and its snapshots
into entries (``parse_snapshot``); ``plan_snapshot`` compares the request with them and
returns a ``SnapshotPlan`` whose ``actions`` say what ``apply`` will do.

Snapshots are libvirt's internal ones (QEMU ``savevm``/``qemu-img snapshot``): they live
inside the guest's qcow2 images, so every writable disk must be qcow2, and a running guest's
snapshot holds its memory too (QEMU cannot take an internal disk-only snapshot of a running
guest). libvirt's Xen (libxl) and LXC drivers have no snapshots at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import Conflict, NotFound, ValidationError
from ansible_collections.lcfg.xen.plugins.module_utils.common.imports import optional_import
from ansible_collections.lcfg.xen.plugins.module_utils.common.validate import safe_name

etree = optional_import("lxml.etree")[0]

__all__ = [
    "STATES",
    "SNAPSHOT_DRIVERS",
    "GuestFacts",
    "SnapshotPlan",
    "valid_snapshot_name",
    "parse_guest_disks",
    "parse_snapshot",
    "snapshot_refusal",
    "render_snapshot",
    "plan_snapshot",
    "listing",
]

STATES = ("present", "absent", "reverted")
#: libvirt drivers with internal snapshots (test: libvirt's test driver keeps them in memory)
SNAPSHOT_DRIVERS = ("qemu", "test")
_NAME_MAX = 64
_FIRST = re.compile(r"^[A-Za-z0-9]")


def valid_snapshot_name(value: object) -> str:
    """A snapshot name: 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit
    (``common.validate.safe_name`` leaves it as it is)."""
    text = value if isinstance(value, str) else ""
    if not text or len(text) > _NAME_MAX or safe_name(text, "_") != text or not _FIRST.match(text):
        raise ValidationError(
            "snapshot",
            f"invalid snapshot name {str(value)[:80]!r}: use 1 to {_NAME_MAX} letters, digits, '_', '.' "
            "or '-', starting with a letter or digit",
        )
    return text


@dataclass
class GuestFacts:
    """What the plan needs to know of the guest (read by ``calls.read_facts``)."""

    name: str
    driver: str  # common.libvirt.driver_name: qemu, xen, lxc, test, ...
    power: str  # running, paused or stopped
    disks: list[dict] = field(default_factory=list)  # parse_guest_disks


@dataclass
class SnapshotPlan:
    """What ``apply.apply_plan`` does (at most one of create / revert / delete)."""

    domain: str
    snapshot: str
    state: str
    actions: list[str] = field(default_factory=list)
    create: bool = False
    memory: bool = False  # create: with the guest's memory (a running guest)
    description: str = ""
    revert: bool = False
    force: bool = False  # revert: VIR_DOMAIN_SNAPSHOT_REVERT_FORCE
    delete: bool = False
    before: list[dict] = field(default_factory=list)  # listing(), before
    after: list[dict] = field(default_factory=list)  # the prediction
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.actions)


def parse_guest_disks(xml: str) -> list[dict]:
    """The disks of a domain definition: ``{target, path, format, device, readonly}``;
    ``path`` is None for an empty CD-ROM, ``format`` None when the XML names none (raw)."""
    root = etree.fromstring(xml.encode())
    disks = []
    for element in root.findall("devices/disk"):
        source = element.find("source")
        path = None
        if source is not None:
            path = source.get("file") or source.get("dev") or source.get("name") or source.get("volume")
        driver = element.find("driver")
        target = element.find("target")
        disks.append(
            {
                "target": target.get("dev") if target is not None else None,
                "path": path,
                "format": driver.get("type") if driver is not None else None,
                "device": element.get("device", "disk"),
                "readonly": element.find("readonly") is not None,
            }
        )
    return disks


def parse_snapshot(xml: str, current: bool) -> dict:
    """One snapshot entry from ``virDomainSnapshotGetXMLDesc``."""
    root = etree.fromstring(xml.encode())
    memory = root.find("memory")
    created = root.findtext("creationTime")
    return {
        "name": root.findtext("name"),
        "description": root.findtext("description") or "",
        "state": root.findtext("state"),
        "memory": memory is not None and memory.get("snapshot") not in (None, "no"),
        "parent": root.findtext("parent/name"),
        "creation_time": int(created) if created and created.isdigit() else None,
        "current": current,
        "disks": [
            {"target": disk.get("name"), "snapshot": disk.get("snapshot")} for disk in root.findall("disks/disk")
        ],
    }


def _writable(disk: dict) -> bool:
    return disk["device"] in ("disk", "lun") and not disk["readonly"] and disk["path"] is not None


def snapshot_refusal(facts: GuestFacts, memory: bool | None) -> str | None:
    """Why a snapshot of this guest cannot be taken (names the disk, format or driver and the
    fix), or None. ``memory``: the request's option (None: the guest's power decides)."""
    guest = facts.name
    if facts.driver not in SNAPSHOT_DRIVERS:
        kind = {"xen": "Xen (libxl)", "lxc": "LXC"}.get(facts.driver, facts.driver)
        return (
            f"guest {guest}: libvirt's {kind} driver has no snapshots. Take the guest's disks' snapshots "
            "on the host instead (shut it down and copy its images, or use LVM/ZFS snapshots)"
        )
    for disk in facts.disks:
        if _writable(disk) and (disk["format"] or "raw") != "qcow2":
            return (
                f"guest {guest}: disk {disk['target']} ({disk['path']}) is {disk['format'] or 'raw'}; "
                "internal snapshots need every writable disk in qcow2. Convert it (qemu-img convert -O qcow2, "
                "then point the guest at the new image) or make the guest's disks with lcfg.xen.xen_disk "
                "format: qcow2"
            )
    if not any(_writable(disk) for disk in facts.disks):
        return (
            f"guest {guest}: it has no writable qcow2 disk to hold a snapshot. Give it one "
            "(lcfg.xen.xen_disk format: qcow2) first"
        )
    running = facts.power != "stopped"
    if memory is False and running:
        return (
            f"guest {guest}: an internal snapshot of a {facts.power} guest must include its memory. "
            "Leave memory unset (or true), or shut the guest down for a disk-only snapshot"
        )
    if memory is True and not running:
        return f"guest {guest}: it is shut off, so there is no memory to save. Leave memory unset (or false)"
    return None


def render_snapshot(name: str, description: str) -> str:
    """The ``<domainsnapshot>`` XML of a new snapshot (libvirt picks internal snapshots of
    the qcow2 disks and, for a running guest, its memory)."""
    root = etree.Element("domainsnapshot")
    etree.SubElement(root, "name").text = name
    if description:
        etree.SubElement(root, "description").text = description
    return etree.tostring(root, encoding="unicode")


def listing(snapshots: list[dict]) -> dict:
    """The diff / before / after form: the names (oldest first) and the current one."""
    ordered = sorted(snapshots, key=lambda item: (item.get("creation_time") or 0, item["name"]))
    current = next((item["name"] for item in ordered if item["current"]), None)
    return {"snapshots": [item["name"] for item in ordered], "current": current}


def _without(snapshots: list[dict], name: str) -> list[dict]:
    """The list after libvirt deletes ``name``: its children move to its parent, and when it
    was the current one its parent becomes current."""
    gone = next(item for item in snapshots if item["name"] == name)
    out = []
    for item in snapshots:
        if item["name"] == name:
            continue
        item = dict(item)
        if item["parent"] == name:
            item["parent"] = gone["parent"]
        if gone["current"] and item["name"] == gone["parent"]:
            item["current"] = True
        out.append(item)
    return out


def plan_snapshot(
    facts: GuestFacts | None,
    snapshots: list[dict],
    snapshot: str,
    state: str = "present",
    description: str = "",
    memory: bool | None = None,
    force: bool = False,
    now: int = 0,
) -> SnapshotPlan:
    """The plan for ``snapshot`` of the guest ``facts`` (None: the guest does not exist),
    whose snapshots are ``snapshots`` (``parse_snapshot`` entries). ``now``: the creation time
    the prediction gives a new snapshot.

    Idempotence: ``present`` creates only a missing snapshot (an existing one is kept as it
    is, with a warning when its description differs); ``absent`` deletes only an existing
    one; ``reverted`` always reverts (libvirt cannot tell whether the guest changed since
    the snapshot, so reverting is the only way to be sure the guest is back to it).
    """
    if state not in STATES:
        raise ValidationError("state", f"must be one of {', '.join(STATES)}, got {state!r}")
    snapshot = valid_snapshot_name(snapshot)
    domain = facts.name if facts is not None else "?"
    plan = SnapshotPlan(domain=domain, snapshot=snapshot, state=state, before=snapshots, after=snapshots)
    existing = next((item for item in snapshots if item["name"] == snapshot), None)
    if facts is None:
        if state == "absent":
            return plan  # no guest, no snapshot
        raise NotFound(
            f"the guest does not exist, so it has no snapshot {snapshot}. Define it first "
            "(lcfg.xen.xen_domain) or check the name"
        )
    plan.domain = facts.name
    if state == "absent":
        if existing is not None:
            plan.delete = True
            plan.actions.append(f"delete snapshot {snapshot}")
            plan.after = _without(snapshots, snapshot)
        return plan
    if facts.driver not in SNAPSHOT_DRIVERS:  # the driver first: no snapshot can be there
        raise Conflict(snapshot_refusal(facts, None) or "")
    if state == "reverted":
        if existing is None:
            names = ", ".join(listing(snapshots)["snapshots"]) or "none"
            raise NotFound(
                f"guest {facts.name} has no snapshot {snapshot} to revert to (it has: {names}). "
                "Create it first with state: present"
            )
        plan.revert = True
        plan.force = force
        plan.actions.append(f"revert to snapshot {snapshot}")
        plan.after = [dict(item, current=item["name"] == snapshot) for item in snapshots]
        return plan
    # present
    if existing is not None:
        if description and existing["description"] != description:
            plan.warnings.append(
                f"snapshot {snapshot} of guest {facts.name} exists with another description "
                f"({existing['description']!r}); it was kept as it is. Delete it first to take a new one"
            )
        return plan
    refusal = snapshot_refusal(facts, memory)
    if refusal is not None:
        raise Conflict(refusal)
    plan.create = True
    plan.memory = facts.power != "stopped"
    plan.description = description
    plan.actions.append(f"create snapshot {snapshot} ({'with memory' if plan.memory else 'disk only'})")
    parent = listing(snapshots)["current"]
    plan.after = [dict(item, current=False) for item in snapshots] + [
        {
            "name": snapshot,
            "description": description,
            "state": {"running": "running", "paused": "paused"}.get(facts.power, "shutoff"),
            "memory": plan.memory,
            "parent": parent,
            "creation_time": now,
            "current": True,
            "disks": [{"target": disk["target"], "snapshot": "internal"} for disk in facts.disks if _writable(disk)],
        }
    ]
    return plan
