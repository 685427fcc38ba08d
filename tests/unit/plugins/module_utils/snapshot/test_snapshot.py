"""Unit tests for plugins/module_utils/snapshot/: the pure plan, and the engine on libvirt's test driver."""

from __future__ import annotations

import pytest

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import Conflict, NotFound, ValidationError
from ansible_collections.lcfg.xen.plugins.module_utils.snapshot.plan import (
    GuestFacts,
    listing,
    parse_guest_disks,
    parse_snapshot,
    plan_snapshot,
    render_snapshot,
    snapshot_refusal,
    valid_snapshot_name,
)

QCOW = {"target": "vda", "path": "/guests/a.qcow2", "format": "qcow2", "device": "disk", "readonly": False}
RAW = {"target": "vdb", "path": "/guests/b.img", "format": "raw", "device": "disk", "readonly": False}
CDROM = {"target": "hdc", "path": "/isos/d.iso", "format": "raw", "device": "cdrom", "readonly": True}


def facts(power="stopped", disks=(QCOW,), driver="qemu"):
    return GuestFacts(name="g1", driver=driver, power=power, disks=list(disks))


def snap(name, current=False, parent=None, created=1):
    return {
        "name": name,
        "description": "",
        "state": "shutoff",
        "memory": False,
        "parent": parent,
        "creation_time": created,
        "current": current,
        "disks": [],
    }


@pytest.mark.parametrize("name", ["a", "before-upgrade", "r1.2_x", "A" * 64])
def test_snapshot_names_accepted(name):
    assert valid_snapshot_name(name) == name


@pytest.mark.parametrize("name", ["", "-a", ".a", "a/b", "a b", "a\x00", "A" * 65, None, 3, "ä"])
def test_snapshot_names_refused(name):
    with pytest.raises(ValidationError, match="snapshot: invalid snapshot name"):
        valid_snapshot_name(name)


def test_create_on_stopped_guest_is_disk_only_and_predicted():
    before = [snap("s0", current=True)]
    plan = plan_snapshot(facts(), before, "s1", description="d", now=5)
    assert plan.create and not plan.memory and plan.changed
    assert plan.actions == ["create snapshot s1 (disk only)"]
    assert listing(plan.before) == {"snapshots": ["s0"], "current": "s0"}
    assert listing(plan.after) == {"snapshots": ["s0", "s1"], "current": "s1"}
    new = plan.after[-1]
    assert new["parent"] == "s0" and new["description"] == "d" and new["state"] == "shutoff"
    assert new["disks"] == [{"target": "vda", "snapshot": "internal"}]


def test_create_on_running_guest_holds_memory_and_skips_cdrom():
    plan = plan_snapshot(facts("running", (QCOW, CDROM)), [], "s1")
    assert plan.memory and plan.actions == ["create snapshot s1 (with memory)"]
    assert plan.after[0]["state"] == "running" and plan.after[0]["memory"] is True


def test_existing_snapshot_is_no_change_and_warns_on_other_description():
    plan = plan_snapshot(facts(), [snap("s1", current=True)], "s1", description="new")
    assert not plan.changed and plan.after == plan.before
    assert "exists with another description" in plan.warnings[0]
    assert not plan_snapshot(facts(), [snap("s1")], "s1").warnings


def test_existing_snapshot_is_kept_even_on_a_raw_guest():
    # nothing to do: no refusal either (the guest may have been converted since)
    assert not plan_snapshot(facts(disks=(RAW,)), [snap("s1")], "s1").changed


@pytest.mark.parametrize(
    ("kwargs", "memory", "words"),
    [
        ({"disks": (QCOW, RAW)}, None, "disk vdb (/guests/b.img) is raw; internal snapshots need every writable disk"),
        ({"disks": (dict(QCOW, format=None),)}, None, "disk vda (/guests/a.qcow2) is raw"),
        ({"disks": ()}, None, "no writable qcow2 disk"),
        ({"disks": (CDROM,)}, None, "no writable qcow2 disk"),
        ({"driver": "xen"}, None, "Xen (libxl) driver has no snapshots"),
        ({"driver": "lxc"}, None, "LXC driver has no snapshots"),
        ({"power": "running"}, False, "of a running guest must include its memory"),
        ({"power": "paused"}, False, "of a paused guest must include its memory"),
        ({"power": "stopped"}, True, "shut off, so there is no memory"),
    ],
)
def test_refusals_name_guest_disk_and_fix(kwargs, memory, words):
    problem = snapshot_refusal(facts(**kwargs), memory)
    assert problem.startswith("guest g1: ") and words in problem
    with pytest.raises(Conflict, match="guest g1: "):
        plan_snapshot(facts(**kwargs), [], "s1", memory=memory)


