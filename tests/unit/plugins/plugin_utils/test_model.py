"""Unit tests of the xen component model (plugins/plugin_utils/model.py).

The example profiles (tests/fixtures/profiles) are read with the real source/XML readers; the validation
cases use profiles built by hand, one resource per line of a pretend file, so that every
error can be checked for its file, line and resource.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ansible_collections.lcfg.xen.plugins.module_utils.common.confinement import DEFAULT_STORAGE_DIRS
from ansible_collections.lcfg.xen.plugins.module_utils.common.host_access import HostAccess
from ansible_collections.lcfg.xen.plugins.plugin_utils import model as _model
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.errors import LcfgError
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.profile import Profile, Resource
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.source import read_source_profile
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.xml import read_xml_profile
from ansible_collections.lcfg.xen.plugins.plugin_utils.model import (
    DOMAIN_KEYS,
    BuiltProfile,
    ModelErrors,
    build_host,
    build_profile,
    build_site,
)
from support import PROFILES

REPO = Path(__file__).resolve().parents[4]
INCLUDE = str(PROFILES / "include")


def make(
    resources: list[tuple[str, str]] | dict[str, str], name: str = "h1", path: str = "/site/h1", xen: bool = True
) -> Profile:
    """A profile whose n-th xen resource was set at ``path:n`` (line 1 is profile.components)."""
    items = list(resources.items()) if isinstance(resources, dict) else list(resources)
    prof = Profile(name=name, path=path)
    prof.resources["profile"] = {"components": Resource("client xen" if xen else "client", f"{path}:1")}
    table = prof.resources.setdefault("xen", {})
    for line, (res, value) in enumerate(items, start=2):
        old = table.get(res)
        table[res] = Resource(value, (old.derivation + " " if old else "") + f"{path}:{line}")
    return prof


def line_of(resources: list[tuple[str, str]], res: str) -> int:
    names = [r for r, _value in resources]
    return len(names) - 1 - names[::-1].index(res) + 2  # the last statement setting it


GUEST = [("virtualmachines", "vm1"), ("memory_vm1", "256"), ("maxmem_vm1", "512")]


def errors_of(resources: list[tuple[str, str]]) -> list[LcfgError]:
    with pytest.raises(ModelErrors) as info:
        build_host(make(resources))
    return info.value.errors


def one_error(resources: list[tuple[str, str]], res: str, pattern: str) -> LcfgError:
    errors = errors_of(resources)
    matching = [e for e in errors if e.resource == f"xen.{res}"]
    assert matching, f"no error for xen.{res} among {[str(e) for e in errors]}"
    err = matching[0]
    assert (err.file, err.line) == ("/site/h1", line_of(resources, res))
    assert re.search(pattern, err.problem), err.problem
    assert str(err).startswith(f"/site/h1:{line_of(resources, res)}: xen.{res}: ")
    return err


# ---------------------------------------------------------------- shared profiles


def _source(rel: str):
    return read_source_profile(str(PROFILES / rel), include_path=[INCLUDE])


def _xml(rel: str):
    return read_xml_profile(str(PROFILES / rel))


def check_single(model: _model.HostModel) -> None:
    assert model.is_hypervisor
    assert list(model.guests) == ["profiledev"]
    g = model.guests["profiledev"]
    assert set(g) == set(DOMAIN_KEYS)
    assert (g["type"], g["memory"], g["maxmem"], g["vcpus"], g["maxvcpus"]) == ("hvm", 256, 512, 1, 1)
    assert g["uuid"] == "bbdda922-8ee3-4ff8-874e-7c4e712dc4c7"
    assert g["disks"] == [
        {
            "tag": "root",
            "name": "profiledev",
            "type": "image",
            "size_gb": 12,
            "path": "/guests/profiledev.img",
            "format": None,
        }
    ]
    assert [v["mac"] for v in g["vifs"]] == ["00:15:17:96:40:03"]
    assert g["vifs"][0]["nettype"] == "bridge" and g["vifs"][0]["bridge"] is None
    assert g["template"] == "/guests/lcfg_temp.img"
    assert g["profile_url"] == "http://lcfg.ucs.ed.ac.uk/profiles/epcc.ed.ac.uk/"
    assert g["partition"] == 5
    assert g["autostart"] is False
    assert g["cpus"] is None and g["groups"] == []
    assert model.xen_host["bridge_network"] is True
    assert model.xen_host["nat_network"] is False
    assert model.xen_host["guests"] == ["profiledev"]


def test_xen_single_source():
    model = build_host(_source("source/xen-single"))
    check_single(model)
    assert model.warnings == []


def test_xen_single_seed_variant_per_guest_disk_resources():
    model = build_host(_source("variants/xen-single-seed"))
    check_single(model)


def test_xen_single_xml():
    model = build_host(_xml("xml/xen-single.xml"))
    check_single(model)
    assert model.warnings == []


def test_xen_cluster():
    model = build_host(_source("source/xen-cluster"))
    assert list(model.guests) == [f"node{n}" for n in range(1, 9)]
    for n in range(1, 9):
        g = model.guests[f"node{n}"]
        assert (g["type"], g["memory"], g["maxmem"], g["vcpus"]) == ("pv", 1930, 1930, 4)
        assert g["cpus"] == ("0,1,2,3" if n <= 4 else "4,5,6,7")
        assert [(v["nettype"], v["ip"]) for v in g["vifs"]] == [("nat", f"10.0.0.{n}")]
        assert g["autostart"] is False
        assert g["disks"][0]["path"] == f"/data/guests/node{n}.img"
        assert g["disks"][0]["size_gb"] == 20
    assert model.xen_host["nat_network"] is True
    assert model.xen_host["bridge_network"] is False


def test_xen_groups():
    model = build_host(_source("source/xen-groups"))
    assert list(model.guests) == [f"gnode{n}" for n in range(1, 9)]
    assert model.groups == {
        "cluster1": ["gnode1", "gnode2", "gnode3"],
        "cluster2": ["gnode4", "gnode5"],
        "cluster3": ["gnode6", "gnode7", "gnode8"],
    }
    for n in (1, 2, 3):
        g = model.guests[f"gnode{n}"]
        assert (g["memory"], g["maxmem"], g["vcpus"], g["cpus"]) == (1024, 2048, 4, "3")
        assert [v["bridge"] for v in g["vifs"]] == ["xenbr0"]
        assert g["groups"] == ["cluster1"]
    for n in (4, 5):
        g = model.guests[f"gnode{n}"]
        assert (g["vcpus"], g["cpus"]) == (2, "2")
        assert [v["bridge"] for v in g["vifs"]] == ["xenbr1"]
    for n in (6, 7, 8):
        g = model.guests[f"gnode{n}"]
        assert g["cpus"] == "2"
        assert [(v["nettype"], v["script"]) for v in g["vifs"]] == [("nat", "vif-nat")]
        assert g["groups"] == ["cluster3"]
    assert model.xen_host["groups"]["cluster1"] == {
        "members": ["gnode1", "gnode2", "gnode3"],
        "memory": 1024,
        "maxmem": 2048,
        "vcpus": 4,
        "maxvcpus": None,
        "cpus": "3",
        "bridge": "xenbr0",
        "nettype": None,
        "script": None,
    }
    # cluster3's NAT members carry 10.0.1.x, outside the default NAT subnet: no reservation
    assert [re.sub(r"^.*?: xen\.", "", w)[:36] for w in model.warnings] == [
        f"ip_gnode{n}_vif1: NAT address 10.0.1.{n}" for n in (6, 7, 8)
    ]
    assert model.xen_host["nat_dhcp_hosts"] == []


def test_xen_networks():
    model = build_host(_source("source/xen-networks"))
    host = model.xen_host
    assert host["bridges"] == [
        {"tag": "eth0", "netdev": "eth0", "bridge": "xenbr0", "vifnum": 0, "device": "xenbr0"},
        {"tag": "eth1", "netdev": "eth1", "bridge": "xenbr1", "vifnum": 1, "device": "xenbr1"},
        {"tag": "eth2", "netdev": "eth2", "bridge": "xenbr2", "vifnum": 2, "device": "xenbr2"},
    ]
    assert host["custom_bridge"] == "my-network-bridge"
    # 17 characters: guests attach to the derived Linux device (stable, at most 15 characters)
    assert host["custom_bridge_device"] == _model.bridge_device_name("my-network-bridge")
    assert re.fullmatch(r"my-networ-[0-9a-f]{5}", host["custom_bridge_device"])
    assert host["default_bridge"] == host["custom_bridge_device"]
    assert host["nat_network"] is True and host["bridge_network"] is True
    assert model.guests == {}


def test_all_of_source_is_one_site_of_17_guests():
    profiles = [_source(f"source/{p.name}") for p in sorted((PROFILES / "source").iterdir())]
    site = build_site(profiles)
    assert site.rejected == {}
    assert sum(len(h.guests) for h in site.hosts.values()) == 17
    assert list(site.hosts) == ["xen-cluster", "xen-groups", "xen-networks", "xen-single"]


def test_example_site_in_inventory_loads():
    inc = [str(REPO / "lcfg" / "include")]
    profiles = [read_source_profile(str(p), include_path=inc) for p in sorted((REPO / "lcfg" / "profiles").iterdir())]
    # demo-single's container is refused unless the play allows containers (the site's config does)
    refused = build_site(profiles).rejected
    assert list(refused) == ["demo-single"] and "type_ct1" in str(refused["demo-single"])
    assert "allow_containers" in str(refused["demo-single"])
    site = build_site(profiles, HostAccess(storage_dirs=tuple(DEFAULT_STORAGE_DIRS), allow_containers=True))
    assert site.rejected == {} and site.warnings == []
    guests = [g for h in site.hosts.values() for g in h.guests.values()]
    assert len(guests) >= 8
    for g in guests:
        assert 64 <= g["memory"] <= g["maxmem"] <= 256
        assert all(d["path"].startswith("/var/lib/lcfg-xen/guests/") for d in g["disks"])
        # a container's root filesystem is its template's size; a VM's disk is 1 GiB
        assert all(d["size_gb"] == (None if g["type"] == "container" else 1) for d in g["disks"])
    assert [g["name"] for g in guests if g["type"] == "container"] == ["demo-ct1"]
    started = [g["name"] for g in guests if g["autostart"]]
    assert 1 <= len(started) <= 4
    groups = site.hosts["demo-groups"].groups
    assert set(groups) == {"cluster1", "cluster2", "cluster3"}


# ---------------------------------------------------------------- defaults and shape


def test_defaults_for_a_bare_guest():
    model = build_host(make([("virtualmachines", "vm1")]))
    g = model.guests["vm1"]
    assert list(g) == list(DOMAIN_KEYS)
    assert g == {
        "name": "vm1",
        "uuid": None,
        "type": "pv",
        "memory": 512,
        "maxmem": 512,
        "vcpus": 1,
        "maxvcpus": 1,
        "cpus": None,
        "autostart": False,
        "disks": [],
        "vifs": [],
        "template": None,
        "profile_url": None,
        "partition": None,
        "groups": [],
        "kernel": None,
        "ramdisk": None,
        "cmdline": None,
        "bootloader": None,
        "boot_order": None,
        "firmware": "bios",
        "cdrom": None,
        "extra": None,
    }


@pytest.mark.parametrize(
    "given, expected",
    [
        ([("memory_vm1", "300")], (300, 300)),
        ([("maxmem_vm1", "700")], (700, 700)),
        ([("memory_vm1", "100"), ("maxmem_vm1", "200")], (100, 200)),
    ],
)
def test_missing_memory_equals_the_other(given, expected):
    g = build_host(make([("virtualmachines", "vm1")] + given)).guests["vm1"]
    assert (g["memory"], g["maxmem"]) == expected


def test_our_resources_kernel_extra_maxvcpus_and_disk_format():
    res = [
        ("virtualmachines", "vm1"),
        ("vcpus_vm1", "2"),
        ("maxvcpus_vm1", "4"),
        ("kernel_vm1", "/var/lib/xen/images/vmlinuz"),
        ("ramdisk_vm1", "/var/lib/xen/images/initrd.img"),
        ("cmdline_vm1", "--args=root=/dev/xvda1"),
        ("bootloader_vm1", "pygrub"),
        ("extra_vm1", "<features><acpi/></features>"),
        ("type_vm1", "PVH"),
        ("disks_vm1", "root"),
        ("diskformat_vm1_root", "qcow2"),
        ("vifs_vm1", "v0"),
        ("network_vm1_v0", "isolated"),
        ("nettype_vm1_v0", "ROUTE"),
    ]
    g = build_host(make(res)).guests["vm1"]
    assert (g["vcpus"], g["maxvcpus"], g["type"]) == (2, 4, "pvh")
    assert (g["kernel"], g["ramdisk"], g["cmdline"], g["bootloader"]) == (
        "/var/lib/xen/images/vmlinuz",
        "/var/lib/xen/images/initrd.img",
        "--args=root=/dev/xvda1",
        "pygrub",
    )
    assert g["extra"] == "<features><acpi/></features>"
    assert g["disks"][0]["format"] == "qcow2"
    assert g["vifs"] == [
        {
            "tag": "v0",
            "mac": None,
            "ip": None,
            "nettype": "route",
            "bridge": None,
            "script": None,
            "network": "isolated",
        }
    ]


def test_disk_names_and_paths_default_and_per_guest_fallback():
    res = [
        ("virtualmachines", "vm1"),
        ("name_vm1", "web-1"),
        ("disks_vm1", "root data swap"),
        ("diskpath_vm1", "/srv/vm"),
        ("disksize_vm1", "4"),
        ("disksize_vm1_data", "20G"),
        ("diskname_vm1_swap", "web-swap"),
        ("diskpath_vm1_swap", "/fast//vm/"),
    ]
    disks = build_host(make(res), HostAccess(storage_dirs=("/srv", "/fast"))).guests["web-1"]["disks"]
    assert [(d["name"], d["path"], d["size_gb"]) for d in disks] == [
        ("web-1", "/srv/vm/web-1.img", 4),
        ("web-1-data", "/srv/vm/web-1-data.img", 20),
        ("web-swap", "/fast/vm/web-swap.img", 4),
    ]


def test_disk_default_directory():
    res = [("virtualmachines", "vm1"), ("disks_vm1", "root")]
    disk = build_host(make(res)).guests["vm1"]["disks"][0]
    assert disk["path"] == f"{_model.DEFAULT_DISKPATH}/vm1.img"
    assert disk["size_gb"] is None and disk["type"] == "image"


def test_host_network_defaults_and_our_resources():
    model = build_host(
        make(
            [
                ("natsubnet", "192.168.150.0/24"),
                ("natnetwork", "site-nat"),
                ("xendconfroutenet", "yes"),
                ("routesubnet", "10.9.0.0/16"),
                ("bridgeinterfaces", "lan"),
                ("bridgevifnum_lan", "3"),
            ]
        )
    )
    host = model.xen_host
    assert (host["nat_subnet"], host["nat_network_name"]) == ("192.168.150.0/24", "site-nat")
    assert (host["route_network"], host["route_subnet"]) == (True, "10.9.0.0/16")
    assert host["route_network_name"] == "lcfg-route"
    assert host["bridges"] == [{"tag": "lan", "netdev": None, "bridge": "xenbr3", "vifnum": 3, "device": "xenbr3"}]
    assert host["default_bridge"] == "xenbr3"
    assert host["guests"] == [] and host["groups"] == {}


def test_profile_without_xen_component_is_a_plain_host():
    model = build_host(make([("virtualmachines", "vm1")], xen=False))
    assert not model.is_hypervisor and model.xen_host is None and model.guests == {}
    assert model.resources["xen"] == {"virtualmachines": "vm1"}


def test_empty_value_means_unset():
    g = build_host(make([("virtualmachines", "vm1"), ("memory_vm1", ""), ("boot_vm1", "")])).guests["vm1"]
    assert (g["memory"], g["autostart"]) == (512, False)


@pytest.mark.parametrize(
    "text, expected", [("yes", True), ("On", True), ("1", True), ("true", True), ("no", False), ("off", False)]
)
def test_boolean_spellings(text, expected):
    g = build_host(make([("virtualmachines", "vm1"), ("boot_vm1", text)])).guests["vm1"]
    assert g["autostart"] is expected


# ---------------------------------------------------------------- validation errors


@pytest.mark.parametrize(
    "res, value, pattern",
    [
        ("name_vm1", "bad name", "invalid guest name"),
        ("name_vm1", "-lead", "invalid guest name"),
        ("name_vm1", "x" * 65, "invalid guest name"),
        ("uuid_vm1", "26d1876a-85fc-49a4-9a5b-929570e18bb65", "invalid UUID"),
        ("uuid_vm1", "26d1876a-85fc-49a4-9a5b", "invalid UUID"),
        ("type_vm1", "kvm", "unknown guest type"),
        ("memory_vm1", "lots", "must be an integer"),
        ("memory_vm1", "0", "at least 1"),
        ("vcpus_vm1", "1.5", "must be an integer"),
        ("vcpus_vm1", "0", "at least 1"),
        ("cpus_vm1", "0,a", "invalid CPU list"),
        ("cpus_vm1", "3-1", "invalid CPU range"),
        ("boot_vm1", "maybe", "invalid boolean"),
        ("partition_vm1", "five", "must be an integer"),
        ("template_vm1", "guests/t.img", "must be absolute"),
        ("template_vm1", "/guests/../etc/t.img", r"may not contain '\.\.'"),
        ("profileurl_vm1", "ftp://x/y", "invalid profile URL"),
        ("kernel_vm1", "vmlinuz", "must be absolute"),
    ],
)
def test_guest_value_errors(res, value, pattern):
    one_error(GUEST + [(res, value)], res, pattern)


def test_seed_uuid_with_13_digit_last_group_is_rejected():
    resources = [("virtualmachines", "node1"), ("uuid_node1", "26d1876a-85fc-49a4-9a5b-929570e18bb65")]
    err = one_error(resources, "uuid_node1", "8-4-4-4-12")
    assert "26d1876a-85fc-49a4-9a5b-929570e18bb65" in err.problem


@pytest.mark.parametrize(
    "value, pattern",
    [("00:16:3e:00:01", "six hex pairs"), ("zz:16:3e:00:01:02", "six hex pairs"), ("01:16:3e:00:01:02", "multicast")],
)
def test_mac_errors(value, pattern):
    res = GUEST + [("vifs_vm1", "vif1"), ("mac_vm1_vif1", value)]
    one_error(res, "mac_vm1_vif1", pattern)


@pytest.mark.parametrize(
    "res, value, pattern",
    [
        ("ip_vm1_vif1", "10.0.0.256", "invalid IP"),
        ("nettype_vm1_vif1", "vlan", "unknown network type"),
        ("bridge_vm1_vif1", "br 0", "invalid interface name"),
        ("script_vm1_vif1", "../../bin/sh", "invalid vif script"),
        ("network_vm1_vif1", "-x", "invalid libvirt network name"),
    ],
)
def test_vif_errors(res, value, pattern):
    one_error(GUEST + [("vifs_vm1", "vif1"), (res, value)], res, pattern)


@pytest.mark.parametrize(
    "res, value, pattern",
    [
        ("diskname_vm1_root", "../etc/passwd", "invalid disk name"),
        ("diskname_vm1_root", "sub/dir", "invalid disk name"),
        ("diskname_vm1_root", "..x", "invalid disk name"),
        ("diskpath_vm1_root", "guests", "must be absolute"),
        ("diskpath_vm1_root", "/guests/../../etc", r"may not contain '\.\.'"),
        ("disksize_vm1_root", "12T", "whole number of GB"),
        ("disksize_vm1_root", "0", "at least 1 GB"),
        ("disktype_vm1_root", "nbd", "unknown disk type"),
        ("diskformat_vm1_root", "vmdk", "unknown disk format"),
        ("diskname_vm1", "a/b", "invalid disk name"),
    ],
)
def test_disk_errors(res, value, pattern):
    one_error(GUEST + [("disks_vm1", "root"), (res, value)], res, pattern)


def test_memory_more_than_maxmem():
    one_error(
        [("virtualmachines", "vm1"), ("maxmem_vm1", "256"), ("memory_vm1", "512")],
        "memory_vm1",
        "memory 512 MiB is more than maxmem 256 MiB",
    )


def test_vcpus_more_than_maxvcpus():
    one_error(
        [("virtualmachines", "vm1"), ("vcpus_vm1", "4"), ("maxvcpus_vm1", "2")],
        "maxvcpus_vm1",
        "maxvcpus 2 is less than vcpus 4",
    )


def test_group_memory_more_than_maxmem_names_the_group_resource():
    res = [
        ("virtualmachines", "vm1"),
        ("virtualgroup", "g1"),
        ("members_g1", "vm1"),
        ("groupmemory_g1", "4096"),
        ("groupmaxmem_g1", "1024"),
    ]
    one_error(res, "groupmemory_g1", "more than maxmem")


def test_bad_tags_in_lists():
    one_error([("virtualmachines", "vm-1")], "virtualmachines", "invalid tag 'vm-1'")
    one_error([("virtualmachines", "a a")], "virtualmachines", "listed twice")


def test_bad_host_resources():
    one_error([("natsubnet", "10.0.0.1/24")], "natsubnet", "invalid subnet")
    one_error([("xendconfnatnet", "sometimes")], "xendconfnatnet", "invalid boolean")
    one_error([("natnetwork", "bad name")], "natnetwork", "invalid libvirt network name")
    one_error(
        [("bridgeinterfaces", "a b"), ("bridgeif_a", "br0"), ("bridgeif_b", "br0")], "bridgeif_b", "already declared"
    )


@pytest.mark.parametrize("group", ["all", "ungrouped", "xen_guests", "xen_hypervisors"])
def test_reserved_group_names(group):
    one_error(
        GUEST + [("virtualgroup", group), (f"members_{group}", "vm1")],
        "virtualgroup",
        f"group name '{group}' is reserved",
    )


def test_group_member_must_be_a_guest_of_this_host():
    res = GUEST + [("virtualgroup", "g1"), ("members_g1", "vm1 node9")]
    one_error(res, "members_g1", "member 'node9' of group 'g1' is not a guest of this host")


def test_two_groups_setting_a_field_differently_is_an_error():
    res = [
        ("virtualmachines", "vm1 vm2"),
        ("virtualgroup", "g1 g2"),
        ("members_g1", "vm1 vm2"),
        ("members_g2", "vm2"),
        ("groupvcpus_g1", "2"),
        ("groupvcpus_g2", "4"),
        ("groupcpus_g1", "1"),
        ("groupcpus_g2", "1"),
    ]
    errors = errors_of(res)
    assert len(errors) == 1
    err = errors[0]
    assert (err.resource, err.line) == ("xen.groupvcpus_g2", line_of(res, "groupvcpus_g2"))
    assert "'g1' and 'g2'" in err.problem
    assert f"/site/h1:{line_of(res, 'groupvcpus_g1')}" in err.problem


def test_duplicate_guest_name_mac_uuid_and_disk_path_on_one_host():
    res = [
        ("virtualmachines", "a b c"),
        ("name_b", "a"),
        ("vifs_a", "v"),
        ("vifs_c", "v"),
        ("mac_a_v", "00:16:3e:00:00:01"),
        ("mac_c_v", "00:16:3E:00:00:01"),
        ("uuid_a", "bbdda922-8ee3-4ff8-874e-7c4e712dc4c7"),
        ("uuid_c", "BBDDA922-8EE3-4FF8-874E-7C4E712DC4C7"),
        ("disks_a", "root"),
        ("disks_c", "root"),
        ("diskname_c_root", "a"),
    ]
    errors = {e.resource: e for e in errors_of(res)}
    assert "already used by guest 'a'" in errors["xen.name_b"].problem
    assert "MAC 00:16:3e:00:00:01 is already used by a v" in errors["xen.mac_c_v"].problem
    assert "already used by guest 'a'" in errors["xen.uuid_c"].problem
    assert "/var/lib/lcfg-xen/guests/a.img is already used" in errors["xen.disks_c"].problem


def test_two_disks_with_the_same_path():
    res = GUEST + [("disks_vm1", "root data"), ("diskname_vm1", "same")]
    one_error(res, "diskname_vm1", "same path")


def test_all_errors_of_a_profile_are_collected():
    res = GUEST + [("uuid_vm1", "nope"), ("type_vm1", "kvm"), ("vifs_vm1", "v"), ("mac_vm1_v", "bad")]
    with pytest.raises(ModelErrors) as info:
        build_host(make(res))
    assert {e.resource for e in info.value.errors} == {"xen.uuid_vm1", "xen.type_vm1", "xen.mac_vm1_v"}
    assert len(str(info.value).splitlines()) == 3
    assert isinstance(info.value, LcfgError)


def test_error_points_at_the_last_derivation_of_a_mutated_resource():
    prof = make(GUEST)
    prof.resources["xen"]["type_vm1"] = Resource("kvm", "/site/h1:3 /site/hdr.h:7")
    with pytest.raises(ModelErrors) as info:
        build_host(prof)
    err = info.value.errors[0]
    assert (err.file, err.line, err.resource) == ("/site/hdr.h", 7, "xen.type_vm1")


# ---------------------------------------------------------------- precedence and warnings


def test_guest_value_wins_over_group_and_warns_naming_both():
    res = [
        ("virtualmachines", "vm1 vm2"),
        ("virtualgroup", "g1"),
        ("members_g1", "vm1 vm2"),
        ("groupmemory_g1", "1024"),
        ("groupbridge_g1", "xenbr0"),
        ("memory_vm1", "256"),
        ("memory_vm2", "1024"),
        ("vifs_vm1", "v"),
        ("bridge_vm1_v", "xenbr7"),
    ]
    model = build_host(make(res))
    assert model.guests["vm1"]["memory"] == 256
    assert model.guests["vm2"]["memory"] == 1024
    assert model.guests["vm1"]["vifs"][0]["bridge"] == "xenbr7"
    assert model.guests["vm1"]["maxmem"] == 256  # the missing one equals the resolved memory
    assert model.guests["vm2"]["maxmem"] == 1024
    assert len(model.warnings) == 2  # equal values (vm2) do not warn
    mem = next(w for w in model.warnings if "memory_vm1" in w)
    assert mem.startswith(f"/site/h1:{line_of(res, 'memory_vm1')}: xen.memory_vm1: ")
    assert f"/site/h1:{line_of(res, 'groupmemory_g1')}" in mem
    bridge = next(w for w in model.warnings if "bridge_vm1_v" in w)
    assert f"/site/h1:{line_of(res, 'groupbridge_g1')}" in bridge


def test_group_fills_what_the_guest_leaves_unset():
    res = [
        ("virtualmachines", "vm1"),
        ("virtualgroup", "g1 g2"),
        ("members_g1", "vm1"),
        ("members_g2", "vm1"),
        ("groupmemory_g1", "128"),
        ("groupmaxvcpus_g2", "8"),
        ("groupvcpus_g1", "2"),
        ("groupnettype_g2", "nat"),
        ("groupscript_g2", "vif-nat"),
        ("vifs_vm1", "a b"),
        ("nettype_vm1_b", "bridge"),
    ]
    model = build_host(make(res))
    g = model.guests["vm1"]
    assert (g["memory"], g["maxmem"], g["vcpus"], g["maxvcpus"]) == (128, 128, 2, 8)
    assert [(v["nettype"], v["script"]) for v in g["vifs"]] == [("nat", "vif-nat"), ("bridge", "vif-nat")]
    assert g["groups"] == ["g1", "g2"]
    assert model.xen_host["groups"]["g2"]["maxvcpus"] == 8
    assert len(model.warnings) == 1 and "nettype_vm1_b" in model.warnings[0]


def test_resources_of_unknown_tags_warn_as_unused():
    res = GUEST + [
        ("vifs_vm1", "vif1"),
        ("mac_vm1_vif2", "00:16:3e:00:00:09"),
        ("memory_vm9", "64"),
        ("groupcpus_nogroup", "1"),
        ("xendconfother", "x"),
        ("disks_vm1", "root"),
        ("diskname_vm1_root", "a"),
        ("diskname_vm1", "b"),
    ]
    model = build_host(make(res))
    unused = sorted(w.split(": ")[1] for w in model.warnings)
    assert unused == ["xen.diskname_vm1", "xen.groupcpus_nogroup", "xen.mac_vm1_vif2", "xen.memory_vm9"]
    assert all("not used" in w for w in model.warnings)
    assert any(w.startswith(f"/site/h1:{line_of(res, 'memory_vm9')}: ") for w in model.warnings)


def test_group_without_members_warns():
    model = build_host(make([("virtualgroup", "empty")]))
    assert model.groups == {"empty": []}
    assert model.warnings and "no members" in model.warnings[0]


# ---------------------------------------------------------------- site rules


def test_guest_name_of_two_profiles_rejects_both():
    # never first come, first served: the order of files must not pick the winner
    first = make([("virtualmachines", "vm1")], name="a", path="/site/a")
    second = make([("virtualmachines", "x vm1"), ("name_x", "other")], name="b", path="/site/b")
    third = make([("virtualmachines", "y")], name="c", path="/site/c")
    for order in ([first, second, third], [third, second, first]):
        site = build_site(order)
        assert list(site.hosts) == ["c"]
        [err_a], [err_b] = site.rejected["a"], site.rejected["b"]
        assert (err_b.file, err_b.line, err_b.resource) == ("/site/b", 2, "xen.virtualmachines")
        assert (err_a.file, err_a.line, err_a.resource) == ("/site/a", 2, "xen.virtualmachines")
        assert "guest name 'vm1' at /site/b:2 is also defined by /site/a:2 (host a)" in err_b.problem
        assert "guest name 'vm1' at /site/a:2 is also defined by /site/b:2 (host b)" in err_a.problem


def test_guest_named_like_a_host_is_the_guests_profiles_error_in_any_order():
    # red team F4b: a guest named like a later hypervisor knocked that hypervisor out
    b = make([("virtualmachines", "g"), ("name_g", "zzz")], name="b", path="/site/b")
    zzz = make([("virtualmachines", "vm1")], name="zzz", path="/site/zzz")
    for order in ([b, zzz], [zzz, b]):
        site = build_site(order)
        assert list(site.hosts) == ["zzz"] and site.hosts["zzz"].guests.keys() == {"vm1"}
        [err] = site.rejected["b"]
        assert (err.file, err.line, err.resource) == ("/site/b", 3, "xen.name_g")
        assert "guest name 'zzz' at /site/b:3 is the host name of profile /site/zzz" in err.problem


def test_guest_may_not_take_the_name_of_a_rejected_host():
    broken = make([("virtualmachines", "vm2"), ("uuid_vm2", "x")], name="xen9", path="/site/xen9")
    evil = make([("virtualmachines", "g"), ("name_g", "xen9")], name="evil", path="/site/evil")
    site = build_site([evil, broken])
    assert list(site.hosts) == []
    assert "is the host name of profile /site/xen9" in site.rejected["evil"][0].problem


def test_duplicate_host_names_reject_both_profiles():
    a = make([("virtualmachines", "vm1")], name="a", path="/site/a")
    a2 = make([], name="a", path="/site/x/a")
    for order in ([a, a2], [a2, a]):
        site = build_site(order)
        assert list(site.hosts) == []
        errors = {err.file: err.problem for err in site.rejected["a"]}
        assert "host name 'a' is also the host name of profile /site/x/a" in errors["/site/a"]
        assert "host name 'a' is also the host name of profile /site/a" in errors["/site/x/a"]


def test_broken_profile_is_left_out_and_the_rest_loads():
    good = make([("virtualmachines", "vm1")], name="good", path="/site/good")
    bad = make([("virtualmachines", "vm2"), ("uuid_vm2", "x")], name="bad", path="/site/bad")
    site = build_site([bad, good])
    assert list(site.hosts) == ["good"]
    assert str(site.rejected["bad"][0]).startswith("/site/bad:3: xen.uuid_vm2: invalid UUID")


@pytest.mark.parametrize(
    "resources, res, pattern",
    [
        # red team F5: each loaded without a warning; the guest role then failed in xen_disk/xen_guests
        (
            [("diskpath_vm1", "/etc"), ("diskname_vm1", "shadow")],
            "diskpath_vm1",
            r"disk image /etc/shadow.img is outside the storage directories",
        ),
        (
            [("disktype_vm1", "phy"), ("diskpath_vm1", "/dev"), ("diskname_vm1", "sda")],
            "diskpath_vm1",
            r"/dev/sda is a host block device",
        ),
        (
            [("template_vm1", "/etc/shadow")],
            "template_vm1",
            r"template: path '/etc/shadow' is outside the storage directories .*/var/lib/lcfg-xen",
        ),
        (
            [("storagedirs", "/var/lib/lcfg-xen/guests"), ("template_vm1", "/var/lib/lcfg-xen/templates/t.img")],
            "template_vm1",
            r"outside the storage directories /var/lib/lcfg-xen/guests;",
        ),
    ],
)
def test_disk_paths_the_modules_refuse_are_errors_at_their_line(resources, res, pattern):
    one_error([("virtualmachines", "vm1"), ("disks_vm1", "root")] + resources, res, pattern)


def test_template_inside_the_storage_directories_is_kept():
    model = build_host(make([("virtualmachines", "vm1"), ("template_vm1", "/var/lib/lcfg-xen/templates/t.img")]))
    assert model.guests["vm1"]["template"] == "/var/lib/lcfg-xen/templates/t.img"
    access = HostAccess(storage_dirs=("/srv",))
    assert (
        build_host(make([("virtualmachines", "vm1"), ("template_vm1", "/srv/t.img")]), access).guests["vm1"]["template"]
        == "/srv/t.img"
    )


TEMPLATE = "/var/lib/lcfg-xen/templates/lcfg_template.img"
VICTIM_DISK = "/var/lib/lcfg-xen/guests/web.img"


def _site_with(evil: list[tuple[str, str]], victim_path: str = "/site/xen1") -> tuple:
    victim = make(
        [("virtualmachines", "web"), ("disks_web", "root"), ("template_web", TEMPLATE)], name="xen1", path=victim_path
    )
    other = make([("virtualmachines", "db"), ("disks_db", "root")], name="xen3", path="/site/xen3")
    return victim, other, make(evil, name="xen2", path="/site/xen2")


@pytest.mark.parametrize(
    "evil, res, pattern",
    [
        # red team F3: the template as a (read-write) disk, and as a ramdisk
        (
            [
                ("virtualmachines", "g"),
                ("disks_g", "root"),
                ("diskpath_g", "/var/lib/lcfg-xen/templates"),
                ("diskname_g", "lcfg_template"),
            ],
            "diskpath_g",
            "disk /var/lib/lcfg-xen/templates/lcfg_template.img is also the template of guest 'web' \\(/site/xen1:4\\)",
        ),
        (
            [("virtualmachines", "g"), ("ramdisk_g", TEMPLATE)],
            "ramdisk_g",
            "ramdisk .* is also the template of guest 'web'",
        ),
        # a template set to another guest's image would clone that guest's data
        (
            [("virtualmachines", "g"), ("template_g", VICTIM_DISK)],
            "template_g",
            "template .*web.img is also the disk of guest 'web' \\(/site/xen1:3\\)",
        ),
    ],
)
def test_a_guest_never_reaches_a_template_and_neither_profile_is_used(evil, res, pattern):
    victim, other, attacker = _site_with(evil)
    for order in ([victim, other, attacker], [attacker, other, victim]):
        site = build_site(order)
        assert list(site.hosts) == ["xen3"]  # both sides left out, whatever the order
        [err] = site.rejected["xen2"]
        assert (err.file, err.line, err.resource) == (
            "/site/xen2",
            evil.index(next(item for item in evil if item[0] == res)) + 2,
            f"xen.{res}",
        )
        assert re.search(pattern, err.problem), err.problem
        assert "/site/xen2" in str(site.rejected["xen1"][0].problem)


def test_kernel_or_ramdisk_of_another_guests_disk_on_the_same_host_is_the_booters_error():
    res = [("virtualmachines", "web g"), ("disks_web", "root"), ("ramdisk_g", VICTIM_DISK)]
    site = build_site([make(res)])
    [err] = site.rejected["h1"]
    assert (err.file, err.line, err.resource) == ("/site/h1", 4, "xen.ramdisk_g")
    assert re.search(
        r"ramdisk .*web.img is the disk image of guest 'web' \(/site/h1:3\): a guest boots "
        "only its own files",
        err.problem,
    ), err.problem
    # the same path on another hypervisor is another machine's file
    other = make([("virtualmachines", "g2"), ("ramdisk_g2", VICTIM_DISK)], name="h2", path="/site/h2")
    site = build_site([make(res[:2]), other])
    assert list(site.hosts) == ["h1", "h2"]


def test_guests_sharing_a_template_and_own_template_as_disk():
    a = make([("virtualmachines", "a b"), ("template_a", TEMPLATE), ("template_b", TEMPLATE)])
    assert list(build_site([a]).hosts) == ["h1"]
    own = make([("virtualmachines", "a"), ("disks_a", "root"), ("template_a", "/var/lib/lcfg-xen/guests/a.img")])
    problems = [e.problem for e in build_site([own]).rejected["h1"]]
    assert any(
        p.startswith("template /var/lib/lcfg-xen/guests/a.img is also the disk of guest 'a'") for p in problems
    ), problems


# ---------------------------------------------------------------- networks of the seed's use cases


def test_bridge_device_name_is_stable_valid_and_keeps_valid_names():
    derived = _model.bridge_device_name("my-network-bridge")
    assert derived == _model.bridge_device_name("my-network-bridge")  # stable
    assert re.fullmatch(r"my-networ-[0-9a-f]{5}", derived) and len(derived) <= 15
    # same first nine characters, different names: different devices
    assert _model.bridge_device_name("my-network-bridge2") != derived
    assert _model.bridge_device_name("xenbr0") == "xenbr0"
    assert _model.bridge_device_name("a" * 15) == "a" * 15
    assert len(_model.bridge_device_name("a" * 16)) == 15
    assert re.fullmatch(r"brx-[0-9a-f]{5}", _model.bridge_device_name("br:x"))  # ':' is not allowed


def test_long_custom_bridge_keeps_its_name_and_guests_attach_to_its_device():
    res = [
        ("xendconfcustombridge", "my-network-bridge"),
        ("bridgeinterfaces", "eth0"),
        ("virtualmachines", "vm1 vm2"),
        ("vifs_vm1", "vif1"),
        ("vifs_vm2", "vif1"),
        ("bridge_vm2_vif1", "my-network-bridge"),
    ]
    model = build_host(make(res))
    device = _model.bridge_device_name("my-network-bridge")
    assert model.xen_host["custom_bridge"] == "my-network-bridge"
    assert model.xen_host["bridge_devices"] == {"xenbr0": "xenbr0", "my-network-bridge": device}
    # the default bridge (vm1) and a vif naming the custom bridge (vm2) both get the device
    assert model.xen_host["default_bridge"] == device
    assert model.guests["vm2"]["vifs"][0]["bridge"] == device
    assert model.guests["vm1"]["vifs"][0]["bridge"] is None


def test_derived_device_colliding_with_another_bridge_is_an_error():
    device = _model.bridge_device_name("my-network-bridge")
    res = [("bridgeinterfaces", "eth0"), ("bridgeif_eth0", device), ("xendconfcustombridge", "my-network-bridge")]
    one_error(res, "xendconfcustombridge", "collides with bridge")


def nat_guest(tag: str, mac: str, ip: str) -> list[tuple[str, str]]:
    """Resources of one NAT vif ``vif1`` of guest ``tag`` (the guest must be listed separately)."""
    return [(f"vifs_{tag}", "vif1"), (f"nettype_{tag}_vif1", "nat"), (f"mac_{tag}_vif1", mac), (f"ip_{tag}_vif1", ip)]


def test_nat_gateway_is_chosen_away_from_the_guests():
    res = (
        [("xendconfnatnet", "on"), ("virtualmachines", "node1 node2")]
        + nat_guest("node1", "00:16:2a:24:a3:7c", "10.0.0.1")
        + nat_guest("node2", "00:16:2a:24:a3:7d", "10.0.0.254")
    )
    host = build_host(make(res)).xen_host
    # the seed's node1 is 10.0.0.1 (once the gateway); the highest address is node2's
    assert (host["nat_gateway"], host["nat_address"]) == ("10.0.0.253", "10.0.0.253/24")
    assert host["nat_dhcp_hosts"] == [
        {"mac": "00:16:2a:24:a3:7c", "ip": "10.0.0.1", "name": "node1"},
        {"mac": "00:16:2a:24:a3:7d", "ip": "10.0.0.254", "name": "node2"},
    ]
    assert build_host(make([("xendconfnatnet", "on")])).xen_host["nat_address"] == "10.0.0.254/24"


def test_nat_gateway_resource_sets_it_and_refuses_a_guest_address():
    base = [("xendconfnatnet", "on"), ("virtualmachines", "node1")] + nat_guest(
        "node1", "00:16:2a:24:a3:7c", "10.0.0.1"
    )
    assert build_host(make(base + [("natgateway", "10.0.0.100")])).xen_host["nat_address"] == "10.0.0.100/24"
    err = one_error(base + [("natgateway", "10.0.0.1")], "natgateway", "address of guest 'node1'")
    assert f"/site/h1:{line_of(base, 'ip_node1_vif1')}" in err.problem  # where the guest's IP is set
    one_error(base + [("natgateway", "10.0.1.1")], "natgateway", "not a host address")
    one_error(base + [("natgateway", "10.0.0.255")], "natgateway", "not a host address")


def test_route_gateway_defaults_and_resource():
    res = [("xendconfroutenet", "on"), ("routesubnet", "192.168.50.0/24"), ("routegateway", "192.168.50.1")]
    host = build_host(make(res)).xen_host
    assert host["route_address"] == "192.168.50.1/24"
    assert build_host(make(res[:2])).xen_host["route_address"] == "192.168.50.254/24"
    assert build_host(make([])).xen_host["route_address"] is None


def test_two_guests_reserving_one_nat_address_is_an_error():
    res = (
        [("xendconfnatnet", "on"), ("virtualmachines", "a b")]
        + nat_guest("a", "00:16:3e:00:00:01", "10.0.0.5")
        + nat_guest("b", "00:16:3e:00:00:02", "10.0.0.5")
    )
    one_error(res, "ip_b_vif1", "already reserved for guest 'a'")


def test_group_bridge_is_ignored_with_a_warning_for_nat_members():
    # the seed: cluster1 sets groupbridge xenbr0 over nodes whose own vifs are NAT
    res = [
        ("xendconfnatnet", "on"),
        ("virtualmachines", "node1 node2"),
        ("vifs_node1", "vif1"),
        ("nettype_node1_vif1", "nat"),
        ("vifs_node2", "vif1"),
        ("virtualgroup", "cluster1"),
        ("members_cluster1", "node1 node2"),
        ("groupbridge_cluster1", "xenbr0"),
    ]
    model = build_host(make(res))
    assert model.guests["node1"]["vifs"][0]["nettype"] == "nat"
    assert model.guests["node1"]["vifs"][0]["bridge"] is None
    assert (model.guests["node2"]["vifs"][0]["nettype"], model.guests["node2"]["vifs"][0]["bridge"]) == (
        "bridge",
        "xenbr0",
    )
    line = line_of(res, "groupbridge_cluster1")
    assert len(model.warnings) == 1
    assert model.warnings[0].startswith(
        f"/site/h1:{line}: xen.groupbridge_cluster1: group bridge 'xenbr0' "
        "is ignored for guest 'node1' vif 'vif1': its nettype is nat"
    )


def test_own_bridge_on_a_nat_vif_is_an_error():
    res = [("virtualmachines", "vm1"), ("vifs_vm1", "vif1"), ("nettype_vm1_vif1", "nat"), ("bridge_vm1_vif1", "xenbr0")]
    one_error(res, "bridge_vm1_vif1", "a bridge is for nettype bridge")


SEED = REPO / "lcfg" / "seed"


def _seed(name: str):
    return read_source_profile(str(SEED / name), include_path=[str(REPO / "lcfg" / "include")])


def test_seed_uuid_as_printed_on_the_slide_is_an_error_naming_file_and_line():
    path = PROFILES.parent / "seed" / "cluster-uuid-as-printed"
    with pytest.raises(ModelErrors) as info:
        build_host(read_source_profile(str(path), include_path=[INCLUDE]))
    errors = info.value.errors
    assert len(errors) == 1
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if text.startswith("!xen.uuid_node1"))
    assert (errors[0].file, errors[0].line, errors[0].resource) == (str(path), line, "xen.uuid_node1")
    assert "26d1876a-85fc-49a4-9a5b-929570e18bb65" in errors[0].problem


def test_seed_site_use_cases():
    site = build_site([_seed(p) for p in ("seed-single", "seed-cluster", "seed-networks")])
    assert site.rejected == {}
    single = site.hosts["seed-single"].guests["profiledev"]
    assert (single["memory"], single["maxmem"], single["autostart"]) == (256, 512, False)
    assert single["disks"][0]["path"] == "/guests/profiledev.img"
    cluster = site.hosts["seed-cluster"]
    assert list(cluster.guests) == [f"node{n}" for n in range(1, 9)]
    assert cluster.groups == {
        "cluster1": ["node1", "node2", "node3"],
        "cluster2": ["node4", "node5"],
        "cluster3": ["node6", "node7", "node8"],
    }
    for n in range(1, 9):
        g = cluster.guests[f"node{n}"]
        assert (g["memory"], g["vcpus"], g["cpus"], g["autostart"]) == (1930, 4, "0,1,2,3", False)
        assert [(v["nettype"], v["ip"], v["bridge"]) for v in g["vifs"]] == [("nat", f"10.0.0.{n}", None)]
        assert g["disks"][0]["path"] == f"/data/guests/node{n}.img"
    assert [v["script"] for n in (6, 7, 8) for v in cluster.guests[f"node{n}"]["vifs"]] == ["vif-nat"] * 3
    assert cluster.xen_host["nat_address"] == "10.0.0.254/24"
    assert len(cluster.xen_host["nat_dhcp_hosts"]) == 8
    # cluster1 and cluster2's group bridges are ignored for the five NAT members, with a warning
    assert sum("is ignored for guest" in w for w in cluster.warnings) == 5
    net = site.hosts["seed-networks"].xen_host
    assert net["custom_bridge"] == "my-network-bridge"
    assert len(net["custom_bridge_device"]) <= 15
    assert [(b["netdev"], b["device"]) for b in net["bridges"]] == [
        ("eth0", "xenbr0"),
        ("eth1", "xenbr1"),
        ("eth2", "xenbr2"),
    ]


@pytest.mark.parametrize(
    "resource, value, words",
    [
        (
            "extra_vm1",
            "<qemu:commandline xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>"
            "<qemu:arg value='-set'/></qemu:commandline>",
            "<qemu:commandline>",
        ),
        (
            "extra_vm1",
            "<devices><disk type='file'><source file='/etc/shadow'/><target dev='vdz'/></disk></devices>",
            "<disk type='file'>",
        ),
        ("extra_vm1", "<devices><hostdev mode='subsystem' type='pci'/></devices>", "<hostdev"),
        ("extra_vm1", "<devices><serial type='file'><source path='/etc/x'/></serial></devices>", "type='file'"),
        ("bootloader_vm1", "/bin/sh", "/bin/sh"),
        ("kernel_vm1", "/etc/passwd", "/etc/passwd"),
        ("ramdisk_vm1", "/etc/shadow", "/etc/shadow"),
        ("script_vm1_eth0", "/tmp/evil", "Xen's scripts directory"),
    ],
)
def test_host_reaching_values_are_refused_at_their_line(resource, value, words):
    """Issue 9 §4: what the modules refuse by default, the inventory refuses with file:line."""
    res = [("virtualmachines", "vm1"), ("vifs_vm1", "eth0"), (resource, value)]
    with pytest.raises(ModelErrors) as info:
        build_host(make(res))
    (error,) = info.value.errors
    assert (error.file, error.line, error.resource) == ("/site/h1", 4, f"xen.{resource}")
    assert words in error.problem


def test_bootloader_arguments_from_a_profile_stay_inside_the_guest_disk():
    res = [("virtualmachines", "vm1"), ("bootloader_vm1", "pygrub"), ("cmdline_vm1", "--output=/etc/cron.d/x")]
    with pytest.raises(ModelErrors) as info:
        build_host(make(res))
    assert (info.value.errors[0].line, info.value.errors[0].resource) == (4, "xen.cmdline_vm1")
    res[2] = ("cmdline_vm1", "--entry=1")
    assert build_host(make(res)).guests["vm1"]["cmdline"] == "--entry=1"


# --------------------------------------------------------------------------- the inventory's host_access

MYGRUB = [("virtualmachines", "vm1"), ("bootloader_vm1", "/usr/local/bin/mygrub")]


def test_site_bootloader_is_refused_by_default_and_accepted_with_host_access():
    """The inventory option host_access widens the model's checks as the module options do."""
    with pytest.raises(ModelErrors) as info:
        build_host(make(MYGRUB))
    (error,) = info.value.errors
    assert (error.file, error.line, error.resource) == ("/site/h1", 3, "xen.bootloader_vm1")
    assert "allowed_boot_paths" in error.problem
    assert (
        build_host(make(MYGRUB), HostAccess(allowed_boot_paths=("/usr/local/bin/mygrub",))).guests["vm1"]["bootloader"]
        == "/usr/local/bin/mygrub"
    )
    # a directory allows what lies below it, and not a sibling
    site = HostAccess(allowed_boot_paths=("/usr/local/bin",))
    assert build_host(make(MYGRUB), site).guests["vm1"]["bootloader"] == "/usr/local/bin/mygrub"
    with pytest.raises(ModelErrors):
        build_host(make([MYGRUB[0], ("bootloader_vm1", "/usr/local/binx/mygrub")]), site)


