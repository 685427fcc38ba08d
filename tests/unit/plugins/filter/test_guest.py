"""Unit tests of the guest filters (plugins/filter/guest.py): the xen_disk and xen_guests
items of the guest role and the teardown playbook, and the summary table."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.lcfg.xen.plugins.filter.guest import (
    FilterModule,
    guest_container_templates,
    guest_disks,
    guest_items,
    guest_removals,
    guest_summary,
    guest_templates,
)


def spec(name: str = "web", **over) -> dict:
    """A guest spec as the model gives it (xen_domain): a root image, a data image, a block device."""
    guest = {
        "name": name,
        "autostart": True,
        "template": "/guests/base.img",
        "profile_url": "http://lcfg/p",
        "partition": 2,
        "disks": [
            {"tag": "root", "name": name, "type": "image", "size_gb": 8, "path": f"/guests/{name}.img", "format": None},
            {
                "tag": "data",
                "name": f"{name}-data",
                "type": "image",
                "size_gb": None,
                "path": f"/guests/{name}-data.img",
                "format": "raw",
            },
            {
                "tag": "lv",
                "name": f"{name}-lv",
                "type": "phy",
                "size_gb": None,
                "path": f"/dev/vg/{name}-lv",
                "format": None,
            },
        ],
        "vifs": [
            {
                "tag": "eth0",
                "mac": None,
                "ip": None,
                "nettype": "bridge",
                "bridge": "xenbr0",
                "script": "vif-bridge",
                "network": None,
            },
            {"tag": "eth1", "mac": None, "ip": None, "nettype": "nat", "bridge": None, "script": None, "network": None},
            {
                "tag": "eth2",
                "mac": None,
                "ip": None,
                "nettype": "route",
                "bridge": None,
                "script": None,
                "network": "mine",
            },
        ],
    }
    guest.update(over)
    return guest


def test_the_template_goes_into_the_first_disk_only():
    assert guest_disks([spec()], disk_format="qcow2") == [
        {
            "guest": "web",
            "tag": "root",
            "path": "/guests/web.img",
            "size_gb": 8,
            "kind": "vm",
            "image_format": None,
            "template": "/guests/base.img",
            "profile_url": "http://lcfg/p",
            "root_partition": 2,
            "hostname": "web",
        },
        {
            "guest": "web",
            "tag": "data",
            "path": "/guests/web-data.img",
            "size_gb": None,
            "kind": "vm",
            "image_format": "raw",
            "template": None,
            "profile_url": None,
            "root_partition": None,
            "hostname": None,
        },
    ]


def test_no_template_when_the_first_disk_is_a_block_device():
    first_phy = spec(disks=list(reversed(spec()["disks"])))
    items = guest_disks([first_phy], disk_format="raw")
    assert [i["tag"] for i in items] == ["data", "root"]
    assert all(i["template"] is None and i["profile_url"] is None for i in items)
    assert items[1]["image_format"] == "raw"  # a new image without a format gets the play's


def test_hand_written_specs():
    """The role's guest_specs may be written by hand (molecule): keys left out."""
    written = {"name": "g", "disks": [{"path": "/guests/g.img", "size_gb": 1}]}
    assert guest_disks([written]) == [
        {
            "guest": "g",
            "tag": "",
            "path": "/guests/g.img",
            "size_gb": 1,
            "kind": "vm",
            "image_format": "qcow2",
            "template": None,
            "profile_url": None,
            "root_partition": None,
            "hostname": None,
        }
    ]
    assert guest_items([written]) == [dict(written, state="present", vifs=[])]
    assert guest_disks([]) == [] and guest_items([]) == []


def test_states_and_vifs():
    networks = {"nat": "lcfg-nat", "route": "lcfg-route"}
    item = guest_items([spec()], networks=networks, vif_scripts=False)[0]
    assert item["state"] == "running"
    assert [v["script"] for v in item["vifs"]] == [None, None, None]
    assert [v["network"] for v in item["vifs"]] == [None, "lcfg-nat", "mine"]
    assert item["disks"] == spec()["disks"] and item["name"] == "web"
    xen = guest_items([spec(autostart=False)], networks=networks, vif_scripts=True, state_other="stopped")[0]
    assert xen["state"] == "stopped" and xen["vifs"][0]["script"] == "vif-bridge"
    held = guest_items([spec()], start_autostart=False)[0]
    assert held["state"] == "present" and held["vifs"][1]["network"] is None


def test_removals():
    assert guest_removals([spec("a"), spec("b")], shutdown_timeout="30", remove_disks=True) == [
        {"name": "a", "state": "absent", "force_stop": True, "shutdown_timeout": 30, "remove_disks": True},
        {"name": "b", "state": "absent", "force_stop": True, "shutdown_timeout": 30, "remove_disks": True},
    ]


