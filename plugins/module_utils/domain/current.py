# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""What is there now: the driver facts of a connection (``DriverCaps``) and one guest as
libvirt holds it (``read_current`` -> ``Current``), parsed back to the spec vocabulary."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Any

from ansible_collections.lcfg.xen.plugins.module_utils.common.imports import optional_import
from ansible_collections.lcfg.xen.plugins.module_utils.common.libvirt import driver_name
from ansible_collections.lcfg.xen.plugins.module_utils.domain import calls
from ansible_collections.lcfg.xen.plugins.module_utils.domain.parse import (
    network_gateways,
    parse_domain,
    present_fragments,
)

etree = optional_import("lxml.etree")[0]

__all__ = ["DriverCaps", "Current", "read_current"]


def _is_local(uri: str) -> bool:
    rest = uri.split("://", 1)[1] if "://" in uri else ""
    host = rest.split("/", 1)[0]
    scheme = uri.split(":", 1)[0]
    return host in ("", "localhost") and ("+" not in scheme or scheme.endswith("+unix"))


class DriverCaps:
    """The driver facts of one connection the renderer needs, read once and kept here, beside
    the connection (nothing is stored on the libvirt object). One per run, shared by its plans.

    ``basic()``: ``driver`` (xen, qemu, test, ...), ``local``, ``uri``. ``full()`` adds, from
    the hypervisor's capabilities, ``domain_type`` (QEMU: ``kvm`` only when offered and
    /dev/kvm opens), ``arch`` and ``loader`` (Xen hvmloader); both return the same dict.
    """

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self._caps: dict | None = None

    def basic(self) -> dict:
        if self._caps is None:
            uri = calls.uri(self.conn)
            self._caps = {"driver": driver_name(self.conn), "local": _is_local(uri), "uri": uri}
            if self._caps["driver"] == "lxc":
                # containers get their vif addresses set inside: the networks' prefixes and gateways
                self._caps["networks"] = {
                    name: network_gateways(xml) for name, xml in calls.network_definitions(self.conn).items()
                }
        return self._caps

    @property
    def local(self) -> bool:
        return self.basic()["local"]

    def full(self) -> dict:
        caps = self.basic()
        if "domain_type" in caps:
            return caps
        root = etree.fromstring(calls.capabilities(self.conn).encode())
        arch = root.findtext("host/cpu/arch")
        domain_types: set[str] = set()
        loader = None
        for guest in root.findall("guest"):
            guest_arch = guest.find("arch")
            if guest_arch is None or guest_arch.get("name") != arch:
                continue
            domain_types.update(d.get("type") for d in guest_arch.findall("domain"))
            if guest.findtext("os_type") == "hvm" and guest_arch.findtext("loader"):
                loader = guest_arch.findtext("loader")
        domain_type = caps["driver"]
        if caps["driver"] == "qemu":
            domain_type = "kvm" if "kvm" in domain_types and _kvm_usable(caps["local"]) else "qemu"
        caps.update(
            domain_type=domain_type,
            arch=arch if caps["driver"] != "test" else None,
            loader=loader if caps["driver"] == "xen" else None,
        )
        return caps


def _kvm_usable(local: bool) -> bool:
    if not local:
        return True
    try:
        handle = os.open("/dev/kvm", os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    os.close(handle)
    return True


@dataclass
class Current:
    """One guest as libvirt holds it (``dom`` None: absent)."""

    name: str
    dom: Any = None
    xml: str | None = None
    spec: dict | None = None
    power: str = "absent"
    domain_type: str | None = None

    @property
    def exists(self) -> bool:
        return self.dom is not None

    @property
    def active(self) -> bool:
        return self.power in ("running", "paused")

    def view(self, fragments: list[str] | None = None) -> dict:
        """The spec plus ``state``; ``extra.xml`` lists which of ``fragments`` are applied."""
        if not self.exists:
            return {"name": self.name, "state": "absent"}
        view = copy.deepcopy(self.spec)
        view["extra"]["xml"] = present_fragments(self.xml, fragments) if fragments else []
        view["state"] = self.power
        return view


def read_current(conn, name: str, dom: Any = None, known_missing: bool = False) -> Current:
    """The guest ``name`` now; ``dom`` or ``known_missing`` skip the lookup."""
    if dom is None and not known_missing:
        dom = calls.lookup(conn, name=name)
    if dom is None:
        return Current(name=name)
    xml, autostart, power = calls.read_definition(dom, name=name)
    spec = parse_domain(xml)
    spec["autostart"] = autostart
    root_type = etree.fromstring(xml.encode()).get("type")
    return Current(
        name=name, dom=dom, xml=xml, spec=spec, power=calls.POWER.get(power, "running"), domain_type=root_type
    )
