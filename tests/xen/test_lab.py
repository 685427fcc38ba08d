"""The lab itself: Xen runs, dom0 answers, libvirt's libxl driver and Python bindings work."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.xen


def test_xen_hypervisor_runs_dom0(xen_lab):
    info = dict(line.split(":", 1) for line in xen_lab.ssh("xl info").stdout.splitlines() if ":" in line)
    info = {key.strip(): value.strip() for key, value in info.items()}
    assert (info["xen_major"], info["xen_minor"]) == ("4", "17")
    assert "pv" in info["virt_caps"].split()
    assert int(info["nr_cpus"]) == 2
    domains = xen_lab.ssh("xl list").stdout.splitlines()
    assert domains[1].split()[:2] == ["Domain-0", "0"]


def test_libvirt_libxl_driver_answers(xen_lab):
    assert xen_lab.ssh("virsh -c xen:///system uri").stdout.strip() == "xen:///system"
    probe = "import libvirt, lxml.etree; c = libvirt.open('xen:///system'); print(c.getType(), c.getHostname())"
    out = xen_lab.ssh(["/usr/bin/python3", "-c", probe]).stdout.split()
    assert out == ["Xen", "xenlab"]
