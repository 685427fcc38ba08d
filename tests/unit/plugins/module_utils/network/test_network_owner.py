"""xen_bridge's record of the libvirt networks it created, and DHCP reservation names."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import Conflict, ValidationError, XenError
from ansible_collections.lcfg.xen.plugins.module_utils.network.owner import (
    check_owned,
    read_owned,
    update_owned,
)
from ansible_collections.lcfg.xen.plugins.module_utils.network.request import dhcp_host_name, normalise_request

UUID = "3f0c1d7e-8a31-4a43-9f5e-1f2a3b4c5d6e"


def test_record_round_trip_is_private_and_atomic(tmp_path):
    path = str(tmp_path / "state" / "networks.json")
    assert read_owned(path) == {}
    update_owned(path, {UUID: "lcfg-nat"}, set())
    assert read_owned(path) == {UUID: "lcfg-nat"}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert os.listdir(os.path.dirname(path)) == ["networks.json"]  # no temporary left behind
    update_owned(path, {}, {UUID})
    assert read_owned(path) == {}


def test_record_in_a_directory_open_to_others_is_refused(tmp_path):
    directory = tmp_path / "state"
    directory.mkdir(mode=0o777)
    directory.chmod(0o777)
    with pytest.raises(XenError, match="not a private directory"):
        update_owned(str(directory / "networks.json"), {UUID: "lcfg-nat"}, set())


@pytest.mark.parametrize("content", ["{not json", "[]", '{"networks": []}'])
def test_damaged_record_is_an_error_naming_the_file(tmp_path, content):
    path = tmp_path / "networks.json"
    path.write_text(content)
    with pytest.raises(XenError, match=str(path)):
        read_owned(str(path))


def test_only_recorded_or_adopted_networks_change():
    request = normalise_request({"name": "default", "mode": "nat", "address": "192.168.122.254/24"})
    actions = ["redefine libvirt network default (address)"]
    check_owned(request, None, actions, {}, "/state")  # a new network
    check_owned(request, UUID, [], {}, "/state")  # no change
    check_owned(request, UUID, actions, {UUID: "default"}, "/state")  # created by xen_bridge
    check_owned(dict(request, adopt=True), UUID, actions, {}, "/state")  # the play adopts it
    with pytest.raises(Conflict, match=r"networks\[2\]\.name: libvirt network default .* adopt: true"):
        check_owned(request, UUID, actions, {}, "/state", "networks[2].")
    with pytest.raises(Conflict, match="was not created by lcfg.xen"):  # same UUID, other name
        check_owned(request, UUID, actions, {UUID: "lcfg-nat"}, "/state")


@pytest.mark.parametrize(
    "name, reserved",
    [
        ("node1", "node1"),
        ("node1.example.org", "node1.example.org"),
        ("web_1", None),
        ("g" * 64, None),
        ("a.b_c", None),
    ],
)
def test_reservation_name_is_the_guest_name_only_when_dns_allows_it(name, reserved):
    assert dhcp_host_name(name, "dhcp_hosts[0].name") == reserved


@pytest.mark.parametrize("name", ["x,set:evil", "a\nb", "-lead", "", "g" * 65])
def test_a_name_that_is_no_guest_name_is_refused(name):
    with pytest.raises(ValidationError, match=r"dhcp_hosts\[0\]\.name"):
        dhcp_host_name(name, "dhcp_hosts[0].name")
