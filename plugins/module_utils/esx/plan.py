# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""A guest spec on a VMware ESX host: the rules, and what has to change. Pure: no pyvmomi.

- ``esx_desired(params, port_groups)``: the module's (or a profile's) guest options, checked by
  the collection's guest schema (``validate_spec``) and the ESX rules, as the ESX view
  ``{name, memory, vcpus, disks: [{size_gb}], vifs: [{mac, port_group}], autostart}`` (an ESX
  VM keeps no tags: the profile's disk and vif tags are not part of it).
- ``plan_vm(desired, current, host, state, ...)``: ``current`` is the VM as ``esx.client``
  reads it (None: absent), ``host`` the host's facts (memory, port groups). Returns an
  ``EsxPlan``: the steps, the before/after views (the diff) and what cannot change now.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import Conflict, ValidationError
from ansible_collections.lcfg.xen.plugins.module_utils.domain.desired import validate_spec

__all__ = ["EsxPlan", "esx_desired", "plan_vm", "DEFAULT_DISK_GB", "OWNER_KEY"]

#: a disk the profile gives no size gets this many GiB (an ESX disk must have one)
DEFAULT_DISK_GB = 8
#: a new VM's memory when the spec gives none (xen_domain's default too)
DEFAULT_MEMORY_MB = 512
_KIB_PER_GIB = 1024 * 1024


def disk_kib(size_gb: float) -> int:
    """A disk size in whole KiB, as ESX keeps it (sizes are compared in KiB)."""
    return int(round(size_gb * _KIB_PER_GIB))


#: the extraConfig key lcfg.xen writes on every VM it creates (its ownership marker)
OWNER_KEY = "lcfg.xen.managed"
#: guest options that have no meaning on ESX: refused rather than silently dropped
_NOT_ON_ESX = {
    "kernel": "ESX boots its VMs from their disks or the network (PXE)",
    "ramdisk": "ESX boots its VMs from their disks or the network (PXE)",
    "bootloader": "ESX boots its VMs from their disks or the network (PXE)",
    "cmdline": "ESX boots its VMs from their disks or the network (PXE)",
    "cdrom": "an ISO image lives on a datastore, not a path of this host",
    "cpus": "pinning host CPUs is not offered for ESX VMs",
}


@dataclass
class EsxPlan:
    """What ``esx.client`` will do for one VM (see ``plan_vm``)."""

    name: str
    state: str
    before: dict
    after: dict
    create: bool = False
    reconfigure: dict = field(default_factory=dict)  # memory, vcpus, add_disks, grow_disks, nics
    power: str | None = None  # on | off
    autostart: bool | None = None
    remove: bool = False
    not_applied: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    @property
    def actions(self) -> list[str]:
        """The steps in the order ``esx.client.apply_plan`` takes them."""
        out = ["create"] if self.create else []
        if self.power == "off":
            out.append("power_off")
        out += [f"set_{key}" for key in sorted(self.reconfigure)]
        if self.remove:
            out.append("remove")
        if self.power == "on":
            out.append("power_on")
        if self.autostart is not None:
            out.append("set_autostart")
        return out

    @property
    def changed(self) -> bool:
        return bool(self.actions)


def _fail(parameter: str, message: str) -> None:
    raise ValidationError(parameter, message)


def esx_desired(params: dict, port_groups: dict | None = None, prefix: str = "") -> dict:
    """The ESX view of a guest's options (see the module docstring); ValidationError names
    the option that ESX cannot take. ``port_groups`` maps a profile's bridge name to the ESX
    port group its NICs join (a bridge not listed is a port group of the same name). ``prefix``
    goes before the option names in errors (``guest.``)."""
    spec = validate_spec(params, prefix)
    if spec["type"] in ("pvh", "container"):
        _fail(
            f"{prefix}type",
            f"an ESX VM is a full virtual machine; type {spec['type']} is for Xen or LXC (use hvm or pv)",
        )
    for option, why in _NOT_ON_ESX.items():
        if spec.get(option):
            _fail(f"{prefix}{option}", f"{why}: remove {option}")
    if spec.get("firmware") == "uefi":
        _fail(f"{prefix}firmware", "set the VM's firmware on the ESX side (a guest ID with EFI); remove firmware")
    raw_disks = params.get("disks") or []
    disks = None if spec.get("disks") is None else []  # None: the VM's disks are left as they are
    for index, disk in enumerate(spec.get("disks") or []):
        if disk["type"] != "image":
            _fail(f"{prefix}disks[{index}].type", "an ESX VM's disks are virtual disks on a datastore: use type image")
        size = (raw_disks[index] or {}).get("size_gb") if index < len(raw_disks) else None
        disks.append({"size_gb": float(size) if size else float(DEFAULT_DISK_GB)})
    vifs = None if spec.get("vifs") is None else []  # None: the VM's NICs are left as they are
    for index, vif in enumerate(spec.get("vifs") or []):
        if vif["nettype"] != "bridge":
            _fail(
                f"{prefix}vifs[{index}].nettype",
                f"ESX has no libvirt {vif['nettype']} network: give the vif a bridge, the port group it joins",
            )
        if not vif.get("bridge"):
            _fail(f"{prefix}vifs[{index}].bridge", "an ESX NIC needs 'bridge': the port group it joins")
        group = (port_groups or {}).get(vif["bridge"], vif["bridge"])
        vifs.append({"mac": vif.get("mac"), "port_group": group})
    return {
        "name": spec["name"],
        "memory": spec["memory"] or spec["maxmem"],
        "vcpus": spec["vcpus"] or spec["maxvcpus"],
        "disks": disks,
        "vifs": vifs,
        "autostart": spec["autostart"],
    }


def _check_host(desired: dict, host: dict, prefix: str, datastore: str | None) -> None:
    """What the host cannot give: more memory than it has, a port group or datastore it lacks."""
    if datastore and datastore not in (host.get("datastores") or []):
        _fail(
            "datastore",
            f"datastore {datastore!r} is not on the ESX host "
            f"(it has {', '.join(host.get('datastores') or []) or 'none'})",
        )
    if desired["memory"] and host.get("memory_mb") and desired["memory"] > host["memory_mb"]:
        _fail(f"{prefix}memory", f"{desired['memory']} MiB is more than the ESX host has ({host['memory_mb']} MiB)")
    known = host.get("port_groups") or []
    for index, vif in enumerate(desired["vifs"] or []):
        if vif["port_group"] not in known:
            _fail(
                f"{prefix}vifs[{index}].bridge",
                f"port group {vif['port_group']!r} does not exist on the ESX host "
                f"(it has {', '.join(known) or 'none'}); create it there, or map the bridge to an "
                "existing one with port_groups",
            )


def _view(vm: dict | None, state: str | None = None) -> dict:
    if vm is None:
        return {"state": "absent"}
    view = copy.deepcopy(vm)
    view.pop("owned", None)
    if state is not None:
        view["state"] = state
    return view


def plan_vm(
    desired: dict,
    current: dict | None,
    host: dict,
    state: str = "present",
    adopt: bool = False,
    remove_disks: bool = False,
    prefix: str = "",
    datastore: str | None = None,
) -> EsxPlan:
    """Compare ``desired`` (``esx_desired``) with the VM ``current`` (None: absent) on ``host``.
    Raises ValidationError or Conflict for what cannot be done; changes nothing."""
    name = desired["name"]
    plan = EsxPlan(name=name, state=state, before=_view(current), after=_view(current))
    if current is not None and not current.get("owned") and not adopt:
        raise Conflict(
            f"VM {name} exists on the ESX host but lcfg.xen did not create it; set adopt: true to let "
            "this play manage it (or rename the guest)"
        )
    if state == "absent":
        if current is not None:
            plan.remove = True
            plan.power = "off" if current["state"] == "running" else None
            plan.after = {"state": "absent"}
            if not remove_disks:
                plan.warnings.append(
                    f"VM {name}: unregistered; its disks stay on the datastore (remove_disks deletes them)"
                )
        return plan
    _check_host(desired, host, prefix, datastore)
    running = current is not None and current["state"] == "running"
    if current is None:
        plan.create = True
        target = copy.deepcopy(desired)
        # what a new VM gets for what the spec leaves out (the diff shows the real values)
        target.update(
            memory=desired["memory"] or DEFAULT_MEMORY_MB,
            vcpus=desired["vcpus"] or 1,
            disks=desired["disks"] or [],
            vifs=desired["vifs"] or [],
            autostart=bool(desired["autostart"]),
        )
    else:
        target = _plan_existing(plan, desired, current, running and state != "stopped")
    want_on = state == "running" or (state == "present" and running)
    if want_on and not running:
        plan.power = "on"
    elif state == "stopped" and running:
        plan.power = "off"
    if target["autostart"] != (current["autostart"] if current is not None else False):
        plan.autostart = target["autostart"]
    plan.after = _view(target, "running" if want_on else "stopped")
    return plan


def _plan_existing(plan: EsxPlan, desired: dict, current: dict, live: bool) -> dict:
    """The changes to an existing VM; returns its target view. A running VM takes more memory
    and VCPUs live (lcfg.xen enables hot-add on the VMs it creates); a decrease, or an increase
    without hot-add, is not applied and is reported (ESX keeps no pending configuration)."""
    target = copy.deepcopy(current)
    target.pop("owned", None)
    for key in ("memory", "vcpus"):
        want = desired[key]
        if want is None or want == current[key]:
            continue
        hot = current.get(f"{key}_hot_add") and want > current[key]
        if live and not hot:
            plan.not_applied.append(key)
            plan.warnings.append(
                f"VM {plan.name}: {key} {current[key]} -> {want} needs the VM stopped "
                f"({'a decrease' if want < current[key] else 'hot-add is off'}); not changed"
            )
            continue
        plan.reconfigure[key] = want
        target[key] = want
    _plan_disks(plan, desired, current, target)
    _plan_nics(plan, desired, current, target)
    if desired["autostart"] is not None:
        target["autostart"] = bool(desired["autostart"])
    return target


def _plan_disks(plan: EsxPlan, desired: dict, current: dict, target: dict) -> None:
    """Disks by position: missing ones are added, smaller ones grown; nothing is shrunk or
    removed. Sizes are compared in KiB, as ESX keeps them."""
    if desired["disks"] is None:
        return
    have = current["disks"]
    grow, add = [], []
    for index, disk in enumerate(desired["disks"]):
        if index >= len(have):
            add.append(disk)
            continue
        if disk_kib(disk["size_gb"]) > disk_kib(have[index]["size_gb"]):
            grow.append({"index": index, "size_gb": disk["size_gb"]})
        elif disk_kib(disk["size_gb"]) < disk_kib(have[index]["size_gb"]):
            plan.warnings.append(
                f"VM {plan.name}: disk {index} is {have[index]['size_gb']:g} GiB, more than the "
                f"{disk['size_gb']:g} GiB asked; a disk is never shrunk"
            )
    if len(have) > len(desired["disks"]):
        plan.warnings.append(
            f"VM {plan.name}: has {len(have)} disks, the spec lists {len(desired['disks'])}; "
            "the others are kept (a disk is never removed by this module)"
        )
    if grow:
        plan.reconfigure["grow_disks"] = grow
    if add:
        plan.reconfigure["add_disks"] = add
    grown = {g["index"]: g["size_gb"] for g in grow}
    target["disks"] = [dict(d, size_gb=grown.get(i, d["size_gb"])) for i, d in enumerate(have)] + [dict(d) for d in add]


def _plan_nics(plan: EsxPlan, desired: dict, current: dict, target: dict) -> None:
    """NICs: matched by MAC first, then each vif without a MAC takes the first NIC left;
    port groups changed in place; NICs the spec no longer lists are removed, new ones added
    after the others. The VM keeps its NICs' order (an edit cannot reorder them), so the
    target lists the kept NICs in the VM's order. No vifs in the spec: the NICs are left as
    they are."""
    if desired["vifs"] is None:
        return
    have = list(current["vifs"])
    by_mac = {v["mac"]: i for i, v in enumerate(have) if v.get("mac")}
    matches: list = [by_mac.get(vif["mac"]) if vif.get("mac") else None for vif in desired["vifs"]]
    free = [i for i in range(len(have)) if i not in set(matches)]
    for index, vif in enumerate(desired["vifs"]):
        if not vif.get("mac") and free:
            matches[index] = free.pop(0)
    wanted = []
    for index, vif in enumerate(desired["vifs"]):
        match = matches[index]
        mac = vif.get("mac") or (have[match]["mac"] if match is not None else None)
        wanted.append({"match": match, "mac": mac, "port_group": vif["port_group"]})
    kept = sorted((w for w in wanted if w["match"] is not None), key=lambda w: w["match"])
    added = [w for w in wanted if w["match"] is None]
    same = not added and len(kept) == len(have) and all(have[w["match"]]["port_group"] == w["port_group"] for w in kept)
    if not same:
        plan.reconfigure["nics"] = wanted
    target["vifs"] = [{"mac": w["mac"], "port_group": w["port_group"]} for w in kept + added]
