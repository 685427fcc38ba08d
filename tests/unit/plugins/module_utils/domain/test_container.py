"""Pure tests of containers (type container, libvirt's LXC driver): the rules, the rendered
definition and what parse reads back from it."""

from __future__ import annotations

import pytest
from lxml import etree

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import ValidationError
from ansible_collections.lcfg.xen.plugins.module_utils.common.host_access import (
    HostAccess,
    check_guest_access,
    profile_value_problem,
)
from ansible_collections.lcfg.xen.plugins.module_utils.domain.desired import (
    check_driver,
    complete_spec,
    validate_spec,
)
from ansible_collections.lcfg.xen.plugins.module_utils.domain.parse import diff_specs, network_gateways, parse_domain
from ansible_collections.lcfg.xen.plugins.module_utils.domain.render import render_domain, update_domain_xml

NETWORKS = {"lcfg-nat": {4: (24, "10.0.0.254")}}
CAPS = {"driver": "lxc", "domain_type": "lxc", "arch": "x86_64", "networks": NETWORKS}


def container(**params):
    base = {
        "name": "ct1",
        "type": "lxc",
        "memory": 128,
        "maxmem": 512,
        "vcpus": 1,
        "maxvcpus": 2,
        "disks": [{"path": "/var/lib/libvirt/images/ct1.img"}],
        "vifs": [{"nettype": "nat", "ip": "10.0.0.61"}, {"bridge": "xenbr0", "ip": "192.0.2.61"}],
    }
    base.update(params)
    return validate_spec(base)


def rendered(spec: dict) -> etree._Element:
    return etree.fromstring(render_domain(complete_spec(spec, None, "lxc"), CAPS).encode())


def test_lxc_is_the_container_type():
    assert container()["type"] == "container"


def test_container_definition_sets_limits_root_and_addresses():
    root = rendered(container())
    assert root.get("type") == "lxc"
    assert root.findtext("os/type") == "exe" and root.findtext("os/init") == "/sbin/init"
    assert root.findtext("memory") == str(512 * 1024)
    assert root.findtext("memtune/hard_limit") == str(128 * 1024)
    assert root.findtext("vcpu") == "2"
    assert (root.findtext("cputune/period"), root.findtext("cputune/quota")) == ("100000", "100000")
    filesystem = root.find("devices/filesystem")
    assert filesystem.find("source").get("file") == "/var/lib/libvirt/images/ct1.img"
    assert filesystem.find("target").get("dir") == "/"
    assert filesystem.find("driver").attrib == {"type": "loop", "format": "raw"}
    assert root.find("devices/disk") is None
    assert root.find("features/privnet") is not None  # its own network namespace, vif or not
    nat, bridge = root.findall("devices/interface")
    assert nat.find("ip").attrib == {"address": "10.0.0.61", "prefix": "24"}
    assert nat.find("route").get("gateway") == "10.0.0.254"
    assert bridge.find("ip").attrib == {"address": "192.0.2.61", "prefix": "24"}
    assert bridge.find("route") is None


def test_container_round_trip_has_no_difference():
    target = complete_spec(container(cpus="1"), None, "lxc")
    parsed = parse_domain(render_domain(target, CAPS))
    assert parsed["type"] == "container"
    assert (parsed["memory"], parsed["maxmem"], parsed["vcpus"], parsed["maxvcpus"]) == (128, 512, 1, 2)
    assert diff_specs(target, dict(parsed, autostart=False)) == []


def test_container_update_changes_the_limits():
    first = complete_spec(container(), None, "lxc")
    xml = render_domain(first, CAPS)
    second = complete_spec(container(memory=256, vcpus=2), parse_domain(xml), "lxc")
    assert diff_specs(second, dict(parse_domain(xml), autostart=False)) == ["memory", "vcpus"]
    updated = parse_domain(update_domain_xml(xml, second, ["memory", "vcpus"], CAPS))
    assert (updated["memory"], updated["vcpus"], updated["uuid"]) == (256, 2, first["uuid"])
    assert [v["mac"] for v in updated["vifs"]] == [v["mac"] for v in first["vifs"]]