def test_block_devices_and_disk_images_follow_host_access():
    phy = [
        ("virtualmachines", "vm1"),
        ("disks_vm1", "root"),
        ("disktype_vm1", "phy"),
        ("diskpath_vm1", "/dev/vg_guests"),
    ]
    with pytest.raises(ModelErrors) as info:
        build_host(make(phy))
    (error,) = info.value.errors
    assert (error.line, error.resource) == (5, "xen.diskpath_vm1") and "block device" in error.problem
    disk = build_host(make(phy), HostAccess(allowed_block_devices=("/dev/vg_guests",))).guests["vm1"]["disks"][0]
    assert (disk["type"], disk["path"]) == ("phy", "/dev/vg_guests/vm1")
    image = [("virtualmachines", "vm1"), ("disks_vm1", "root"), ("diskpath_vm1", "/srv/guests")]
    with pytest.raises(ModelErrors) as info:
        build_host(make(image))
    assert (info.value.errors[0].line, info.value.errors[0].resource) == (4, "xen.diskpath_vm1")
    assert (
        build_host(make(image), HostAccess(storage_dirs=("/srv/guests",))).guests["vm1"]["disks"][0]["path"]
        == "/srv/guests/vm1.img"
    )
    # the default directory outside the site's list: the error is at the disk list
    with pytest.raises(ModelErrors) as info:
        build_host(make(image[:2]), HostAccess(storage_dirs=("/srv/guests",)))
    assert info.value.errors[0].resource == "xen.disks_vm1"


