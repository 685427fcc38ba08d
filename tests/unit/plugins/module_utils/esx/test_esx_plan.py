"""Pure tests of plugins/module_utils/esx/plan.py: a guest's options as an ESX VM, the rules
ESX adds, and what plan_vm changes (and does not) for every state."""

from __future__ import annotations

import pytest

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import Conflict, ValidationError
from ansible_collections.lcfg.xen.plugins.module_utils.esx.engine import guest_options
from ansible_collections.lcfg.xen.plugins.module_utils.esx.plan import DEFAULT_DISK_GB, esx_desired, plan_vm

HOST = {"name": "esx1", "memory_mb": 4096, "port_groups": ["VM Network", "xenbr1"], "datastores": ["ds1"]}


def guest(**params):
    base = {
        "name": "web1",
        "memory": 512,
        "vcpus": 1,
        "disks": [{"path": "/guests/web1.img", "size_gb": 4}],
        "vifs": [{"bridge": "xenbr0", "mac": "00:50:56:00:00:01"}],
        "autostart": True,
    }
    base.update(params)
    return esx_desired(base, {"xenbr0": "VM Network"})


def existing(**over):
    vm = {
        "name": "web1",
        "memory": 512,
        "vcpus": 1,
        "memory_hot_add": True,
        "vcpus_hot_add": True,
        "disks": [{"size_gb": 4.0}],
        "vifs": [{"mac": "00:50:56:00:00:01", "port_group": "VM Network"}],
        "autostart": True,
        "state": "running",
        "owned": True,
    }
    vm.update(over)
    return vm


def test_profile_bridges_become_port_groups():
    desired = guest(vifs=[{"bridge": "xenbr0"}, {"bridge": "xenbr1", "mac": "00:50:56:00:00:02"}])
    assert desired["vifs"] == [
        {"mac": None, "port_group": "VM Network"},
        {"mac": "00:50:56:00:00:02", "port_group": "xenbr1"},
    ]
    assert guest(disks=[{"path": "/guests/a.img"}])["disks"] == [{"size_gb": float(DEFAULT_DISK_GB)}]


def test_new_vm_is_created_started_and_autostarted():
    plan = plan_vm(guest(), None, HOST, state="running")
    assert plan.actions == ["create", "power_on", "set_autostart"]
    assert plan.before == {"state": "absent"} and plan.after["state"] == "running"
    assert plan.after["memory"] == 512 and plan.after["disks"] == [{"size_gb": 4.0}]


def test_matching_vm_changes_nothing():
    plan = plan_vm(guest(), existing(), HOST, state="running")
    assert plan.actions == [] and not plan.changed and plan.before == plan.after


def test_running_vm_takes_increases_live_and_reports_decreases():
    plan = plan_vm(guest(memory=1024, vcpus=2), existing(), HOST, state="running")
    assert plan.reconfigure == {"memory": 1024, "vcpus": 2} and plan.not_applied == []
    plan = plan_vm(guest(memory=256), existing(), HOST, state="running")
    assert plan.reconfigure == {} and plan.not_applied == ["memory"]
    assert "needs the VM stopped" in plan.warnings[0] and plan.after["memory"] == 512
    plan = plan_vm(guest(memory=1024), existing(memory_hot_add=False), HOST, state="running")
    assert plan.not_applied == ["memory"]


def test_stopping_first_lets_every_change_through():
    plan = plan_vm(guest(memory=256), existing(), HOST, state="stopped")
    assert plan.actions == ["power_off", "set_memory"] and plan.after["state"] == "stopped"


def test_disks_are_added_and_grown_never_shrunk_or_removed():
    disks = [{"path": "/g/a.img", "size_gb": 6}, {"path": "/g/b.img", "size_gb": 2}]
    plan = plan_vm(guest(disks=disks), existing(), HOST, state="running")
    assert plan.reconfigure["grow_disks"] == [{"index": 0, "size_gb": 6.0}]
    assert plan.reconfigure["add_disks"] == [{"size_gb": 2.0}]
    assert plan.after["disks"] == [{"size_gb": 6.0}, {"size_gb": 2.0}]
    plan = plan_vm(guest(disks=[{"path": "/g/a.img", "size_gb": 1}]), existing(), HOST, state="running")
    assert plan.reconfigure == {} and "never shrunk" in plan.warnings[0]
    plan = plan_vm(guest(disks=[]), existing(), HOST, state="running")
    assert plan.reconfigure == {} and "never removed" in plan.warnings[0]


def test_nics_follow_the_list():
    vifs = [{"bridge": "xenbr1", "mac": "00:50:56:00:00:01"}, {"bridge": "xenbr0"}]
    plan = plan_vm(guest(vifs=vifs), existing(), HOST, state="running")
    assert plan.reconfigure["nics"] == [
        {"match": 0, "mac": "00:50:56:00:00:01", "port_group": "xenbr1"},
        {"match": None, "mac": None, "port_group": "VM Network"},
    ]


def test_absent_unregisters_and_keeps_disks_unless_asked():
    plan = plan_vm(guest(), existing(), HOST, state="absent")
    assert plan.actions == ["power_off", "remove"] and "stay on the datastore" in plan.warnings[0]
    assert plan_vm(guest(), existing(), HOST, state="absent", remove_disks=True).warnings == []
    assert plan_vm(guest(), None, HOST, state="absent").actions == []


