"""The main job end to end: the site playbook over the example inventory, twice.

The second run must report changed=0 for every host; the guests are then read back
from libvirt and compared with the inventory; teardown removes the domains and keeps
the disk images. Slow (minutes): one run of each.

The test runs on a copy of inventory/ whose guests, networks, bridges, MACs and
addresses are renamed (``SITE_TEST_RENAMES``), so a user's own ``make site`` guests
on this machine are neither changed nor torn down by ``make test``.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from support import ROOT, ansible_env, example_site_copy, inventory_list, libvirt_domains, run_playbook

pytestmark = [pytest.mark.integration, pytest.mark.slow]

libvirt = pytest.importorskip("libvirt")

URI = "qemu:///system"
CONTAINER_URI = "lxc:///system"

# Applied to every file of the copy: demo names -> names of the test's own.
SITE_TEST_RENAMES = (
    ("demo-", "lcfgts-"),
    ("lcfg-nat", "lcfgts-nat"),
    ("xenbr", "tsbr"),
    ("52:54:00:6c:", "52:54:00:7c:"),
    ("10.0.", "10.77."),
)


def _own_copy_of_the_example_site(target: Path) -> Path:
    # the bridges' stand-in ports too (the network role names them <prefix><tag>)
    return example_site_copy(target, SITE_TEST_RENAMES, "7e570001", "lcfgts-")


def _domain_names() -> set[str]:
    conn = libvirt.open(URI)
    try:
        return {d.name() for d in conn.listAllDomains(0)}
    finally:
        conn.close()


def _recap(stdout: str) -> dict[str, dict[str, int]]:
    out = {}
    for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", stdout, re.M):
        out[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
    return out


def _run_site(env: dict) -> subprocess.CompletedProcess:
    """scripts/site.sh (make site) with ``env``."""
    cmd = ["bash", str(ROOT / "scripts" / "site.sh")]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=3600, check=False)


def test_site_playbook_twice_then_teardown(tmp_path):
    inventory = _own_copy_of_the_example_site(tmp_path / "site")
    env = ansible_env()
    env["LCFG_XEN_INVENTORY"] = str(inventory)
    others_before = {name for name in _domain_names() if not name.startswith("lcfgts-")}
    site = _run_site(env)
    assert site.returncode == 0, site.stdout[-4000:] + site.stderr[-2000:]
    assert "guests," in site.stdout and "running" in site.stdout  # the summary was printed

    again = _run_site(env)
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-2000:]
    recap = _recap(again.stdout)
    assert recap, again.stdout[-2000:]
    assert {h: c["changed"] for h, c in recap.items()} == {h: 0 for h in recap}
    assert all(c["failed"] == 0 for c in recap.values())

    inv = inventory_list(inventory)
    hostvars = inv["_meta"]["hostvars"]
    guests = {name: hv["xen_domain"] for name, hv in hostvars.items() if "xen_domain" in hv}
    assert guests
    conn = libvirt.open(URI)
    containers = libvirt.open(CONTAINER_URI)
    try:
        for name, spec in guests.items():
            dom = (containers if spec["type"] == "container" else conn).lookupByName(spec["name"])
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
        containers.close()
    assert any(spec["type"] == "container" for spec in guests.values())

    # The demo guests have no operating system to answer an ACPI shutdown.
    teardown = run_playbook(
        ROOT / "playbooks" / "teardown.yml",
        inventory=inventory,
        extra_vars={"teardown_shutdown_timeout": 5, "teardown_remove_networks": True},
    )
    assert teardown.returncode == 0, teardown.stdout[-3000:] + teardown.stderr[-2000:]
    conn = libvirt.open(URI)
    try:
        names = {d.name() for d in conn.listAllDomains(0)} | set(libvirt_domains(CONTAINER_URI))
        assert not names & {spec["name"] for spec in guests.values()}
    finally:
        conn.close()
    for spec in guests.values():
        for disk in spec["disks"]:
            assert os.path.exists(disk["path"]), f"teardown removed {disk['path']}"
    # Guests that are not the test's own (a user's make site) are all still there.
    assert others_before <= _domain_names()