def test_summary_table():
    guests = [
        {
            "name": "web",
            "state": "running",
            "autostart": True,
            "live": {"vcpus": 2},
            "memory_actual": 640,
            "vcpus_online": None,
            "config": {
                "memory": 512,
                "maxmem": 1024,
                "vcpus": 1,
                "vifs": [
                    {"tag": "eth0", "nettype": "bridge", "bridge": "my-networ-1a2b3"},
                    {"tag": "", "nettype": "nat", "network": "lcfg-nat"},
                ],
            },
        },
    ]
    # containers are read on their own connection, into a variable of their own
    containers = [
        {
            "name": "db",
            "state": "stopped",
            "autostart": False,
            "live": None,
            "config": {"type": "container", "memory": 256, "maxmem": 256, "vcpus": 1, "vifs": []},
        },
    ]
    hostvars = {
        "hv2": {
            "xen_host": {"guests": ["web", "db", "gone"], "bridge_devices": {"my-network-bridge": "my-networ-1a2b3"}},
            "summary_info": {"guests": guests},
            "summary_containers": {"guests": containers},
        },
        "hv1": {"xen_host": {"guests": []}},
    }
    assert guest_summary(hostvars, ["hv2", "hv1"], ["summary_info", "summary_containers"]).split("\n") == [
        "HYPERVISOR      GUEST             KIND      STATE      MiB ACTUAL   MAX VCPUS ONLINE BOOT  NETWORKS",
        "hv2             web               vm        running    512    640  1024     2      ? yes   "
        "eth0=my-network-bridge nat:lcfg-nat",
        "hv2             db                container stopped    256      -   256     1      - no    -",
        "hv2             gone              -         absent       -      -     -     -      - -     -",
        "3 guests, 1 running, 1 not at their memory target (ACTUAL != MiB)",
    ]


def test_filter_names():
    assert set(FilterModule().filters()) == {
        "guest_disks",
        "guest_container_templates",
        "guest_items",
        "guest_kind",
        "guest_removals",
        "guest_summary",
        "guest_templates",
    }


def test_templates_once_each_with_their_partition():
    specs = [
        {"name": "b", "template": "/g/t2.img", "partition": 3},
        {"name": "a", "template": "/g/t1.img", "partition": 5},
        {"name": "c", "template": "/g/t1.img", "partition": 5},
        {"name": "d", "template": "/g/t3.img"},
        {"name": "e"},
        {"name": "f", "template": None},
    ]
    assert guest_templates(specs) == [
        {"path": "/g/t1.img", "partition": 5, "partitions": [5], "guests": ["a", "c"]},
        {"path": "/g/t2.img", "partition": 3, "partitions": [3], "guests": ["b"]},
        {"path": "/g/t3.img", "partition": 5, "partitions": [5], "guests": ["d"]},
    ]
    assert guest_templates(specs[3:], partition=2)[0]["partition"] == 2
    assert guest_templates(None) == []


def test_templates_with_clashing_partitions_list_them_all():
    specs = [
        {"name": "a", "template": "/g/t.img", "partition": 5},
        {"name": "b", "template": "/g/t.img", "partition": 2},
    ]
    (item,) = guest_templates(specs)
    assert item["partitions"] == [5, 2] and item["guests"] == ["a", "b"]


def test_guest_items_of_one_kind():
    specs = [{"name": "vm1", "type": "hvm"}, {"name": "ct1", "type": "container"}, {"name": "vm2"}]
    assert [g["name"] for g in guest_items(specs, kind="vm")] == ["vm1", "vm2"]
    assert [g["name"] for g in guest_items(specs, kind="container")] == ["ct1"]
    assert [g["name"] for g in guest_items(specs)] == ["vm1", "ct1", "vm2"]
    with pytest.raises(AnsibleFilterError, match="unknown kind"):
        guest_items(specs, kind="vz")


def test_container_templates_are_checked_not_built():
    specs = [
        {"name": "ct1", "type": "container", "template": "/t/ct.img"},
        {"name": "ct2", "type": "lxc", "template": "/t/ct.img"},
        {"name": "ct3", "type": "container"},
        {"name": "vm", "template": "/t/vm.img"},
        {"name": "bare"},
    ]
    assert guest_container_templates(specs) == ["/t/ct.img"]


def test_container_templates_are_not_built_empty():
    specs = [{"name": "ct1", "type": "container", "template": "/t/ct.img"}, {"name": "vm", "template": "/t/vm.img"}]
    assert [t["path"] for t in guest_templates(specs)] == ["/t/vm.img"]
