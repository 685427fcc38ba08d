"""Unit tests of the virtual group engine (domain/group.py): pure precedence logic, and
plan/apply against libvirt's test driver (test:///default, state per connection)."""

from __future__ import annotations

import pytest

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import NotFound, ValidationError
from ansible_collections.lcfg.xen.plugins.module_utils.domain import group as grp


def test_settings_are_validated_and_normalised():
    out = grp.validate_settings(
        {"memory": "256", "maxmem": 512, "cpus": "3,1,2", "nettype": "bridge", "bridge": "xenbr0"}
    )
    assert out["memory"] == 256 and out["maxmem"] == 512
    assert out["cpus"] == "1-3"
    assert out["vcpus"] is None and out["script"] is None


@pytest.mark.parametrize(
    "params, parameter",
    [
        ({"memory": 512, "maxmem": 256}, "memory"),
        ({"vcpus": 4, "maxvcpus": 2}, "vcpus"),
        ({"memory": 8}, "memory"),
        ({"nettype": "wifi"}, "nettype"),
        ({"nettype": "nat", "bridge": "xenbr0"}, "bridge"),
        ({"bridge": "a-bridge-name-far-too-long"}, "bridge"),
        ({"cpus": "x"}, "cpus"),
    ],
)
def test_bad_settings_name_the_parameter(params, parameter):
    with pytest.raises(ValidationError) as err:
        grp.validate_settings(params)
    assert err.value.parameter == parameter


def test_members_accept_names_dicts_and_inventory_specs():
    members = grp.validate_members(
        [
            "node1",
            {"name": "node2", "memory": 128},
            {
                "name": "node3",
                "uuid": None,
                "disks": [],
                "autostart": True,
                "groups": ["c"],
                "vifs": [
                    {
                        "tag": "vif1",
                        "mac": "52:54:00:AA:00:01",
                        "ip": "10.0.0.1",
                        "bridge": "xenbr1",
                        "nettype": "bridge",
                        "network": None,
                        "script": None,
                    }
                ],
            },
        ]
    )
    assert [m["name"] for m in members] == ["node1", "node2", "node3"]
    assert members[0]["memory"] is None and members[1]["memory"] == 128
    assert members[2]["vifs"][0]["mac"] == "52:54:00:aa:00:01"


@pytest.mark.parametrize(
    "members, parameter",
    [
        ([], "members"),
        (["node1", "node1"], "members[1].name"),
        ([{"name": "node1", "memroy": 5}], "members[0].memroy"),
        ([{"name": "bad/name"}], "members[0].name"),
        ([{"name": "n", "vifs": [{"mac": "zz"}]}], "members[0].vifs[0].mac"),
        ([{"name": "n", "vifs": [{"tag": "a", "colour": "red"}]}], "members[0].vifs[0].colour"),
    ],
)
def test_bad_members_name_the_parameter(members, parameter):
    with pytest.raises(ValidationError) as err:
        grp.validate_members(members)
    assert err.value.parameter == parameter


def test_member_value_wins_group_fills_in_rest_left_alone():
    settings = grp.validate_settings({"memory": 256, "vcpus": 2})
    member = grp.validate_members([{"name": "n", "memory": 128}])[0]
    target = grp.member_target(settings, member)
    assert target == {
        "name": "n",
        "memory": 128,
        "maxmem": None,
        "vcpus": 2,
        "maxvcpus": None,
        "cpus": None,
        "vifs": None,
    }


def test_combined_values_must_be_consistent():
    settings = grp.validate_settings({"memory": 512})
    member = grp.validate_members([{"name": "n", "maxmem": 256}])[0]
    with pytest.raises(ValidationError) as err:
        grp.member_target(settings, member)
    assert "maxmem" in str(err.value)


def test_vif_values_per_vif_precedence():
    current = {
        "vifs": [
            {
                "tag": "vif0",
                "mac": "52:54:00:00:00:01",
                "nettype": "bridge",
                "bridge": "xenbr0",
                "network": None,
                "script": None,
                "ip": None,
                "model": "virtio",
            },
            {
                "tag": "vif1",
                "mac": "52:54:00:00:00:02",
                "nettype": "bridge",
                "bridge": "xenbr0",
                "network": None,
                "script": None,
                "ip": None,
                "model": "virtio",
            },
        ]
    }
    settings = grp.validate_settings({"bridge": "xenbr1"})
    member = grp.validate_members([{"name": "n", "vifs": [{"tag": "vif1", "nettype": "nat"}]}])[0]
    vifs = grp.member_target(settings, member, current)["vifs"]
    assert vifs[0]["bridge"] == "xenbr1" and vifs[0]["nettype"] == "bridge"
    assert vifs[1]["nettype"] == "nat" and vifs[1]["bridge"] is None and vifs[1]["network"] == "lcfg-nat"
    assert [v["mac"] for v in vifs] == ["52:54:00:00:00:01", "52:54:00:00:00:02"]
    assert current["vifs"][0]["bridge"] == "xenbr0"  # not mutated


