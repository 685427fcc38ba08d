"""Red-team round 2, N5 and N3, reproduced on the real host:

* N5: a Linux bridge xen_bridge did not create (an admin's, libvirt's) was enslaved a
  stand-in and brought up by converging, and deleted by teardown; a profile bridge named
  like libvirt's own (``virbr*``) or like a libvirt network's bridge blocked that network;
* N3: a profile's ``routenetwork`` naming a NAT network lcfg.xen made turned it into a
  routed network in place.

The admin's bridge is made with ``ip link add type bridge`` and has a veth port whose peer
lives in a network namespace. Every object is named ``lcfgt-n5-`` and removed afterwards.
What the host holds is read back with ``ip -j`` and libvirt's XMLDesc.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# host is a fixture of test_xen_bridge, used here by name.
from integration.test_xen_bridge import URI, host, sh, virsh  # noqa: F401  # pylint: disable=unused-import
from support import ROOT, run_module, run_playbook

libvirt = pytest.importorskip("libvirt")

pytestmark = pytest.mark.integration

PREFIX = "lcfgt-n5-"
NS = PREFIX + "ns"
ADMIN = PREFIX + "adm"  # the admin's bridge
PORT = PREFIX + "ap"  # its port (a veth, the peer in NS)
PEER = PREFIX + "aq"
STANDIN_PREFIX = PREFIX + "s"
STANDIN = STANDIN_PREFIX + "n5"
NAT = PREFIX + "nat"
FOREIGN = PREFIX + "fn"
FOREIGN_BRIDGE = PREFIX + "fb"
HV = PREFIX + "hv"
MARK = "lcfg.xen bridge"


def link(name: str) -> dict | None:
    proc = sh("ip", "-j", "-d", "link", "show", "dev", name, check=False)
    return json.loads(proc.stdout)[0] if proc.returncode == 0 else None


def seen(name: str) -> dict | None:
    """What a change would show (a bridge's timers tick on their own, so not the whole record)."""
    entry = link(name)
    if entry is None:
        return None
    return {key: entry.get(key) for key in ("flags", "operstate", "ifalias", "master", "address", "mtu")}


def ports(bridge: str) -> list:
    return sorted(
        item["ifname"] for item in json.loads(sh("ip", "-j", "link", "show", "master", bridge).stdout or "[]")
    )


@pytest.fixture
def n5(host):  # noqa: F811
    """``host`` (test_xen_bridge) removes them afterwards: the bridge and stand-in a test may leave."""
    for name in (STANDIN, ADMIN):
        host.link(name)
    return host


@pytest.fixture
def admin_bridge(n5):
    """An address-less bridge the admin made (down), with a veth port leading into NS."""
    sh("ip", "link", "add", ADMIN, "type", "bridge")
    n5.veth(PORT, n5.netns(NS), PEER)
    sh("ip", "link", "set", PORT, "master", ADMIN)
    sh("ip", "link", "set", PORT, "up")
    return ADMIN


def hypervisor(**xen_host) -> dict:
    settings = {
        "bridge_network": False,
        "bridges": [],
        "custom_bridge": None,
        "nat_network": False,
        "route_network": False,
        "nat_network_name": NAT,
        "nat_address": "10.213.205.254/24",
        "nat_dhcp_hosts": [],
        "guests": [],
    }
    settings.update(xen_host)
    return {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "xen_host": settings,
        "network_persist": "none",
        "network_standin_prefix": STANDIN_PREFIX,
    }


def play(tmp_path: Path, playbook: str | Path, hosts: dict, *args: str, **play_vars) -> subprocess.CompletedProcess:
    for host_vars in hosts.values():
        host_vars.update(play_vars)
    inventory = {"all": {"children": {"xen_hypervisors": {"hosts": hosts}}}}
    (tmp_path / "inv.yml").write_text(json.dumps(inventory))
    if playbook == "role":
        playbook = tmp_path / "play.yml"
        playbook.write_text(
            json.dumps([{"hosts": "xen_hypervisors", "gather_facts": False, "roles": ["lcfg.xen.network"]}])
        )
    return run_playbook(playbook, *args, inventory=tmp_path / "inv.yml")


TEARDOWN = ROOT / "playbooks" / "teardown.yml"


def test_an_admins_bridge_survives_converge_and_teardown_unless_adopted(tmp_path, admin_bridge):
    profile = {
        HV: hypervisor(
            bridge_network=True, bridges=[{"tag": "n5", "netdev": None, "bridge": ADMIN, "device": ADMIN, "vifnum": 5}]
        )
    }
    before = {name: seen(name) for name in (ADMIN, PORT)}
    assert before[ADMIN]["ifalias"] is None and "UP" not in before[ADMIN]["flags"]

    for playbook, args in (
        ("role", ("--check",)),
        ("role", ()),
        (TEARDOWN, ("--check", "-e", "teardown_remove_networks=true")),
        (TEARDOWN, ("-e", "teardown_remove_networks=true")),
    ):
        proc = play(tmp_path, playbook, profile, *args)
        assert proc.returncode != 0, proc.stdout
        assert f"bridge {ADMIN} exists on this host and was not created by lcfg.xen" in proc.stdout
        assert f"network_adopt: [{ADMIN}]" in proc.stdout
        # the stand-in never enslaved, the bridge neither brought up nor deleted, its port kept
        assert {name: seen(name) for name in (ADMIN, PORT)} == before
        assert ports(ADMIN) == [PORT]
        assert link(STANDIN) is None

    # adopted: converged (stand-in enslaved, bridge up) and marked
    proc = play(tmp_path, "role", profile, network_adopt=[ADMIN])
    assert proc.returncode == 0, proc.stdout
    assert ports(ADMIN) == [PORT, STANDIN]
    assert seen(ADMIN)["ifalias"] == MARK and "UP" in seen(ADMIN)["flags"]
    proc = play(tmp_path, "role", profile, network_adopt=[])  # marked: no adopt needed again
    assert proc.returncode == 0 and "changed=0" in proc.stdout, proc.stdout

    # now lcfg.xen's: teardown removes it with its stand-in; the admin's port is only released
    proc = play(tmp_path, TEARDOWN, profile, "-e", "teardown_remove_networks=true")
    assert proc.returncode == 0, proc.stdout
    assert link(ADMIN) is None and link(STANDIN) is None
    assert link(PORT) is not None and link(PORT).get("master") is None


def test_a_created_bridge_is_marked_and_removable(n5):
    params = {"name": ADMIN, "netdev": STANDIN, "create_netdev": "veth", "persist": "none"}
    made = run_module("xen_bridge", params)
    assert not made.get("failed"), made.get("msg")
    assert seen(ADMIN)["ifalias"] == MARK and ports(ADMIN) == [STANDIN]
    again = run_module("xen_bridge", params)
    assert again["changed"] is False, again["actions"]
    gone = run_module("xen_bridge", {"name": ADMIN, "state": "absent", "persist": "none"})
    assert not gone.get("failed"), gone.get("msg")
    assert link(ADMIN) is None and link(STANDIN) is None


def test_libvirts_bridge_names_are_refused(n5):
    conn = libvirt.open(URI)
    try:
        conn.networkDefineXML(
            f"<network><name>{FOREIGN}</name><bridge name='{FOREIGN_BRIDGE}'/>"
            "<ip address='10.213.206.1' prefix='24'/></network>"
        )  # inactive, not lcfg.xen's
        n5.network(FOREIGN)
        for name, owner in ((FOREIGN_BRIDGE, f"libvirt network {FOREIGN}"), ("virbr9", "libvirt, docker")):
            for check in (True, False):
                result = run_module("xen_bridge", {"name": name, "persist": "none"}, check=check)
                assert result.get("failed") and owner in result["msg"] and "adopt" in result["msg"], result
                assert link(name) is None
        # the network it belongs to still starts
        conn.networkLookupByName(FOREIGN).create()
        assert seen(FOREIGN_BRIDGE) is not None
    finally:
        conn.close()


def test_a_networks_kind_is_not_changed_in_place(n5):
    n5.network(NAT)
    made = run_module("xen_bridge", {"name": NAT, "mode": "nat", "address": "10.213.205.254/24"})
    assert not made.get("failed"), made.get("msg")
    conn = libvirt.open(URI)
    try:
        net = conn.networkLookupByName(NAT)
        before = net.XMLDesc(0), net.XMLDesc(libvirt.VIR_NETWORK_XML_INACTIVE)
        for adopt in (False, True):
            for check in (True, False):
                result = run_module(
                    "xen_bridge",
                    {"name": NAT, "mode": "route", "adopt": adopt, "address": "10.213.205.254/24"},
                    check=check,
                )
                assert result.get("failed"), result
                assert result["msg"].startswith(f"mode: libvirt network {NAT} is a nat network")
                assert "state: absent" in result["msg"]
                assert (net.XMLDesc(0), net.XMLDesc(libvirt.VIR_NETWORK_XML_INACTIVE)) == before
    finally:
        conn.close()
    gone = run_module("xen_bridge", {"name": NAT, "mode": "nat", "state": "absent"})
    assert not gone.get("failed"), gone.get("msg")


def test_role_refuses_profiles_giving_one_network_two_kinds(tmp_path, n5):
    n5.network(NAT)
    hosts = {
        HV + "a": hypervisor(nat_network=True),
        HV + "b": hypervisor(route_network=True, route_network_name=NAT, route_address="10.213.207.254/24"),
    }
    for args in (("--check",), ()):
        proc = play(tmp_path, "role", hosts, *args)
        assert proc.returncode != 0, proc.stdout
        assert (
            f"libvirt network {NAT} is a nat network in the profile of {HV}a but a route network in "
            f"the profile of {HV}b"
        ) in proc.stdout
        assert (
            f"libvirt network {NAT} is a route network in the profile of {HV}b but a nat network in "
            f"the profile of {HV}a"
        ) in proc.stdout
        assert virsh("net-info", NAT, check=False) == ""