def test_kernel_outside_storage_extra_xml_and_vif_script_follow_host_access():
    kernel = [("virtualmachines", "vm1"), ("kernel_vm1", "/boot/vmlinuz-xen")]
    with pytest.raises(ModelErrors):
        build_host(make(kernel))
    assert (
        build_host(make(kernel), HostAccess(allowed_boot_paths=("/boot",))).guests["vm1"]["kernel"]
        == "/boot/vmlinuz-xen"
    )
    qemu = (
        "<qemu:commandline xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>"
        "<qemu:arg value='-s'/></qemu:commandline>"
    )
    extra = [("virtualmachines", "vm1"), ("extra_vm1", qemu)]
    with pytest.raises(ModelErrors):
        build_host(make(extra))
    assert build_host(make(extra), HostAccess(trusted_extra_xml=True)).guests["vm1"]["extra"] == qemu
    script = [
        ("virtualmachines", "vm1"),
        ("vifs_vm1", "eth0"),
        ("virtualgroup", "g"),
        ("members_g", "vm1"),
        ("groupscript_g", "/usr/local/sbin/vif-site"),
    ]
    with pytest.raises(ModelErrors) as info:
        build_host(make(script))
    assert [(e.line, e.resource) for e in info.value.errors] == [(6, "xen.groupscript_g")]
    vif = build_host(make(script), HostAccess(allow_host_resources=True)).guests["vm1"]["vifs"][0]
    assert vif["script"] == "/usr/local/sbin/vif-site"


