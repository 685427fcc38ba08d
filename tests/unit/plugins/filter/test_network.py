"""Unit tests of the network filters (plugins/filter/network.py): the xen_bridge items the
network role and the teardown playbook pass, and the profiles sharing one machine."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.lcfg.xen.plugins.filter.network import (
    FilterModule,
    network_dhcp_hosts,
    network_items,
    network_kind_clashes,
    network_nat_other_addresses,
    network_nat_sharing,
    network_peers,
)


def host(**over) -> dict:
    """A xen_host as the model gives it: one bridge on a derived device, one with a NIC, NAT on."""
    settings = {
        "bridge_network": True,
        "nat_network": True,
        "route_network": False,
        "custom_bridge": None,
        "custom_bridge_device": None,
        "bridges": [
            {"tag": "eth0", "netdev": None, "bridge": "xenbr0", "vifnum": 0, "device": "xenbr0"},
            {"tag": "eth1", "netdev": "eth1", "bridge": "my-network-bridge", "vifnum": 1, "device": "my-networ-1a2b3"},
        ],
        "nat_network_name": "lcfg-nat",
        "nat_address": "10.0.0.254/24",
        "route_network_name": "lcfg-route",
        "route_address": None,
    }
    settings.update(over)
    return settings


def test_the_role_items_bridges_custom_bridge_nat_route_in_order():
    items = network_items(
        host(custom_bridge="cbr", route_network=True, route_address="10.1.0.254/24"),
        netdevs={"eth1": "eth1"},
        adopt=["lcfg-nat"],
        dhcp_hosts=[{"mac": "m", "ip": "i", "name": "n"}],
    )
    assert items == [
        {
            "name": "xenbr0",
            "mode": "bridge",
            "netdev": "lcfg-eth0",
            "create_netdev": "veth",
            "persist": "none",
            "adopt": False,
        },
        {
            "name": "my-network-bridge",
            "bridge": "my-networ-1a2b3",
            "libvirt_network": True,
            "mode": "bridge",
            "netdev": "eth1",
            "persist": "auto",
            "adopt": False,
        },
        {"name": "cbr", "mode": "bridge", "persist": "none", "adopt": False},
        {
            "name": "lcfg-nat",
            "mode": "nat",
            "address": "10.0.0.254/24",
            "dhcp_hosts": [{"mac": "m", "ip": "i", "name": "n"}],
            "adopt": True,
        },
        {"name": "lcfg-route", "mode": "route", "address": "10.1.0.254/24", "adopt": False},
    ]


def test_a_hand_written_host_without_devices():
    """The role's network_host may be written by hand (molecule): no device keys."""
    written = {
        "bridge_network": True,
        "nat_network": False,
        "custom_bridge": "lcfgmolcbr",
        "bridges": [{"tag": "e0", "netdev": None, "bridge": "lcfgmolbr0", "vifnum": 0}],
    }
    assert network_items(written, standin_prefix="lcfgmol-") == [
        {
            "name": "lcfgmolbr0",
            "mode": "bridge",
            "netdev": "lcfgmol-e0",
            "create_netdev": "veth",
            "persist": "none",
            "adopt": False,
        },
        {"name": "lcfgmolcbr", "mode": "bridge", "persist": "none", "adopt": False},
    ]


def test_ports_persistence_and_address_migration():
    items = network_items(
        host(nat_network=False),
        netdevs={"eth1": "lcfg-eth1"},
        netdevs_create="dummy",
        standin="none",
        migrate_address=True,
        persist="networkd",
    )
    assert items[0] == {"name": "xenbr0", "mode": "bridge", "persist": "none", "adopt": False}
    assert items[1]["netdev"] == "lcfg-eth1"
    assert items[1]["create_netdev"] == "dummy" and items[1]["persist"] == "none"
    assert items[1]["migrate_address"] is True
    kept = network_items(host(nat_network=False), netdevs={"eth1": "eth1"}, standin="none", persist="networkd")
    assert kept[1]["persist"] == "networkd" and "create_netdev" not in kept[1]


def test_what_the_play_does_not_manage_is_left_out():
    assert network_items(host(custom_bridge="cbr"), bridges=False, custom_bridge=False, nat=False) == []
    assert network_items(host(bridge_network=False, nat_network=False)) == []
    # a routed network without an address is not converged
    assert network_items(host(bridge_network=False, nat_network=False, route_network=True)) == []
    # no dhcp_hosts: the NAT item has none (network_nat_dhcp false)
    assert "dhcp_hosts" not in network_items(host(bridge_network=False))[0]


def test_teardown_items():
    items = network_items(host(custom_bridge="cbr", route_network=True), state="absent", adopt=["xenbr0"])
    assert items == [
        {"name": "xenbr0", "state": "absent", "adopt": True},
        {
            "name": "my-network-bridge",
            "bridge": "my-networ-1a2b3",
            "libvirt_network": True,
            "state": "absent",
            "adopt": False,
        },
        {"name": "cbr", "state": "absent", "adopt": False},
        {"name": "lcfg-nat", "mode": "nat", "state": "absent", "adopt": False},
        {"name": "lcfg-route", "mode": "route", "state": "absent", "adopt": False},
    ]


def test_bad_input():
    with pytest.raises(AnsibleFilterError, match="xen_host"):
        network_items("xenbr0")
    with pytest.raises(AnsibleFilterError, match="present or absent"):
        network_items(host(), state="gone")


