# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters of the guest role and the teardown and summary playbooks: guest specs (the
``xen_domain`` hostvars of the lcfg.xen.lcfg inventory plugin) as ``xen_disk`` and
``xen_guests`` items, and the site summary table.

Documentation: the ``<filter>.yml`` files beside this one (``ansible-doc -t filter``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

SUMMARY_FORMAT = "%-15s %-17s %-9s %-8s %5s %6s %5s %5s %6s %-4s  %s"
SUMMARY_HEADER = ("HYPERVISOR", "GUEST", "KIND", "STATE", "MiB", "ACTUAL", "MAX", "VCPUS", "ONLINE", "BOOT", "NETWORKS")
#: the guest kinds the guest role converges on separate libvirt connections
KINDS = ("vm", "container")


def _check_kind(filter_name: str, kind: str | None) -> None:
    if kind is not None and kind not in KINDS:
        raise AnsibleFilterError(f"{filter_name}: unknown kind {kind!r}; use vm or container")


def guest_kind(spec: Mapping[str, Any]) -> str:
    """``container`` for a container guest (type container), else ``vm``."""
    return "container" if spec.get("type") in ("container", "lxc") else "vm"


def guest_disks(specs: Iterable[Mapping[str, Any]], disk_format: str = "qcow2") -> list[dict[str, Any]]:
    """One ``xen_disk`` item per image disk of every guest. The template is cloned into the
    guest's first disk only, and only a clone receives the LCFG profile URL."""
    items = []
    for spec in specs or []:
        disks = spec.get("disks") or []
        images = [disk for disk in disks if disk.get("type", "image") == "image"]
        for index, disk in enumerate(images):
            template = spec.get("template") if index == 0 and disk["path"] == disks[0]["path"] else None
            url = spec.get("profile_url") if template else None
            items.append(
                {
                    "guest": spec["name"],
                    "tag": disk.get("tag", ""),
                    "path": disk["path"],
                    "size_gb": disk.get("size_gb"),
                    # a container's root filesystem is loop-mounted: raw, a full copy of its template
                    "kind": guest_kind(spec),
                    "image_format": disk.get("format")
                    or (None if template else ("raw" if guest_kind(spec) == "container" else disk_format)),
                    "template": template,
                    "profile_url": url,
                    "root_partition": spec.get("partition") if url else None,
                    "hostname": spec["name"] if url else None,
                }
            )
    return items


def guest_templates(specs: Iterable[Mapping[str, Any]], partition: int = 5) -> list[dict[str, Any]]:
    """The template images the guest specs clone, once each, sorted by path: ``path``, the
    ``partition`` that holds the guest filesystem (the specs' own, else ``partition``) and
    the ``guests`` cloned from it. Specs that name one template with different partitions
    give a ``partitions`` list of more than one (the guest role then refuses to build it)."""
    found: dict[str, dict[str, Any]] = {}
    for spec in specs or []:
        template = spec.get("template")
        if not template or guest_kind(spec) == "container":  # a container's template is a root filesystem
            continue
        entry = found.setdefault(str(template), {"path": str(template), "guests": [], "partitions": []})
        entry["guests"].append(spec["name"])
        named = spec.get("partition") or partition
        if named not in entry["partitions"]:
            entry["partitions"].append(named)
    items = []
    for path in sorted(found):
        entry = found[path]
        items.append(dict(entry, partition=entry["partitions"][0]))
    return items


def _vif(vif: Mapping[str, Any], networks: Mapping[str, str], vif_scripts: bool) -> dict[str, Any]:
    """A vif with the host's network name filled in where the profile leaves it to the host,
    and its script dropped where the driver cannot run it (vif scripts are a Xen feature)."""
    item = dict(vif)
    if vif.get("script") and not vif_scripts:
        item["script"] = None
    if vif.get("nettype", "bridge") in networks and not vif.get("network"):
        item["network"] = networks[vif.get("nettype", "bridge")]
    return item


def guest_items(
    specs: Iterable[Mapping[str, Any]],
    networks: Mapping[str, str] | None = None,
    vif_scripts: bool = False,
    start_autostart: bool = True,
    state_autostart: str = "running",
    state_other: str = "present",
    kind: str | None = None,
) -> list[dict[str, Any]]:
    """The ``guests`` option of ``xen_guests``: each spec with the power state it should have
    (``state_autostart`` for guests marked to boot when ``start_autostart``, else ``state_other``)
    and its vifs completed (``_vif``). ``kind`` (vm or container): only the guests of that kind."""
    _check_kind("guest_items", kind)
    items = []
    for spec in specs or []:
        if kind is not None and guest_kind(spec) != kind:
            continue
        boots = spec.get("autostart", False) and start_autostart
        vifs = [_vif(vif, networks or {}, vif_scripts) for vif in spec.get("vifs") or []]
        items.append(dict(spec, state=state_autostart if boots else state_other, vifs=vifs))
    return items


def guest_container_templates(specs: Iterable[Mapping[str, Any]]) -> list[str]:
    """The templates the container specs clone, once each, sorted: root filesystem images that
    nothing builds empty, so the guest role checks that they exist."""
    return sorted({str(s["template"]) for s in specs or [] if guest_kind(s) == "container" and s.get("template")})


def guest_removals(
    specs: Iterable[Mapping[str, Any]],
    shutdown_timeout: int = 120,
    remove_disks: bool = False,
    kind: str | None = None,
) -> list[dict[str, Any]]:
    """The ``guests`` option of ``xen_guests`` that stops and undefines each guest by name
    (``kind``, vm or container: only the guests of that kind)."""
    _check_kind("guest_removals", kind)
    return [
        {
            "name": spec["name"],
            "state": "absent",
            "force_stop": True,
            "shutdown_timeout": int(shutdown_timeout),
            "remove_disks": bool(remove_disks),
        }
        for spec in specs or []
        if kind is None or guest_kind(spec) == kind
    ]


def _networks_shown(guest: Mapping[str, Any], devices: Mapping[str, str]) -> str:
    """A guest's vifs: ``tag=bridge`` (a bridge under the profile's name for its Linux device)
    or ``tag=nettype:network``."""
    shown = []
    for vif in (guest.get("config") or {}).get("vifs") or []:
        if vif.get("nettype") == "bridge":
            where = next((name for name, device in devices.items() if device == vif.get("bridge")), vif.get("bridge"))
        else:
            where = f"{vif.get('nettype')}:{vif.get('network')}"
        shown.append(f"{vif['tag']}={where}" if vif.get("tag") else str(where))
    return " ".join(shown) or "-"


def _summary_row(hypervisor: str, name: str, guest: Mapping[str, Any] | None, devices: Mapping[str, str]) -> str:
    if guest is None:
        return SUMMARY_FORMAT % (hypervisor, name, "-", "absent", "-", "-", "-", "-", "-", "-", "-")
    config = guest.get("config") or {}
    live = guest.get("live") or {}
    vcpus = live["vcpus"] if "vcpus" in live else config.get("vcpus")
    running = guest.get("state") == "running"
    # the balloon's actual size beside the target, and the VCPUs the guest itself has online
    # (its agent; "?" when no agent answers): a guest without balloon driver or CPU hotplug
    # does not follow a live change, and the table shows it
    actual = guest.get("memory_actual") if running and guest.get("memory_actual") is not None else "-"
    online = ("?" if guest.get("vcpus_online") is None else guest["vcpus_online"]) if running else "-"
    return SUMMARY_FORMAT % (
        hypervisor,
        name,
        guest_kind(config),
        guest.get("state"),
        config.get("memory"),
        actual,
        config.get("maxmem"),
        vcpus,
        online,
        "yes" if guest.get("autostart") else "no",
        _networks_shown(guest, devices),
    )


def guest_summary(hostvars: Mapping[str, Any], hosts: Iterable[str], info: str | Iterable[str] = "summary_info") -> str:
    """A table of every guest of the hypervisors ``hosts`` (their ``xen_host.guests``), read
    back by ``xen_domain_info`` into the host variable ``info`` (or each of a list of them:
    VMs and containers are read on their own connections), and a count line."""
    lines = [SUMMARY_FORMAT % SUMMARY_HEADER]
    total = running = off_target = 0
    infos = [info] if isinstance(info, str) else list(info)
    for hypervisor in sorted(hosts or []):
        host = hostvars[hypervisor]
        found = {guest.get("name"): guest for var in infos for guest in (host.get(var) or {}).get("guests") or []}
        xen_host = host.get("xen_host") or {}
        devices = xen_host.get("bridge_devices") or {}
        for name in xen_host.get("guests") or []:
            total += 1
            guest = found.get(name)
            running += guest is not None and guest.get("state") == "running"
            off_target += _balloon_off_target(guest)
            lines.append(_summary_row(hypervisor, name, guest, devices))
    tail = f", {off_target} not at their memory target (ACTUAL != MiB)" if off_target else ""
    return "\n".join(lines) + f"\n{total} guests, {running} running{tail}"


def _balloon_off_target(guest: Mapping[str, Any] | None) -> bool:
    if not guest or guest.get("state") != "running" or guest.get("memory_actual") is None:
        return False
    return abs(guest["memory_actual"] - ((guest.get("config") or {}).get("memory") or 0)) > 2


class FilterModule:
    """lcfg.xen guest filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "guest_disks": guest_disks,
            "guest_items": guest_items,
            "guest_kind": guest_kind,
            "guest_container_templates": guest_container_templates,
            "guest_removals": guest_removals,
            "guest_summary": guest_summary,
            "guest_templates": guest_templates,
        }
