# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The libvirt calls of the domain engine, each in a small ``@libvirt_errors`` wrapper, so
failures arrive as ``LibvirtFailure``/``NotFound`` naming the guest and the operation.

The engine (``current``, ``plan``, ``apply``, ``access``, ``group``, ``engine``) calls libvirt
only here. Exception: the live-change calls (``live_and_config``, ``pin``) catch libvirt's
error themselves, since a refused live change is a warning, not a failure.
"""

from __future__ import annotations

import os
import time
from typing import Any

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import Conflict
from ansible_collections.lcfg.xen.plugins.module_utils.common.libvirt import (
    libvirt,
    libvirt_errors,
    missing_is_none,
)

__all__ = [
    "POWER",
    "list_domains",
    "lookup",
    "read_definition",
    "capabilities",
    "define",
    "set_autostart",
    "start",
    "resume",
    "power_now",
    "undefine",
    "stop",
    "live_and_config",
    "pin",
    "remove_image",
    "live_values",
    "is_persistent",
    "uri",
    "vcpu_count",
    "host_cpu_count",
    "definitions",
    "ADDRESS_SOURCES",
    "interface_addresses",
    "network_leases",
    "live_xml",
    "state_and_reason",
    "memory_actual",
    "guest_vcpus_online",
]

POLL = 0.25
#: libvirt's virDomainState -> running, paused or stopped
POWER = {1: "running", 2: "running", 3: "paused", 4: "running", 5: "stopped", 6: "stopped", 7: "paused", 0: "stopped"}


@libvirt_errors("list guests")
def list_domains(conn) -> dict:
    """``{name: virDomain}`` of every guest, defined or running, in one call."""
    return {dom.name(): dom for dom in conn.listAllDomains(0)}


@libvirt_errors("look up guest {name}")
@missing_is_none
def lookup(conn, *, name: str):
    return conn.lookupByName(name)


@libvirt_errors("list the persistent guests")
def persistent_names(conn) -> set[str]:
    """The names of the defined (persistent) guests, in one call."""
    return {dom.name() for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_PERSISTENT)}


@libvirt_errors("read the metadata of guest {name}")
def metadata_element(dom, namespace: str, *, name: str) -> str | None:
    """The element of ``namespace`` in the guest's defined ``<metadata>`` (None: it has none):
    one small call, where reading the whole definition takes several and a parse."""
    try:
        return dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, namespace, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_METADATA:
            return None
        raise


@libvirt_errors("read the definition of guest {name}")
def read_definition(dom, *, name: str) -> tuple[str, bool, int]:
    xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    autostart = bool(dom.autostart()) if dom.isPersistent() else False
    power = dom.state()[0]
    return xml, autostart, power


@libvirt_errors("read the capabilities of the hypervisor")
def capabilities(conn) -> str:
    return conn.getCapabilities()


@libvirt_errors("define guest {name}")
def define(conn, xml: str, *, name: str):
    return conn.defineXML(xml)


@libvirt_errors("set autostart of guest {name}")
def set_autostart(dom, value: bool, *, name: str) -> None:
    dom.setAutostart(1 if value else 0)


@libvirt_errors("start guest {name}")
def start(dom, *, name: str) -> None:
    try:
        dom.create()
    except libvirt.libvirtError:
        if not dom.isActive():
            raise  # running anyway (another run started it meanwhile) is what was asked


@libvirt_errors("resume guest {name}")
def resume(dom, *, name: str) -> None:
    try:
        dom.resume()
    except libvirt.libvirtError:
        if dom.state()[0] != libvirt.VIR_DOMAIN_RUNNING:
            raise


# How long a guest that libvirt holds paused while it starts up (another run's start) is
# waited for before its state counts.
STARTUP_WAIT = 30


@libvirt_errors("read the power state of guest {name}")
def power_now(dom, *, name: str) -> str:
    """running, paused or stopped, read now; a guest paused only because it is starting up
    (another run is starting it) is waited for, so it is not taken for a paused guest."""
    deadline = time.monotonic() + STARTUP_WAIT
    while True:
        power, reason = dom.state()[:2]
        if (
            power != libvirt.VIR_DOMAIN_PAUSED
            or reason != libvirt.VIR_DOMAIN_PAUSED_STARTING_UP
            or time.monotonic() >= deadline
        ):
            return POWER.get(power, "running")
        time.sleep(POLL)


@libvirt_errors("undefine guest {name}")
@missing_is_none  # gone already (another run removed it): what was asked
def undefine(dom, *, name: str) -> None:
    full = (
        libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
        | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
        | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
        | getattr(libvirt, "VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA", 0)
    )
    for flags in (full, libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA):
        try:
            dom.undefineFlags(flags)
            return
        except libvirt.libvirtError as exc:
            if exc.get_error_code() not in (
                libvirt.VIR_ERR_NO_SUPPORT,
                libvirt.VIR_ERR_INVALID_ARG,
                libvirt.VIR_ERR_CONFIG_UNSUPPORTED,
            ):
                raise
    dom.undefine()


@libvirt_errors("stop guest {name}")
@missing_is_none
def stop(dom, timeout: float, force: bool, *, name: str) -> str | None:
    """Graceful shutdown, waiting up to ``timeout`` seconds; destroy afterwards if ``force``.

    Returns ``shutdown`` or ``destroy`` (what stopped it), None when the guest is gone."""
    if not dom.isActive():
        return "shutdown"
    if dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED:
        dom.resume()  # a paused guest cannot react to the shutdown request
    try:
        if dom.connect().getType() == "LXC":
            # a container's init is asked with SIGTERM (libvirt's default, initctl, needs a
            # SysV init listening)
            dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_SIGNAL)
        else:
            dom.shutdown()
    except libvirt.libvirtError:
        if dom.isActive() and not force:
            raise
    deadline = time.monotonic() + timeout
    while dom.isActive():
        if time.monotonic() >= deadline:
            if not force:
                raise Conflict(
                    f"guest {name} did not shut down within shutdown_timeout={timeout:g}s "
                    "(no ACPI/PV shutdown support in the guest?); set force_stop: true to power it "
                    "off after the timeout, or raise shutdown_timeout",
                )
            try:
                dom.destroy()
            except libvirt.libvirtError:
                if dom.isActive():
                    raise
            return "destroy"
        time.sleep(POLL)
    return "shutdown"


def _live_call(func, *args: Any) -> str | None:
    """Run a live-change call; return libvirt's message on failure instead of raising."""
    try:
        func(*args)
    except libvirt.libvirtError as exc:
        return exc.get_error_message()
    return None


