"""Red-team findings on the network role and xen_bridge, reproduced on the real host:

* a profile's ``xen.bridgenetdev_$`` enslaved a host interface the play never named (F9);
* a profile's network name redefined a libvirt network lcfg.xen did not create (F7);
* a guest name with ``_`` or a 64-character label broke the NAT reservations (F6).

Host interfaces are veth pairs with one end in a network namespace; every object is named
``lcfgt-netfix-`` and removed afterwards. What the host holds is read back with ``ip -j`` and
libvirt (XMLDesc, dnsmasq's hostsfile).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.lcfg.xen.plugins.module_utils.network.owner import NETWORK_STATE_FILE
from integration.test_xen_bridge import URI, converge, dnsmasq_hosts, sh, virsh
from support import run_module, run_playbook

libvirt = pytest.importorskip("libvirt")

pytestmark = pytest.mark.integration

PREFIX = "lcfgt-netfix-"
NS = PREFIX + "ns"
PORT = PREFIX + "pe"  # the "host NIC": 15 characters, the kernel's limit
PEER = PREFIX + "pp"
BRIDGE = PREFIX + "b"
FOREIGN = PREFIX + "foreign"
NAT = PREFIX + "nat"
HV = PREFIX + "hv"
GUEST = "lcfgt_netfix_node"  # a valid guest name, not a valid DNS host name
FOREIGN_XML = (
    f"<network><name>{FOREIGN}</name><forward mode='nat'/>"
    "<ip address='10.213.191.1' prefix='24'><dhcp><range start='10.213.191.100' "
    "end='10.213.191.200'/></dhcp></ip></network>"
)


def link_record(name: str) -> dict | None:
    proc = sh("ip", "-j", "-d", "link", "show", "dev", name, check=False)
    return json.loads(proc.stdout)[0] if proc.returncode == 0 else None


def owned() -> dict:
    path = Path(NETWORK_STATE_FILE)
    return json.loads(path.read_text())["networks"] if path.exists() else {}


@pytest.fixture
def netfix():
    """Removes every lcfgt-netfix- namespace, link and libvirt network the test made."""
    made: dict = {"networks": []}
    yield made
    for name in made["networks"]:
        virsh("net-destroy", name, check=False)
        virsh("net-undefine", name, check=False)
    for name in (BRIDGE, PORT):
        sh("ip", "link", "del", name, check=False)
    sh("ip", "netns", "del", NS, check=False)


def network_host(**over) -> dict:
    host = {
        "bridge_network": False,
        "bridges": [],
        "custom_bridge": None,
        "nat_network": False,
        "route_network": False,
        "nat_network_name": NAT,
        "nat_address": "10.213.192.254/24",
        "nat_dhcp_hosts": [],
        "guests": [],
    }
    host.update(over)
    return host


def role_run(tmp_path: Path, host: dict, *args: str, guests: tuple = (), **role_vars) -> subprocess.CompletedProcess:
    """The network role on this machine for one hypervisor whose xen_host is ``host``."""
    hv = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "network_host": host,
        "network_persist": "none",
        **role_vars,
    }
    inventory = {
        "all": {
            "children": {"xen_hypervisors": {"hosts": {HV: hv}}},
            "hosts": {guest: {"xen_domain": {"name": guest}} for guest in guests},
        }
    }
    (tmp_path / "inv.yml").write_text(json.dumps(inventory))
    (tmp_path / "play.yml").write_text(
        json.dumps([{"hosts": HV, "gather_facts": False, "roles": ["lcfg.xen.network"]}])
    )
    return run_playbook(tmp_path / "play.yml", *args, inventory=tmp_path / "inv.yml")


# --------------------------------------------------------------------------- F9


def test_role_enslaves_a_host_interface_only_when_the_play_lists_it(tmp_path, netfix):
    sh("ip", "netns", "add", NS)
    sh("ip", "link", "add", PORT, "type", "veth", "peer", "name", PEER)
    sh("ip", "link", "set", PEER, "netns", NS)
    host = network_host(
        bridge_network=True, bridges=[{"tag": "eth7", "netdev": PORT, "bridge": BRIDGE, "device": BRIDGE, "vifnum": 7}]
    )
    before = link_record(PORT)

    for args in (("--check",), ()):
        proc = role_run(tmp_path, host, *args)
        assert proc.returncode != 0, proc.stdout
        assert f"xen.bridgenetdev_eth7 of {HV} names the host interface {PORT}" in proc.stdout
        assert "network_netdevs" in proc.stdout
        assert link_record(PORT) == before  # not enslaved, not brought up
        assert link_record(BRIDGE) is None  # and no bridge made

    proc = role_run(tmp_path, host, network_netdevs={PORT: PORT})  # the play allows it as it is
    assert proc.returncode == 0, proc.stdout
    assert link_record(PORT)["master"] == BRIDGE
    assert link_record(BRIDGE)["linkinfo"]["info_kind"] == "bridge"


# --------------------------------------------------------------------------- F7


@pytest.fixture
def foreign(netfix):
    """A NAT network defined directly through libvirt, running: not lcfg.xen's."""
    conn = libvirt.open(URI)
    net = conn.networkDefineXML(FOREIGN_XML)
    netfix["networks"].append(FOREIGN)
    net.create()
    yield net
    conn.close()