def test_profile_storagedirs_only_narrow_the_inventory_list():
    """xen.storagedirs narrows host_access.storage_dirs (as xen_disk's profile_storage_dirs
    narrows the play's): it may not widen it to let a kernel or disk in."""
    widen = [("storagedirs", "/etc"), ("virtualmachines", "vm1"), ("kernel_vm1", "/etc/passwd")]
    with pytest.raises(ModelErrors) as info:
        build_host(make(widen))
    assert [(e.line, e.resource) for e in info.value.errors][0] == (2, "xen.storagedirs")
    assert "may only narrow" in info.value.errors[0].problem
    narrow = [
        ("storagedirs", "/guests/fast"),
        ("virtualmachines", "vm1"),
        ("disks_vm1", "root"),
        ("diskpath_vm1", "/guests/slow"),
    ]
    with pytest.raises(ModelErrors) as info:
        build_host(make(narrow))
    assert [(e.line, e.resource) for e in info.value.errors] == [(5, "xen.diskpath_vm1")]
    narrow[3] = ("diskpath_vm1", "/guests/fast")
    host = build_host(make(narrow))
    assert host.xen_host["storage_dirs"] == ["/guests/fast"]
    access = HostAccess(storage_dirs=("/srv",))
    with pytest.raises(ModelErrors):
        build_host(make(narrow), access)  # /guests is not the site's
    narrow[0], narrow[3] = ("storagedirs", "/srv/fast"), ("diskpath_vm1", "/srv/fast")
    assert build_host(make(narrow), access).guests["vm1"]["disks"][0]["path"] == "/srv/fast/vm1.img"


