# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""What a running guest shows of itself: its addresses, its console log, its balloon and the
VCPUs it has online; and the bounded waits built on them (a live change the guest follows, a
guest that dies right after its start).

- ``interfaces(conn, name, dom, xml, driver, local)``: every vif of the definition ``xml`` with
  the addresses libvirt's lease, agent and ARP sources give (each source tried on its own; one
  failing does not stop the others).
- ``console_log(name, driver, xml, local, lines)``: ``{path, exists, lines}`` or None.
- ``guest_side(dom, xml)``: ``(memory_actual, vcpus_online)``.
- ``follow_live(items, wait)``: wait up to ``wait`` seconds until running guests show the
  memory and VCPUs they were given live; what they do not follow, in words.
- ``start_failure(dom, name, driver, local, wait)``: None, or why a just started guest stopped,
  with its console's last lines.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import time
from typing import Any

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import XenError
from ansible_collections.lcfg.xen.plugins.module_utils.common.imports import optional_import
from ansible_collections.lcfg.xen.plugins.module_utils.common.libvirt import libvirt
from ansible_collections.lcfg.xen.plugins.module_utils.domain import calls
from ansible_collections.lcfg.xen.plugins.module_utils.domain.parse import parse_container_vcpus
from ansible_collections.lcfg.xen.plugins.module_utils.domain.render import GUEST_AGENT_CHANNEL, console_log_path

etree = optional_import("lxml.etree")[0]

__all__ = [
    "interfaces",
    "flat_addresses",
    "console_log",
    "tail_lines",
    "guest_side",
    "follow_live",
    "start_failure",
    "start_failures",
    "MEMORY_TOLERANCE",
]

POLL = 0.5
#: MiB the balloon may stay off its target and still count as followed (a balloon driver
#: may leave a few pages it could not give back)
MEMORY_TOLERANCE = 2
#: bytes read from the end of a console log for its last lines (a bound on what one call reads)
TAIL_BYTES = 256 * 1024
_FAMILIES = {0: "ipv4", 1: "ipv6"}
#: terminal escapes, C0 and C1 controls and bidirectional overrides (the guest's text is shown raw)
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


# --------------------------------------------------------------------------- addresses


def _vifs_of(xml: str) -> list[dict]:
    root = etree.fromstring(xml.encode())
    out = []
    for element in root.findall("devices/interface"):
        mac = element.find("mac")
        source = element.find("source")
        target = element.find("target")
        out.append(
            {
                "name": target.get("dev") if target is not None else None,
                "mac": (mac.get("address") or "").lower() if mac is not None else None,
                "network": source.get("network") if source is not None else None,
                "bridge": source.get("bridge") if source is not None else None,
                "addresses": [],
            }
        )
    return out


def _is_container(xml: str) -> bool:
    return etree.fromstring(xml.encode()).get("type") == "lxc"


def _agent_connected(xml: str) -> bool:
    """Whether the live definition has a guest agent channel libvirt sees connected; asking
    an agent that is not there can block for libvirt's agent timeout."""
    root = etree.fromstring(xml.encode())
    for channel in root.findall("devices/channel"):
        target = channel.find("target")
        if target is not None and target.get("name") == GUEST_AGENT_CHANNEL:
            return target.get("state") == "connected"
    return False


def _from_libvirt(answer: dict) -> list[tuple[str, str, int, str]]:
    """``[(mac, address, prefix, family)]`` of a virDomainInterfaceAddresses answer."""
    found = []
    for iface in (answer or {}).values():
        mac = (iface.get("hwaddr") or "").lower()
        for addr in iface.get("addrs") or []:
            found.append((mac, addr.get("addr"), addr.get("prefix"), _FAMILIES.get(addr.get("type"), "ipv4")))
    return found


def _from_leases(conn, vifs: list[dict]) -> list[tuple[str, str, int, str]]:
    found = []
    for vif in vifs:
        if not vif["network"] or not vif["mac"]:
            continue
        for lease in calls.network_leases(conn, vif["network"], vif["mac"]):
            family = _FAMILIES.get(lease.get("type"), "ipv4")
            found.append((vif["mac"], lease.get("ipaddr"), lease.get("prefix"), family))
    return found


def _from_host_arp(vifs: list[dict], path: str = "/proc/net/arp") -> list[tuple[str, str, int, str]]:
    """The host's ARP table for the vifs' MACs (what libvirt's QEMU driver reads for its ARP
    source), for drivers without one; this host only."""
    macs = {vif["mac"] for vif in vifs if vif["mac"]}
    found = []
    with open(path, encoding="ascii", errors="replace") as handle:
        next(handle, None)
        for line in handle:
            fields = line.split()
            if len(fields) >= 4 and fields[3].lower() in macs and fields[2] != "0x0":
                found.append((fields[3].lower(), fields[0], None, "ipv4"))
    return found