@pytest.mark.parametrize(
    ("params", "driver", "parameter"),
    [
        ({}, "qemu", "type"),
        ({}, "xen", "type"),
        ({"type": "hvm"}, "lxc", "type"),
    ],
)
def test_containers_only_on_lxc(params, driver, parameter):
    with pytest.raises(ValidationError) as info:
        check_driver(container(**params), driver)
    assert info.value.parameter == parameter


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"kernel": "/boot/vmlinuz"}, "kernel"),
        ({"boot_order": ["disk"]}, "boot_order"),
        ({"cdrom": "/srv/x.iso"}, "cdrom"),
        ({"firmware": "uefi"}, "firmware"),
        ({"disks": []}, "disks"),  # libvirt would run it on the host's own root filesystem
        ({"disks": [{"path": "/var/lib/libvirt/images/a.img"}, {"path": "/var/lib/libvirt/images/b.img"}]}, "disks"),
        ({"disks": [{"path": "/var/lib/libvirt/images/a.qcow2", "format": "qcow2"}]}, "disks[0]"),
    ],
)
def test_container_rules_name_the_parameter(params, parameter):
    with pytest.raises(ValidationError) as info:
        complete_spec(container(**params), None, "lxc", prefix="guests[0].")
    assert info.value.parameter == "guests[0]." + parameter


def test_a_guest_without_type_on_lxc_is_a_container():
    spec = validate_spec({"name": "ct2", "disks": [{"path": "/var/lib/libvirt/images/ct2.img"}]})
    check_driver(spec, "lxc")
    assert complete_spec(spec, None, "lxc")["type"] == "container"


def test_network_gateways():
    xml = (
        "<network><name>n</name><ip address='10.0.0.254' netmask='255.255.255.0'/>"
        "<ip family='ipv6' address='fd00::1' prefix='64'/><ip address='10.1.0.1' prefix='16'/></network>"
    )
    assert network_gateways(xml) == {4: (24, "10.0.0.254"), 6: (64, "fd00::1")}


def test_containers_only_where_the_play_allows_them():
    spec = container(disks=[])
    with pytest.raises(ValidationError, match="privileged") as info:
        check_guest_access(spec, HostAccess(), prefix="guests[1].")
    assert info.value.parameter == "guests[1].type"
    check_guest_access(spec, HostAccess(allow_containers=True))
    check_guest_access(spec, HostAccess(allow_host_resources=True))
    check_guest_access(validate_spec({"name": "vm", "type": "hvm"}), HostAccess())
    with pytest.raises(ValueError, match="allow_containers"):
        profile_value_problem("type", "LXC")
    profile_value_problem("type", "container", HostAccess(allow_containers=True))
    profile_value_problem("type", "hvm")


def test_a_container_takes_no_extra_xml_unless_trusted():
    timers = '<clock offset="utc"><timer name="rtc" present="yes"/></clock>'
    spec = container(extra={"xml": [timers]})
    dirs = ("/var/lib/libvirt/images",)
    with pytest.raises(ValidationError, match="host device") as info:
        check_guest_access(spec, HostAccess(storage_dirs=dirs, allow_containers=True), prefix="guests[0].")
    assert info.value.parameter == "guests[0].extra.xml[0]"
    check_guest_access(spec, HostAccess(storage_dirs=dirs, allow_containers=True, trusted_extra_xml=True))


def test_a_redefined_container_keeps_its_owner():
    first = complete_spec(container(), None, "lxc")
    root = etree.fromstring(render_domain(first, CAPS).encode())
    root.find("metadata/{urn:lcfg:xen:guest:1}guest").set("owner", "site-a")
    xml = etree.tostring(root, encoding="unicode")
    second = complete_spec(container(memory=256), parse_domain(xml), "lxc")
    updated = etree.fromstring(update_domain_xml(xml, second, ["memory"], CAPS).encode())
    assert updated.find("metadata/{urn:lcfg:xen:guest:1}guest").get("owner") == "site-a"