def test_group_bridge_leaves_a_members_nat_vif_alone_with_a_warning():
    # The seed: cluster1 sets groupbridge xenbr0; its members' vifs are NAT.
    current = {
        "vifs": [
            {
                "tag": "vif1",
                "mac": "00:16:2a:24:a3:7c",
                "nettype": "nat",
                "bridge": None,
                "network": "lcfg-nat",
                "script": None,
                "ip": "10.0.0.1",
                "model": "virtio",
            },
            {
                "tag": "vif2",
                "mac": "00:16:2a:24:a3:7d",
                "nettype": "bridge",
                "bridge": "br9",
                "network": None,
                "script": None,
                "ip": None,
                "model": "virtio",
            },
        ]
    }
    settings = grp.validate_settings({"bridge": "xenbr0"})
    member = grp.validate_members(["node1"])[0]
    warnings: list = []
    vifs = grp.member_target(settings, member, current, warnings)["vifs"]
    assert (vifs[0]["nettype"], vifs[0]["bridge"], vifs[0]["network"]) == ("nat", None, "lcfg-nat")
    assert (vifs[1]["nettype"], vifs[1]["bridge"]) == ("bridge", "xenbr0")
    assert warnings == [
        "guest node1: the group's bridge xenbr0 is ignored for vif vif1, whose nettype is "
        "nat (a group bridge only applies to bridge vifs)"
    ]
    # the member's own nettype wins over the current one too, and still no bridge on it
    member = grp.validate_members([{"name": "node1", "vifs": [{"tag": "vif2", "nettype": "route"}]}])[0]
    warnings.clear()
    vifs = grp.member_target(settings, member, current, warnings)["vifs"]
    assert (vifs[1]["nettype"], vifs[1]["bridge"]) == ("route", None)
    assert len(warnings) == 2


def test_summarise_reports_group_fields_only():
    before = {
        "name": "n",
        "memory": 128,
        "maxmem": 256,
        "vcpus": 1,
        "maxvcpus": 2,
        "cpus": "",
        "vifs": [],
        "disks": [{"path": "/x"}],
        "state": "running",
    }
    after = dict(before, memory=192)
    entry = grp.summarise(
        {
            "name": "n",
            "changed": True,
            "actions": ["redefine", "set_memory_live"],
            "before": before,
            "after": after,
            "pending_restart": [],
            "pending_restart_fields": [],
            "warnings": [],
        }
    )
    assert entry["changed_fields"] == ["memory"] and entry["live"] == ["memory"]
    assert "disks" not in entry["before"] and entry["state"] == "running"


libvirt = pytest.importorskip("libvirt")


@pytest.fixture
def conn():
    connection = libvirt.open("test:///default")
    yield connection
    connection.close()


def _define(conn, name: str) -> None:
    from ansible_collections.lcfg.xen.plugins.module_utils.domain import engine as _domain

    result = _domain.converge_domain(
        conn, {"name": name, "memory": 128, "maxmem": 256, "vcpus": 1, "maxvcpus": 2, "state": "running"}
    )
    assert result["changed"]


def test_plan_and_apply_on_the_test_driver(conn):
    for name in ("ga", "gb"):
        _define(conn, name)
    settings = grp.validate_settings({"memory": 192, "vcpus": 2})
    members = grp.validate_members(["ga", {"name": "gb", "memory": 160}])
    predicted = grp.apply_group(conn, grp.plan_group(conn, settings, members, "g"), check_mode=True)
    assert predicted["changed_members"] == ["ga", "gb"]
    assert conn.lookupByName("ga").info()[2] == 128 * 1024  # check mode changed nothing
    applied = grp.apply_group(conn, grp.plan_group(conn, settings, members, "g"))
    assert applied["diff"] == predicted["diff"]
    assert conn.lookupByName("ga").info()[2] == 192 * 1024
    assert conn.lookupByName("gb").info()[2] == 160 * 1024
    assert conn.lookupByName("gb").info()[3] == 2
    assert [m["name"] for m in applied["results"]] == ["ga", "gb"]  # results in member order
    assert "ga: set_memory_live" in applied["actions"] and applied["pending_restart"] == []
    again = grp.apply_group(conn, grp.plan_group(conn, settings, members, "g"))
    assert again["changed"] is False


def test_missing_member_fails_before_any_change(conn):
    _define(conn, "gc")
    settings = grp.validate_settings({"memory": 200})
    members = grp.validate_members(["gc", "nosuch"])
    with pytest.raises(NotFound) as err:
        grp.plan_group(conn, settings, members, "g")
    assert "nosuch" in str(err.value)
    assert conn.lookupByName("gc").info()[2] == 128 * 1024


def test_member_of_another_owner_is_refused_before_any_change(conn):
    from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import Conflict, ValidationError
    from ansible_collections.lcfg.xen.plugins.module_utils.domain import engine as _domain
    from ansible_collections.lcfg.xen.plugins.module_utils.domain import prune

    spec = {"name": "gown", "memory": 128, "maxmem": 256, "vcpus": 1, "maxvcpus": 2, "state": "running"}
    _domain.converge_guests(conn, [spec], owner="site-a")
    _define(conn, "gfree")  # lcfg.xen's, recorded with no owner
    assert prune.owner_of(conn.lookupByName("gown").XMLDesc(0)) == (True, "site-a")
    settings = grp.validate_settings({"memory": 200})
    members = grp.validate_members(["gfree", "gown"])
    with pytest.raises(Conflict) as err:
        grp.plan_group(conn, settings, members, "g", owner="site-b")
    assert "group g: guest gown belongs to another site" in str(err.value) and "'site-a'" in str(err.value)
    with pytest.raises(ValidationError, match="owner"):
        grp.plan_group(conn, settings, members, "g", owner="-bad")
    # no owner given: any lcfg.xen member is planned, as before
    assert [p.name for p in grp.plan_group(conn, settings, members, "g")] == ["gfree", "gown"]
    # its own owner: changed, and the recorded owner kept
    applied = grp.apply_group(conn, grp.plan_group(conn, settings, members, "g", owner="site-a"))
    assert applied["changed_members"] == ["gfree", "gown"]
    assert conn.lookupByName("gown").info()[2] == 200 * 1024
    assert prune.owner_of(conn.lookupByName("gown").XMLDesc(0)) == (True, "site-a")