def _source_answer(conn, dom, code: int, source: str, vifs: list[dict], driver: str, local: bool) -> list:
    try:
        return _from_libvirt(calls.interface_addresses(dom, code))
    except libvirt.libvirtError as exc:
        unsupported = exc.get_error_code() in (libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED)
        # libvirt's ARP source reads the kernel's neighbour table over netlink, which some
        # libvirt/kernel pairs fail on ("wrong nlmsg len"): the host's table is read here instead.
        if driver == "test" or not (unsupported or (source == "arp" and local)):
            raise
    # The driver has no such source (libxl), or it failed: read the same facts the QEMU driver reads.
    if source == "lease":
        return _from_leases(conn, vifs)
    if source == "arp" and local:
        return _from_host_arp(vifs)
    return []


def interfaces(conn, dom: Any, xml: str, driver: str, local: bool, active: bool) -> tuple[list[dict], list[str]]:
    """Every vif of ``xml`` with its addresses (running guests), and the sources that failed
    (``"agent: <libvirt's message>"``). An address is listed once, with the first source that
    gave it (lease, agent, arp); link-local and loopback addresses are left out."""
    vifs = _vifs_of(xml)
    problems: list[str] = []
    if not active or not vifs:
        return vifs, problems
    by_mac = {vif["mac"]: vif for vif in vifs}
    seen: set[tuple[str, str]] = set()
    for source, code in calls.ADDRESS_SOURCES:
        if source == "agent" and driver != "test" and not _agent_connected(xml):
            continue
        try:
            found = _source_answer(conn, dom, code, source, vifs, driver, local)
        except (libvirt.libvirtError, OSError) as exc:
            message = (exc.get_error_message() if isinstance(exc, libvirt.libvirtError) else None) or str(exc)
            problems.append(f"{source}: {message}")
            continue
        for mac, address, prefix, family in found:
            vif = by_mac.get(mac)
            if vif is None or not address or (mac, address) in seen:
                continue
            try:
                parsed = ipaddress.ip_address(address)
            except ValueError:
                continue
            if parsed.is_link_local or parsed.is_loopback:
                continue
            seen.add((mac, address))
            vif["addresses"].append({"address": address, "prefix": prefix, "family": family, "source": source})
    return vifs, problems


def flat_addresses(vifs: list[dict]) -> list[str]:
    """Every address of ``vifs``, IPv4 first."""
    ordered = sorted((a for vif in vifs for a in vif["addresses"]), key=lambda a: 0 if a["family"] == "ipv4" else 1)
    return [a["address"] for a in ordered]


# --------------------------------------------------------------------------- console log