def test_a_vm_not_made_by_lcfg_xen_needs_adopt():
    with pytest.raises(Conflict, match="adopt"):
        plan_vm(guest(), existing(owned=False), HOST, state="running")
    assert plan_vm(guest(), existing(owned=False), HOST, state="running", adopt=True).actions == []


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"vifs": [{"nettype": "nat"}]}, "vifs[0].nettype"),
        ({"type": "container"}, "type"),
        ({"type": "pvh"}, "type"),
        ({"kernel": "/boot/vmlinuz"}, "kernel"),
        ({"cdrom": "/srv/d.iso"}, "cdrom"),
        ({"cpus": "0-1"}, "cpus"),
        ({"firmware": "uefi"}, "firmware"),
        ({"disks": [{"path": "/dev/sdb", "type": "phy"}]}, "disks[0].type"),
        ({"memory": "lots"}, "memory"),
    ],
)
def test_what_esx_cannot_take_names_the_option(params, parameter):
    with pytest.raises(ValidationError) as info:
        guest(**params)
    assert info.value.parameter == parameter


@pytest.mark.parametrize(
    ("params", "parameter", "words"),
    [
        ({"memory": 8192}, "memory", "more than the ESX host has"),
        ({"vifs": [{"bridge": "xenbr9"}]}, "vifs[0].bridge", "port group 'xenbr9' does not exist"),
    ],
)
def test_what_the_host_lacks_is_refused_before_any_change(params, parameter, words):
    with pytest.raises(ValidationError, match=words) as info:
        plan_vm(guest(**params), None, HOST, state="running")
    assert info.value.parameter == parameter


def test_a_whole_inventory_guest_is_taken_as_it_is():
    hostvar = {
        "name": "web1",
        "type": "pv",
        "memory": 256,
        "maxmem": 256,
        "vcpus": 1,
        "cpus": None,
        "kernel": None,
        "template": None,
        "profile_url": None,
        "partition": None,
        "groups": [],
        "disks": [
            {"path": "/g/web1.img", "size_gb": 2, "format": None, "tag": "root", "name": "web1", "type": "image"}
        ],
        "vifs": [{"bridge": "xenbr0", "mac": None, "ip": None, "nettype": "bridge", "network": None, "tag": "eth0"}],
        "autostart": True,
    }
    params, prefix = guest_options({"guest": hostvar, "state": "running", "force_stop": True})
    assert prefix == "guest." and params["state"] == "running" and params["force_stop"] is True
    desired = esx_desired(params, {"xenbr0": "VM Network"}, prefix)
    assert desired["disks"] == [{"size_gb": 2.0}] and desired["vifs"] == [{"mac": None, "port_group": "VM Network"}]
    with pytest.raises(ValidationError) as info:
        esx_desired(guest_options({"guest": dict(hostvar, cdrom="/srv/x.iso"), "state": "present"})[0], None, "guest.")
    assert info.value.parameter == "guest.cdrom"
    with pytest.raises(ValidationError) as info:
        guest_options({"guest": dict(hostvar, memory="lots"), "state": "present"})
    assert info.value.parameter == "guest.memory"


def test_nics_by_mac_first_then_by_position():
    have = existing(
        vifs=[
            {"mac": "00:50:56:00:10:02", "port_group": "VM Network"},
            {"mac": "00:50:56:00:10:01", "port_group": "VM Network"},
        ]
    )
    vifs = [{"bridge": "xenbr0"}, {"bridge": "xenbr0", "mac": "00:50:56:00:10:02"}]
    plan = plan_vm(guest(vifs=vifs), have, HOST, state="running")
    assert plan.reconfigure == {} and plan.after["vifs"] == have["vifs"]  # both kept, in the VM's order
    vifs = [{"bridge": "xenbr1"}, {"bridge": "xenbr0", "mac": "00:50:56:00:10:02"}, {"bridge": "xenbr0"}]
    plan = plan_vm(guest(vifs=vifs), have, HOST, state="running")
    assert [n["match"] for n in plan.reconfigure["nics"]] == [1, 0, None]
    assert plan.after["vifs"] == [
        {"mac": "00:50:56:00:10:02", "port_group": "VM Network"},
        {"mac": "00:50:56:00:10:01", "port_group": "xenbr1"},
        {"mac": None, "port_group": "VM Network"},
    ]


def test_options_left_out_leave_the_vm_as_it_is():
    params = {"name": "web1", "memory": 512, "vcpus": 1}
    plan = plan_vm(esx_desired(params), existing(), HOST, state="running")
    assert plan.actions == [] and plan.after["vifs"] == existing()["vifs"]
    new = plan_vm(esx_desired({"name": "new1"}), None, HOST, state="present")
    assert (new.after["memory"], new.after["vcpus"], new.after["disks"], new.after["vifs"]) == (512, 1, [], [])


def test_sizes_compare_in_kib():
    plan = plan_vm(guest(disks=[{"path": "/g/a.img", "size_gb": 1.0004}]), existing(disks=[{"size_gb": 4.0}]), HOST)
    assert "never shrunk" in plan.warnings[0]
    odd = 1.0004
    kib = round(odd * 1024 * 1024)
    plan = plan_vm(
        guest(disks=[{"path": "/g/a.img", "size_gb": odd}]), existing(disks=[{"size_gb": kib / 1024**2}]), HOST
    )
    assert plan.reconfigure == {}


def test_a_datastore_the_host_lacks_is_refused_before_any_change():
    with pytest.raises(ValidationError, match="datastore 'nosuch' is not on the ESX host") as info:
        plan_vm(guest(), None, HOST, state="running", datastore="nosuch")
    assert info.value.parameter == "datastore"