def test_memory_stated_as_it_is_is_accepted():
    assert snapshot_refusal(facts("running"), True) is None
    assert snapshot_refusal(facts("stopped"), False) is None


def test_delete_moves_children_and_current_to_parent():
    before = [snap("a", created=1), snap("b", parent="a", current=True, created=2), snap("c", parent="b", created=3)]
    plan = plan_snapshot(facts(), before, "b", state="absent")
    assert plan.delete and plan.actions == ["delete snapshot b"]
    assert listing(plan.after) == {"snapshots": ["a", "c"], "current": "a"}
    assert next(item for item in plan.after if item["name"] == "c")["parent"] == "a"
    assert before[2]["parent"] == "b"  # the input is not changed


def test_delete_missing_snapshot_or_guest_is_no_change():
    assert not plan_snapshot(facts(), [snap("a")], "b", state="absent").changed
    assert not plan_snapshot(None, [], "b", state="absent").changed


def test_revert_always_reverts_and_makes_it_current():
    before = [snap("a", current=False), snap("b", parent="a", current=True, created=2)]
    plan = plan_snapshot(facts(), before, "a", state="reverted", force=True)
    assert plan.revert and plan.force and plan.actions == ["revert to snapshot a"]
    assert listing(plan.after)["current"] == "a"
    again = plan_snapshot(facts(), plan.after, "a", state="reverted")
    assert again.changed  # documented: libvirt cannot tell whether the guest changed since


def test_revert_to_missing_snapshot_names_what_there_is():
    with pytest.raises(NotFound, match=r"guest g1 has no snapshot b to revert to \(it has: a\)"):
        plan_snapshot(facts(), [snap("a")], "b", state="reverted")


@pytest.mark.parametrize("driver", ["xen", "lxc"])
def test_driver_without_snapshots_is_refused_first_and_absent_is_no_change(driver):
    for state in ("present", "reverted"):
        with pytest.raises(Conflict, match="driver has no snapshots"):
            plan_snapshot(facts(driver=driver), [], "s1", state=state)
    assert not plan_snapshot(facts(driver=driver), [], "s1", state="absent").changed


def test_missing_guest_fails_for_present_and_reverted():
    for state in ("present", "reverted"):
        with pytest.raises(NotFound, match="the guest does not exist"):
            plan_snapshot(None, [], "s1", state=state)


def test_unknown_state():
    with pytest.raises(ValidationError, match="state: must be one of"):
        plan_snapshot(facts(), [], "s1", state="listed")


def test_parse_and_render_round_trip():
    xml = render_snapshot("s1", "a <b> & c")
    assert xml == "<domainsnapshot><name>s1</name><description>a &lt;b&gt; &amp; c</description></domainsnapshot>"
    assert render_snapshot("s1", "") == "<domainsnapshot><name>s1</name></domainsnapshot>"
    libvirt_xml = (
        "<domainsnapshot><name>s2</name><description>x</description><state>running</state>"
        "<parent><name>s1</name></parent><creationTime>1700000000</creationTime>"
        "<memory snapshot='internal'/><disks><disk name='vda' snapshot='internal'/></disks>"
        "<domain type='kvm'><name>g1</name></domain></domainsnapshot>"
    )
    assert parse_snapshot(libvirt_xml, True) == {
        "name": "s2",
        "description": "x",
        "state": "running",
        "memory": True,
        "parent": "s1",
        "creation_time": 1700000000,
        "current": True,
        "disks": [{"target": "vda", "snapshot": "internal"}],
    }
    assert (
        parse_snapshot("<domainsnapshot><name>s</name><memory snapshot='no'/></domainsnapshot>", False)["memory"]
        is False
    )