def tail_lines(path: str, count: int) -> list[str]:
    """The last ``count`` lines of ``path`` (at most ``TAIL_BYTES`` read), control characters
    and terminal escapes removed: the text is the guest's, shown in a play's output."""
    if count <= 0:
        return []
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)  # non-blocking: a FIFO planted there cannot hang the call
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return []
    with os.fdopen(fd, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - TAIL_BYTES))
        data = handle.read(TAIL_BYTES)
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    lines = [_CONTROL.sub("", line).rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines[-count:]


def console_log(name: str, driver: str, xml: str | None, local: bool, count: int) -> dict | None:
    """``{path, exists, lines}`` of the guest's console log; None where the collection keeps
    none (test driver, or a QEMU guest whose definition does not log there). On a remote
    hypervisor ``exists`` is None and ``lines`` empty (the file is on that host)."""
    path = console_log_path(name, driver)
    if path is None or "/" in name:
        return None
    if driver in ("qemu", "kvm") and xml is not None:
        root = etree.fromstring(xml.encode())
        if not any(log.get("file") == path for log in root.findall("devices/serial/log")):
            return None
    if not local:
        return {"path": path, "exists": None, "lines": []}
    try:
        return {"path": path, "exists": True, "lines": tail_lines(path, count)}
    except FileNotFoundError:
        return {"path": path, "exists": False, "lines": []}
    except OSError as exc:
        return {"path": path, "exists": os.path.lexists(path), "lines": [], "error": str(exc)}


# --------------------------------------------------------------------------- balloon and VCPUs


def guest_side(dom: Any, xml: str | None) -> tuple[int | None, int | None]:
    """``(memory_actual, vcpus_online)`` of a running guest: the balloon's size in MiB, and
    the VCPUs the guest has online when its agent answers (else None: unknown)."""
    if xml is not None and _is_container(xml):
        # what its cgroup enforces is what a container has: the memory limit read from it, the
        # CPU quota libvirt set (its live definition; libvirt's scheduler reads can crash 9.0)
        return calls.container_memory_limit(dom), parse_container_vcpus(xml)
    actual = calls.memory_actual(dom)
    online = calls.guest_vcpus_online(dom) if xml is not None and _agent_connected(xml) else None
    return actual, online


def _not_followed(dom: Any, name: str, want: dict) -> tuple[list[str], int | None, int | None]:
    xml = calls.live_xml(dom, name=name)
    actual, online = guest_side(dom, xml)
    missing = []
    if "memory" in want and actual is not None and abs(actual - want["memory"]) > MEMORY_TOLERANCE:
        missing.append(f"memory: target {want['memory']} MiB, guest still at {actual} MiB")
    if "vcpus" in want and _is_container(xml):
        if online != want["vcpus"]:
            missing.append(f"vcpus: target {want['vcpus']}, the container's CPU quota is {online} CPUs")
    elif "vcpus" in want:
        have = calls.vcpu_count(dom, name=name)
        if have != want["vcpus"]:
            missing.append(f"vcpus: target {want['vcpus']}, hypervisor reports {have}")
        elif online is not None and online != want["vcpus"]:
            missing.append(f"vcpus: target {want['vcpus']}, guest has {online} online")
    return missing, actual, online


def follow_live(items: list[tuple[Any, str, dict]], wait: float) -> dict[str, dict]:
    """Wait up to ``wait`` seconds, for all guests at once, until each running guest of
    ``items`` (``(dom, name, {field: target})``, fields ``memory`` in MiB and ``vcpus``) shows
    its targets. Returns per name ``{memory_actual, vcpus_online, live_not_followed: [str]}``."""
    deadline = time.monotonic() + max(0.0, wait)
    pending = {name: (dom, want) for dom, name, want in items}
    out: dict[str, dict] = {}
    while True:
        for name, (dom, want) in list(pending.items()):
            missing, actual, online = _not_followed(dom, name, want)
            out[name] = {"memory_actual": actual, "vcpus_online": online, "live_not_followed": missing}
            if not missing:
                del pending[name]
        if not pending or time.monotonic() >= deadline:
            return out
        time.sleep(POLL)


# --------------------------------------------------------------------------- failed starts

_SHUTOFF_REASONS = {1: "shut down", 2: "destroyed", 3: "crashed", 4: "migrated", 5: "saved", 6: "failed"}


def start_failure(dom: Any, name: str, driver: str, local: bool, wait: float, lines: int = 20) -> str | None:
    """Watch a guest just started for ``wait`` seconds; None while it keeps running, else why
    it stopped, with the last ``lines`` of its console log."""
    return start_failures([(dom, name, time.monotonic())], driver, local, wait, lines).get(name)


def start_failures(
    started: list[tuple[Any, str, float]], driver: str, local: bool, wait: float, lines: int = 20
) -> dict[str, str]:
    """Watch the guests just started (``(dom, name, started_at)``, ``time.monotonic()`` of each
    start), all at once, each until ``wait`` seconds after its own start: per guest that
    stopped, why, with the last ``lines`` of its console log. A guest whose state cannot be
    read fails with that error (its own, not the others')."""
    pending = {name: (dom, started_at) for dom, name, started_at in started}
    why: dict[str, str] = {}
    while pending:
        for name, (dom, started_at) in list(pending.items()):
            try:
                stopped = _why_stopped(dom, name)
            except XenError as exc:
                why[name] = exc.message
                del pending[name]
                continue
            since_start = time.monotonic() - started_at
            if stopped:
                why[name] = _start_failure_message(name, stopped, driver, local, lines, wait=wait, seen=since_start)
                del pending[name]
            elif since_start >= max(0.0, wait):
                del pending[name]
        if pending:
            time.sleep(POLL)
    return why


def _why_stopped(dom: Any, name: str) -> str | None:
    now = calls.state_and_reason(dom, name=name)
    if now is None:
        return "was removed"
    state, reason = now
    if state in (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_CRASHED):
        what = "crashed" if state == libvirt.VIR_DOMAIN_CRASHED else _SHUTOFF_REASONS.get(reason, "stopped")
        return f"stopped ({what})"
    return None


def _start_failure_message(
    name: str, why: str, driver: str, local: bool, lines: int, *, wait: float, seen: float
) -> str:
    """``wait``: the watch's seconds; ``seen``: seconds from the start to the read that saw it stopped."""
    log = console_log(name, driver, None, local, lines)
    if log is None:
        shown = "no console log is kept for this driver"
    elif log["lines"]:
        shown = f"last lines of its console ({log['path']}):\n" + "\n".join(log["lines"])
    else:
        shown = f"its console log {log['path']} is empty or not readable here"
    # a guest read only after its watch ended (its turn came late) may have stopped after it
    when = f"within {wait:g}s of its start" if seen <= wait else f"by {seen:.1f}s after its start (watch: {wait:g}s)"
    return f"guest {name} {why} {when}; {shown}"