def test_build_site_applies_host_access_to_every_profile():
    site = build_site([make(MYGRUB), make(MYGRUB, name="h2", path="/site/h2")])
    assert set(site.rejected) == {"h1", "h2"}
    site = build_site(
        [
            make(MYGRUB),
            make([("virtualmachines", "vm2"), ("bootloader_vm2", "/usr/local/bin/mygrub")], name="h2", path="/site/h2"),
        ],
        HostAccess(allowed_boot_paths=("/usr/local/bin/mygrub",)),
    )
    assert not site.rejected and set(site.hosts) == {"h1", "h2"}


def _kept(profile):
    """A profile built on its own, kept as JSON and read back (what the inventory's store does)."""
    return BuiltProfile.from_data(json.loads(json.dumps(build_profile(profile).to_data())))


def _outcome(site):
    return site.data, {name: [str(err) for err in errors] for name, errors in site.rejected.items()}, site.warnings


def test_profiles_kept_as_built_meet_the_same_site_rules_as_fresh_ones():
    res = [("virtualmachines", "web g"), ("disks_web", "root"), ("ramdisk_g", VICTIM_DISK)]
    sites = [
        # a guest name two profiles define, a guest named like a host, a host name given twice
        [
            make([("virtualmachines", "vm1")], name="a", path="/site/a"),
            make([("virtualmachines", "x vm1"), ("name_x", "zzz")], name="b", path="/site/b"),
            make([("virtualmachines", "vm2")], name="zzz", path="/site/zzz"),
            make([], name="a", path="/site/x/a"),
        ],
        # a template that is another guest's disk, a ramdisk that is a disk of the same host
        list(_site_with([("virtualmachines", "g"), ("template_g", VICTIM_DISK)])) + [make(res, name="h9")],
        # a profile the model rejects on its own, and a virtual group named like a host
        [
            make([("virtualmachines", "vm2"), ("uuid_vm2", "x")], name="bad", path="/site/bad"),
            make([("virtualmachines", "g1"), ("virtualgroup", "good"), ("members_good", "g1")], name="good"),
        ],
    ]
    for profiles in sites:
        fresh = build_site(profiles)
        assert fresh.rejected, "each site breaks a rule"
        for mixed in ([_kept(p) for p in profiles], [_kept(p) if i % 2 else p for i, p in enumerate(profiles)]):
            assert _outcome(build_site(mixed)) == _outcome(fresh)