def test_peers_are_the_other_profiles_of_the_machine_in_group_order():
    hostvars = {
        "a": {"ansible_connection": "local", "xen_host": host()},
        "b": {"ansible_host": "10.9.9.9", "xen_host": host()},
        "c": {"ansible_connection": "local"},  # no xen_host
        "d": {"ansible_connection": "local", "xen_host": host(nat_network_name="other")},
        "e": {"xen_host": host()},  # its machine is its name
    }
    assert list(network_peers(["d", "a", "b", "c", "e"], hostvars, "localhost", "a")) == ["d"]
    assert list(network_peers(["a", "b", "e"], hostvars, "10.9.9.9", "a")) == ["b"]
    assert list(network_peers(["a", "b", "e"], hostvars, "e", "a")) == ["e"]


def test_kind_clashes_name_both_profiles():
    mine = host(bridge_network=False)
    peers = {
        "hv2": host(bridge_network=False, nat_network=False, route_network=True, route_network_name="lcfg-nat"),
        "hv3": host(bridge_network=False),
    }
    assert network_kind_clashes(mine, "hv1", peers) == [
        "libvirt network lcfg-nat is a nat network in the profile of hv1 but a route network in the profile of "
        "hv2 on the same machine: one name is one network; give one of them another name (xen.natnetwork, "
        "xen.routenetwork or the bridge)"
    ]
    # a bridge is a libvirt network (of kind bridge) only on a derived device
    derived = {"hv2": host(nat_network=False, route_network=True, route_network_name="my-network-bridge")}
    assert "my-network-bridge is a bridge network" in network_kind_clashes(host(), "hv1", derived)[0]
    plain = {"hv2": host(nat_network=False, route_network=True, route_network_name="xenbr0")}
    assert network_kind_clashes(host(), "hv1", plain) == []


def _reservation(mac: str, name: str) -> dict:
    return {"mac": mac, "ip": f"10.0.0.{int(mac[-2:], 16)}", "name": name}


def sharing_peers() -> dict:
    """hv2 and hv4 share lcfg-nat (hv4 with another address), hv3's NAT network is off, hv5's is another."""
    return {
        "hv2": host(nat_dhcp_hosts=[_reservation("00:16:3e:00:00:05", "g5"), _reservation("00:16:3e:00:00:01", "g1")]),
        "hv3": host(nat_network=False, nat_dhcp_hosts=[_reservation("00:16:3e:00:00:09", "g9")]),
        "hv4": host(nat_address="10.0.1.254/24", nat_dhcp_hosts=[_reservation("00:16:3e:00:00:02", "g2")]),
        "hv5": host(nat_network_name="other", nat_address="10.0.2.254/24"),
    }


def test_nat_sharing_is_the_peers_with_the_same_nat_network_in_order():
    assert network_nat_sharing(host(), sharing_peers()) == ["hv2", "hv4"]
    assert network_nat_sharing(host(nat_network_name="other"), sharing_peers()) == ["hv5"]
    assert network_nat_sharing(host(), {}) == []


def test_nat_other_addresses_are_those_of_the_sharing_peers_but_this_ones_once():
    peers = sharing_peers()
    assert network_nat_other_addresses(host(), peers) == ["10.0.1.254/24"]
    peers["hv6"] = host(nat_address="10.0.1.254/24")
    assert network_nat_other_addresses(host(nat_address="10.0.1.254/24"), peers) == ["10.0.0.254/24"]
    assert network_nat_other_addresses(host(), {"hv2": host()}) == []
    # compared ignoring case, first occurrence kept (as Ansible's unique filter)
    assert network_nat_other_addresses(
        host(), {"a": host(nat_address="fd00::A/64"), "b": host(nat_address="fd00::a/64")}
    ) == ["fd00::A/64"]


def test_dhcp_hosts_merge_this_hosts_guests_with_the_sharing_peers_sorted_by_mac():
    mine = host(
        nat_dhcp_hosts=[
            _reservation("00:16:3e:00:00:04", "g4"),
            _reservation("00:16:3e:00:00:03", "g3"),
            _reservation("00:16:3e:00:00:01", "g1"),
        ]
    )
    hostvars = {"guest4": {"xen_domain": {"name": "g4"}}, "guest1": {"xen_domain": {"name": "g1"}}, "plain": {}}
    got = network_dhcp_hosts(mine, sharing_peers(), ["guest4", "guest1"], hostvars)
    # g3 is not one of network_guests; g1 (also hv2's) once; hv3 (NAT off) and hv5 (another network) left out
    assert [item["name"] for item in got] == ["g1", "g2", "g4", "g5"]
    assert got[0] == _reservation("00:16:3e:00:00:01", "g1")
    assert network_dhcp_hosts(host(), {}, [], {}) == []
    assert network_dhcp_hosts(host(nat_dhcp_hosts=None), {}, ["guest1"], hostvars) == []
    with pytest.raises(AnsibleFilterError, match="guest plain has no xen_domain"):
        network_dhcp_hosts(mine, {}, ["guest1", "plain"], hostvars)


def test_filter_names():
    assert set(FilterModule().filters()) == {
        "network_items",
        "network_peers",
        "network_kind_clashes",
        "network_nat_sharing",
        "network_nat_other_addresses",
        "network_dhcp_hosts",
    }
