"""xen_bridge on real Xen: a Linux bridge in dom0 with a running PV guest's vif on it."""

from __future__ import annotations

import json

import pytest
from xenlab import GUEST_BOOT_ACCESS, GUEST_CMDLINE, GUEST_KERNEL, GUEST_RAMDISK, URI

pytestmark = pytest.mark.xen

BRIDGE = "lcfgtest-br0"
NETDEV = "lcfgtest-d0"  # a dummy stand-in: dom0's real NIC carries the lab's SSH
GUEST = "lcfgtest-vif"
MAC = "00:16:3e:4c:00:01"


@pytest.fixture
def bridge_cleanup(xen_lab):
    yield
    xen_lab.destroy(GUEST)
    xen_lab.play(
        [
            {
                "name": "bridge absent",
                "ignore_errors": True,
                "lcfg.xen.xen_bridge": {
                    "uri": URI,
                    "name": BRIDGE,
                    "mode": "bridge",
                    "netdev": NETDEV,
                    "create_netdev": "dummy",
                    "state": "absent",
                },
            }
        ]
    )
    xen_lab.ssh(f"ip link del {BRIDGE}; ip link del {NETDEV}", check=False)


def test_bridge_with_guest_vif(xen_lab, bridge_cleanup):
    bridge = {
        "uri": URI,
        "name": BRIDGE,
        "mode": "bridge",
        "netdev": NETDEV,
        "create_netdev": "dummy",
        "state": "present",
    }
    guest = {
        "uri": URI,
        "name": GUEST,
        "type": "pv",
        "memory": 128,
        "vcpus": 1,
        "kernel": GUEST_KERNEL,
        "ramdisk": GUEST_RAMDISK,
        "cmdline": GUEST_CMDLINE,
        "vifs": [{"mac": MAC, "nettype": "bridge", "bridge": BRIDGE, "script": "vif-bridge"}],
        "state": "running",
        **GUEST_BOOT_ACCESS,
    }
    run = xen_lab.play(
        [
            {"name": "bridge", "lcfg.xen.xen_bridge": bridge},
            {"name": "bridge again", "lcfg.xen.xen_bridge": bridge},
            {"name": "guest", "lcfg.xen.xen_domain": guest},
            {"name": "guest again", "lcfg.xen.xen_domain": guest},
        ]
    )
    assert run.rc == 0, run.output
    assert run["bridge"]["changed"] is True
    assert run["bridge again"]["changed"] is False, run["bridge again"]
    assert run["guest"]["changed"] is True
    assert run["guest again"]["changed"] is False, run["guest again"]
    assert [v["mac"] for v in run["guest"]["after"]["vifs"]] == [MAC]

    links = json.loads(xen_lab.ssh(["ip", "-j", "link", "show", BRIDGE]).stdout)
    assert links[0]["ifname"] == BRIDGE and "UP" in links[0]["flags"]
    domid = int(xen_lab.ssh(["xl", "domid", GUEST]).stdout)
    vif = f"vif{domid}.0"
    ports = {link["ifname"] for link in json.loads(xen_lab.ssh(["ip", "-j", "link", "show", "master", BRIDGE]).stdout)}
    assert ports == {NETDEV, vif}
    assert vif in xen_lab.ssh(["brctl", "show", BRIDGE]).stdout
    backend = f"/local/domain/0/backend/vif/{domid}/0"
    assert xen_lab.ssh(["xenstore-read", f"{backend}/mac"]).stdout.strip() == MAC
    assert xen_lab.ssh(["xenstore-read", f"{backend}/bridge"]).stdout.strip() == BRIDGE