def test_parse_guest_disks():
    xml = """<domain><devices>
      <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/g/a.qcow2'/>
        <target dev='vda'/></disk>
      <disk type='block' device='disk'><source dev='/dev/vg/b'/><target dev='vdb'/></disk>
      <disk type='file' device='cdrom'><target dev='hdc'/><readonly/></disk>
    </devices></domain>"""
    assert parse_guest_disks(xml) == [
        {"target": "vda", "path": "/g/a.qcow2", "format": "qcow2", "device": "disk", "readonly": False},
        {"target": "vdb", "path": "/dev/vg/b", "format": None, "device": "disk", "readonly": False},
        {"target": "hdc", "path": None, "format": None, "device": "cdrom", "readonly": True},
    ]


# --- the engine on libvirt's test driver (snapshots kept in memory, per connection) ---

# a fixed UUID: test:///default keeps its domains while any connection of the process is open,
# and a redefinition with the same name and UUID replaces the definition
TEST_GUEST = """<domain type='test'><name>snapunit</name><uuid>5e1f0c2a-7d3b-4c8e-9a61-2b7f3d9e0a11</uuid>
<memory unit='MiB'>128</memory><vcpu>1</vcpu>
<os><type>hvm</type></os><devices>
<disk type='file' device='disk'><driver name='qemu' type='{fmt}'/><source file='/guests/snapunit.img'/>
<target dev='vda' bus='virtio'/></disk></devices></domain>"""


@pytest.fixture
def conn():
    libvirt = pytest.importorskip("libvirt")
    connection = libvirt.open("test:///default")
    _forget(connection, libvirt)  # another test's connection may have kept the shared state
    yield connection
    _forget(connection, libvirt)
    connection.close()


def _forget(connection, libvirt) -> None:
    try:
        dom = connection.lookupByName("snapunit")
    except libvirt.libvirtError:
        return
    for snap in dom.listAllSnapshots():
        snap.delete(0)
    dom.undefine()


def _define(conn, fmt="qcow2"):
    return conn.defineXML(TEST_GUEST.format(fmt=fmt))


def test_engine_create_revert_delete_on_test_driver(conn):
    from ansible_collections.lcfg.xen.plugins.module_utils.snapshot.engine import (  # noqa: PLC0415
        converge_snapshot,
        snapshot_info,
    )

    _define(conn)
    params = {"name": "snapunit", "snapshot": "s1", "description": "first"}
    predicted = converge_snapshot(conn, params, check_mode=True)
    assert predicted["changed"] and snapshot_info(conn, "snapunit")["snapshots"] == []
    done = converge_snapshot(conn, params)
    assert done["actions"] == ["create snapshot s1 (disk only)"]
    assert done["after"] == predicted["after"] == {"snapshots": ["s1"], "current": "s1"}
    assert done["diff"] == {"before": {"snapshots": [], "current": None}, "after": done["after"]}
    info = snapshot_info(conn, "snapunit")
    assert info["current"] == "s1" and info["snapshots"][0]["description"] == "first"
    assert not converge_snapshot(conn, params)["changed"]
    converge_snapshot(conn, dict(params, snapshot="s2"))
    assert snapshot_info(conn, "snapunit", "s2")["snapshots"][0]["parent"] == "s1"
    reverted = converge_snapshot(conn, dict(params, state="reverted"))
    assert reverted["changed"] and reverted["after"]["current"] == "s1"
    gone = converge_snapshot(conn, dict(params, snapshot="s2", state="absent"))
    assert gone["after"] == {"snapshots": ["s1"], "current": "s1"}
    assert not converge_snapshot(conn, dict(params, snapshot="s2", state="absent"))["changed"]
    assert snapshot_info(conn, "nosuchguest") == {"exists": False, "snapshots": [], "current": None}


def test_engine_refuses_raw_and_names_guest_in_result(conn):
    from ansible_collections.lcfg.xen.plugins.module_utils.snapshot.engine import converge_snapshot  # noqa: PLC0415

    _define(conn, "raw")
    with pytest.raises(Conflict) as caught:
        converge_snapshot(conn, {"name": "snapunit", "snapshot": "s1"}, check_mode=True)
    assert "disk vda (/guests/snapunit.img) is raw" in caught.value.message
    assert caught.value.result == {"name": "snapunit", "snapshot": "s1"}
    with pytest.raises(NotFound, match="guest nosuch: the guest does not exist"):
        converge_snapshot(conn, {"name": "nosuch", "snapshot": "s1"})
    with pytest.raises(ValidationError, match="description: contains the control character"):
        converge_snapshot(conn, {"name": "snapunit", "snapshot": "s1", "description": "a\x01"})