def live_and_config(func, value: int) -> str | None:
    """``func(value, AFFECT_LIVE | AFFECT_CONFIG)``; drivers that refuse the pair get two calls."""
    live, config = libvirt.VIR_DOMAIN_AFFECT_LIVE, libvirt.VIR_DOMAIN_AFFECT_CONFIG
    if _live_call(func, value, live | config) is None:
        return None
    _live_call(func, value, config)  # keep the persistent part even when live fails
    return _live_call(func, value, live)


def live_only(func, value: int) -> str | None:
    """``func(value, AFFECT_LIVE)``: the running guest only (its definition is saved apart)."""
    return _live_call(func, value, libvirt.VIR_DOMAIN_AFFECT_LIVE)


def pin(dom: Any, vcpu: int, cpumap: tuple) -> str | None:
    error = _live_call(dom.pinVcpuFlags, vcpu, cpumap, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    if error is not None and "unsupported flags" in error:
        error = _live_call(dom.pinVcpu, vcpu, cpumap)
    return error


@libvirt_errors("remove disk image {path}")
def remove_image(conn, *, path: str, local: bool) -> bool:
    try:
        vol = conn.storageVolLookupByPath(path)
    except libvirt.libvirtError:
        vol = None
    if vol is not None:
        vol.delete(0)
        return True
    if local and os.path.isfile(path):
        os.unlink(path)
        return True
    return False


@libvirt_errors("read live values of guest {name}")
def live_values(dom, *, name: str) -> dict:
    state, maxmem, memory, vcpus, _cpu_time = dom.info()
    return {"memory": int(memory) // 1024, "maxmem": int(maxmem) // 1024, "vcpus": int(vcpus)}


@libvirt_errors("read whether guest {name} is persistent")
def is_persistent(dom, *, name: str) -> bool:
    return bool(dom.isPersistent())


@libvirt_errors("read the URI of the connection")
def uri(conn) -> str:
    return conn.getURI()


@libvirt_errors("read the vCPU count of guest {name}")
def vcpu_count(dom, *, name: str) -> int:
    return int(dom.info()[3])


@libvirt_errors("read the CPU count of the host")
def host_cpu_count(conn) -> int:
    return int(conn.getInfo()[2])


@libvirt_errors("read the definitions of the guests")
def definitions(conn) -> list[tuple[str, list[str]]]:
    """``[(name, [persistent XML] + [live XML when running])]`` of every guest; a guest removed
    while it is read is left out."""
    found = []
    for dom in conn.listAllDomains(0):
        try:
            xmls = [dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)] + ([dom.XMLDesc(0)] if dom.isActive() else [])
            found.append((dom.name(), xmls))
        except libvirt.libvirtError:
            continue  # removed meanwhile
    return found


#: libvirt's address sources (virDomainInterfaceAddressesSource), in the order they are tried
ADDRESS_SOURCES = (("lease", 0), ("agent", 1), ("arp", 2))


def interface_addresses(dom, source: int) -> dict:
    """``virDomainInterfaceAddresses`` from one source; libvirt's error is raised as it is
    (``libvirt.libvirtError``), since one source failing must not fail the others."""
    return dom.interfaceAddresses(source, 0) or {}


def network_leases(conn, network: str, mac: str) -> list[dict]:
    """The DHCP leases libvirt's network ``network`` holds for ``mac`` (any driver: the
    network's dnsmasq status); raises ``libvirt.libvirtError``."""
    return conn.networkLookupByName(network).DHCPLeases(mac) or []


@libvirt_errors("read the live definition of guest {name}")
def live_xml(dom, *, name: str) -> str:
    return dom.XMLDesc(0)


@libvirt_errors("read the state of guest {name}")
@missing_is_none
def state_and_reason(dom, *, name: str) -> tuple[int, int]:
    state, reason = dom.state()[:2]
    return int(state), int(reason)


def memory_actual(dom) -> int | None:
    """The balloon's actual size in MiB (``virDomainMemoryStats`` ``actual``, else the
    current memory of ``virDomainGetInfo``); None when libvirt answers neither."""
    try:
        stats = dom.memoryStats() or {}
        if "actual" in stats:
            return int(stats["actual"]) // 1024
    except libvirt.libvirtError:
        pass
    try:
        return int(dom.info()[2]) // 1024
    except libvirt.libvirtError:
        return None


def network_definitions(conn) -> dict[str, str]:
    """The XML of every libvirt network, by name (networks that cannot be read are left out)."""
    out: dict[str, str] = {}
    try:
        networks = conn.listAllNetworks()
    except libvirt.libvirtError:
        return out
    for network in networks:
        try:
            out[network.name()] = network.XMLDesc(0)
        except libvirt.libvirtError:
            continue
    return out


def container_memory_limit(dom) -> int | None:
    """A container's memory limit in MiB as its cgroup enforces it (libvirt reads
    memory.limit_in_bytes); None when it cannot be read or there is none."""
    try:
        hard = int(dom.memoryParameters(0).get("hard_limit", 0))
    except libvirt.libvirtError:
        return None
    return hard // 1024 if 0 < hard < 2**53 else None  # libvirt's "unlimited" is 2**53 - 1 KiB


def set_container_quota(dom, quota: int) -> str | None:
    """Set a running container's CPU quota (µs per period); libvirt's message on failure.
    libvirt 9.0's LXC driver dereferences the cgroup of a stopped container in its scheduler
    calls and crashes the daemon: they are made only on a container seen running."""
    try:
        if not dom.isActive():
            return "the container is not running"
    except libvirt.libvirtError as exc:
        return exc.get_error_message()
    return _live_call(dom.setSchedulerParametersFlags, {"vcpu_quota": quota}, libvirt.VIR_DOMAIN_AFFECT_LIVE)


def guest_vcpus_online(dom) -> int | None:
    """The VCPUs the guest OS has online, from the guest agent (``virDomainGetGuestVcpus``);
    None when no agent answers (no channel, agent not running, driver without support)."""
    try:
        info = dom.guestVcpus(0) or {}
    except (libvirt.libvirtError, AttributeError):
        return None
    online = info.get("online")
    if online is None:
        return None
    count = 0
    for item in str(online).split(","):
        low, _sep, high = item.strip().partition("-")
        if low.isdigit():
            count += int(high or low) - int(low) + 1 if (high or low).isdigit() else 1
    return count
