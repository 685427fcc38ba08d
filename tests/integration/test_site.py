"""The main job end to end: the site playbook over the example inventory, twice.

The second run must report changed=0 for every host; the guests are then read back
from libvirt and compared with the inventory; teardown removes the domains and keeps
the disk images. Slow (minutes): one run of each.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from support import ROOT, ansible_env, inventory_list, run_playbook

pytestmark = [pytest.mark.integration, pytest.mark.slow]

libvirt = pytest.importorskip("libvirt")

INVENTORY = ROOT / "inventory" / "site.lcfg.yml"
URI = "qemu:///system"


def _recap(stdout: str) -> dict[str, dict[str, int]]:
    out = {}
    for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", stdout, re.M):
        out[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
    return out


def test_site_playbook_twice_then_teardown():
    site = subprocess.run(["bash", str(ROOT / "scripts" / "site.sh")], capture_output=True, text=True,
                          env=ansible_env(), cwd=ROOT, timeout=3600, check=False)
    assert site.returncode == 0, site.stdout[-4000:] + site.stderr[-2000:]
    assert "guests," in site.stdout and "running" in site.stdout  # the summary was printed

    again = subprocess.run(["bash", str(ROOT / "scripts" / "site.sh")], capture_output=True, text=True,
                           env=ansible_env(), cwd=ROOT, timeout=3600, check=False)
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-2000:]
    recap = _recap(again.stdout)
    assert recap, again.stdout[-2000:]
    assert {h: c["changed"] for h, c in recap.items()} == {h: 0 for h in recap}
    assert all(c["failed"] == 0 for c in recap.values())

    inv = inventory_list(INVENTORY)
    hostvars = inv["_meta"]["hostvars"]
    guests = {name: hv["xen_domain"] for name, hv in hostvars.items() if "xen_domain" in hv}
    assert guests
    conn = libvirt.open(URI)
    try:
        for name, spec in guests.items():
            dom = conn.lookupByName(spec["name"])
            xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            assert f"<currentMemory unit='KiB'>{spec['memory'] * 1024}</currentMemory>" in xml, name
            assert f"<memory unit='KiB'>{spec['maxmem'] * 1024}</memory>" in xml, name
            assert bool(dom.autostart()) == spec["autostart"], name
            assert bool(dom.isActive()) == spec["autostart"], name  # marked to boot = started
            for vif in spec["vifs"]:
                assert vif["mac"] in xml, (name, vif)
            for disk in spec["disks"]:
                assert os.path.exists(disk["path"]), disk["path"]
                assert disk["path"] in xml
    finally:
        conn.close()

    # The demo guests have no operating system to answer an ACPI shutdown.
    teardown = run_playbook(ROOT / "playbooks" / "teardown.yml", inventory=INVENTORY,
                            extra_vars={"teardown_shutdown_timeout": 5})
    assert teardown.returncode == 0, teardown.stdout[-3000:] + teardown.stderr[-2000:]
    conn = libvirt.open(URI)
    try:
        names = {d.name() for d in conn.listAllDomains(0)}
        assert not names & {spec["name"] for spec in guests.values()}
    finally:
        conn.close()
    for spec in guests.values():
        for disk in spec["disks"]:
            assert os.path.exists(disk["path"]), f"teardown removed {disk['path']}"