def snapshot(net) -> tuple:
    return net.XMLDesc(0), net.XMLDesc(libvirt.VIR_NETWORK_XML_INACTIVE), net.autostart(), net.isActive()


def test_foreign_network_is_left_alone_unless_adopted(foreign):
    before = snapshot(foreign)
    uuid = foreign.UUIDString()
    params = {
        "name": FOREIGN,
        "mode": "nat",
        "address": "10.213.191.254/24",
        "dhcp_hosts": [{"mac": "52:54:00:4e:46:01", "ip": "10.213.191.10", "name": "lcfgt-netfix-g"}],
    }
    for request in (params, {"name": FOREIGN, "mode": "nat", "state": "absent"}):
        for check in (True, False):
            result = run_module("xen_bridge", request, check=check)
            assert result.get("failed"), result
            assert f"libvirt network {FOREIGN} (uuid {uuid}) was not created by lcfg.xen" in result["msg"]
            assert "adopt: true" in result["msg"] and "network_adopt" in result["msg"]
            assert snapshot(foreign) == before
    assert uuid not in owned()

    adopted = run_module("xen_bridge", dict(params, adopt=True, restart=True))
    assert not adopted.get("failed"), adopted.get("msg")
    inactive = foreign.XMLDesc(libvirt.VIR_NETWORK_XML_INACTIVE)
    assert "10.213.191.254" in inactive and "52:54:00:4e:46:01" in inactive
    assert owned()[uuid] == FOREIGN
    assert stat.S_IMODE(os.stat(NETWORK_STATE_FILE).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(NETWORK_STATE_FILE)).st_mode) == 0o700

    # recorded: later runs change it without adopt, and removing it forgets it
    moved = dict(params, dhcp_hosts=[{"mac": "52:54:00:4e:46:01", "ip": "10.213.191.11"}])
    assert converge(moved)[1]["changed"]
    removed = run_module("xen_bridge", {"name": FOREIGN, "mode": "nat", "state": "absent"})
    assert not removed.get("failed"), removed.get("msg")
    assert virsh("net-info", FOREIGN, check=False) == ""
    assert uuid not in owned()


def test_role_refuses_a_profile_naming_a_foreign_network(tmp_path, foreign):
    before = snapshot(foreign)
    host = network_host(nat_network=True, nat_network_name=FOREIGN, nat_address="10.213.191.254/24")
    for args in (("--check",), ()):
        proc = role_run(tmp_path, host, *args)
        assert proc.returncode != 0, proc.stdout
        assert f"libvirt network {FOREIGN}" in proc.stdout and "network_adopt" in proc.stdout
        assert snapshot(foreign) == before

    proc = role_run(tmp_path, host, network_adopt=[FOREIGN])
    assert proc.returncode == 0, proc.stdout
    assert "10.213.191.254" in foreign.XMLDesc(libvirt.VIR_NETWORK_XML_INACTIVE)
    proc = role_run(tmp_path, host)  # adopted once: recorded
    assert proc.returncode == 0 and "changed=0" in proc.stdout, proc.stdout


# --------------------------------------------------------------------------- F6


def test_role_reserves_guests_whose_names_are_not_host_names(tmp_path, netfix):
    netfix["networks"].append(NAT)
    long_label = "g" * 64
    reservations = [
        {"mac": "52:54:00:4e:46:11", "ip": "10.213.192.11", "name": GUEST},
        {"mac": "52:54:00:4e:46:12", "ip": "10.213.192.12", "name": long_label},
        {"mac": "52:54:00:4e:46:13", "ip": "10.213.192.13", "name": "lcfgt-netfix-ok"},
    ]
    host = network_host(nat_network=True, nat_dhcp_hosts=reservations, guests=[GUEST, long_label, "lcfgt-netfix-ok"])
    proc = role_run(tmp_path, host, guests=(GUEST, long_label, "lcfgt-netfix-ok"))
    assert proc.returncode == 0, proc.stdout
    assert dnsmasq_hosts(NAT) == sorted(
        [
            "52:54:00:4e:46:11,10.213.192.11",
            "52:54:00:4e:46:12,10.213.192.12",
            "52:54:00:4e:46:13,10.213.192.13,lcfgt-netfix-ok",
        ]
    )
    proc = role_run(tmp_path, host, guests=(GUEST, long_label, "lcfgt-netfix-ok"))
    assert proc.returncode == 0 and "changed=0" in proc.stdout, proc.stdout

    # what is not even a guest name still never reaches dnsmasq's hostsfile
    bad = run_module(
        "xen_bridge",
        {
            "name": NAT,
            "mode": "nat",
            "dhcp_hosts": [{"mac": "52:54:00:4e:46:14", "ip": "10.213.192.14", "name": "x,set:evil"}],
        },
    )
    assert bad.get("failed") and "dhcp_hosts[0].name" in bad["msg"]
    assert len(dnsmasq_hosts(NAT)) == 3
