"""plan/apply of plugins/module_utils/domain/ (plan.py, apply.py, engine.py) against libvirt's in-process test driver.

Each test opens a ``test:///default`` connection and removes its ``lcfgtest-dom-`` guests
afterwards (the driver's state is shared by the connections of a process while one lives).
"""

from __future__ import annotations

import pytest
from lxml import etree

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import (
    Conflict,
    LibvirtFailure,
    ValidationError,
    XenError,
)
from ansible_collections.lcfg.xen.plugins.module_utils.common.host_access import HostAccess
from ansible_collections.lcfg.xen.plugins.module_utils.common.libvirt import libvirt, open_connection
from ansible_collections.lcfg.xen.plugins.module_utils.domain import calls, current
from ansible_collections.lcfg.xen.plugins.module_utils.domain import engine as _domain
from ansible_collections.lcfg.xen.plugins.module_utils.domain.desired import METADATA_NS
from ansible_collections.lcfg.xen.plugins.module_utils.domain.parse import carries_marker
from support import remove_named

NAME = "lcfgtest-dom-unit"


@pytest.fixture
def conn():
    connection = open_connection("test:///default")
    yield connection
    remove_named(connection.listAllDomains(0), "lcfgtest-dom-")  # the guests of this file
    connection.close()


def converge(conn, check=False, access=None, **params):
    params.setdefault("name", NAME)
    return _domain.converge_domain(conn, params, check_mode=check, access=access)


def four_steps(conn, **params):
    """check -> apply -> check -> apply; the check runs must predict the apply runs."""
    first_check = converge(conn, check=True, **params)
    first = converge(conn, **params)
    second_check = converge(conn, check=True, **params)
    second = converge(conn, **params)
    for check, real in ((first_check, first), (second_check, second)):
        assert check["changed"] == real["changed"]
        assert check["actions"] == real["actions"]
        assert check["diff"] == real["diff"]
        assert check["pending_restart_fields"] == real["pending_restart_fields"]
    assert second_check["changed"] is False and second["changed"] is False
    assert second["actions"] == []
    return first


def inactive_xml(conn, name=NAME):
    return etree.fromstring(conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode())


def test_new_guest_is_defined_started_and_idempotent(conn):
    result = four_steps(
        conn,
        memory=128,
        maxmem=256,
        vcpus=1,
        maxvcpus=2,
        autostart=True,
        state="running",
        disks=[{"path": "/var/lib/libvirt/images/lcfgtest-dom/a.img", "tag": "root"}],
        vifs=[{"bridge": "br0", "tag": "eth0"}],
    )
    assert result["changed"] is True
    assert result["actions"] == ["define", "set_autostart", "start"]
    assert result["before"] == {"name": NAME, "state": "absent"}
    dom = conn.lookupByName(NAME)
    assert dom.isActive() and dom.autostart()
    root = inactive_xml(conn)
    assert root.findtext("memory") == str(256 * 1024)
    assert root.findtext("currentMemory") == str(128 * 1024)
    assert root.find("vcpu").get("current") == "1" and root.findtext("vcpu") == "2"
    assert root.find("devices/disk/source").get("file") == "/var/lib/libvirt/images/lcfgtest-dom/a.img"
    assert result["after"]["vifs"][0]["mac"] == root.find("devices/interface/mac").get("address")
    assert result["after"]["disks"][0]["tag"] == "root"


def test_leaving_options_out_touches_nothing(conn):
    four_steps(
        conn,
        memory=128,
        vcpus=2,
        cpus="0-1",
        disks=[{"path": "/var/lib/libvirt/images/a.img"}],
        vifs=[{"bridge": "br0"}],
    )
    before = etree.tostring(inactive_xml(conn))
    result = converge(conn)
    assert result["changed"] is False
    assert etree.tostring(inactive_xml(conn)) == before


def test_live_changes_on_a_running_guest(conn):
    four_steps(conn, memory=128, maxmem=512, vcpus=1, maxvcpus=4, state="running")
    dom = conn.lookupByName(NAME)
    domain_id = dom.ID()
    result = four_steps(conn, memory=256, vcpus=3, cpus="0-1")
    assert result["actions"] == ["redefine", "set_memory_live", "set_vcpus_live", "set_cpus_live"]
    assert result["pending_restart"] == []
    state, _maxmem, memory, vcpus, _time = dom.info()
    assert (memory, vcpus) == (256 * 1024, 3)
    assert dom.ID() == domain_id  # not restarted
    root = inactive_xml(conn)
    assert root.findtext("currentMemory") == str(256 * 1024)
    assert root.find("vcpu").get("current") == "3"
    assert root.find("vcpu").get("cpuset") == "0-1"


def test_live_memory_only_uses_the_api_not_a_redefine(conn):
    four_steps(conn, memory=128, maxmem=512, state="running")
    result = four_steps(conn, memory=200)
    assert result["actions"] == ["set_memory_live"]
    assert conn.lookupByName(NAME).info()[2] == 200 * 1024
    assert inactive_xml(conn).findtext("currentMemory") == str(200 * 1024)


def test_changes_needing_a_restart_are_saved_and_reported(conn):
    four_steps(conn, memory=128, maxmem=256, state="running", vifs=[{"bridge": "br0", "tag": "a"}])
    domain_id = conn.lookupByName(NAME).ID()
    result = four_steps(
        conn, maxmem=512, vifs=[{"bridge": "br1", "tag": "a"}], kernel="/var/lib/libvirt/images/vmlinuz"
    )
    assert result["pending_restart"] == [NAME]
    assert result["pending_restart_fields"] == ["kernel", "maxmem", "vifs"]
    assert result["actions"] == ["redefine"]
    dom = conn.lookupByName(NAME)
    assert dom.isActive() and dom.ID() == domain_id
    root = inactive_xml(conn)
    assert root.findtext("memory") == str(512 * 1024)
    assert root.find("devices/interface/source").get("bridge") == "br1"
    assert result["after"]["state"] == "running"


def test_vif_script_off_xen_is_metadata_with_a_warning(conn):
    result = four_steps(conn, memory=64, vifs=[{"nettype": "nat", "script": "vif-nat", "tag": "eth0"}])
    assert any("vif-nat" in w for w in result["warnings"])
    assert result["after"]["vifs"][0]["script"] == "vif-nat"
    assert inactive_xml(conn).find("devices/interface/script") is None
    assert converge(conn, memory=64, vifs=[{"nettype": "nat", "script": "vif-nat", "tag": "eth0"}])["warnings"] == []


def test_label_changes_are_not_pending(conn):
    four_steps(
        conn,
        memory=128,
        state="running",
        vifs=[{"bridge": "br0", "tag": "a"}],
        disks=[{"path": "/var/lib/libvirt/images/a.img", "tag": "root"}],
    )
    result = four_steps(
        conn, vifs=[{"bridge": "br0", "tag": "b"}], disks=[{"path": "/var/lib/libvirt/images/a.img", "tag": "sys"}]
    )
    assert result["changed"] is True and result["pending_restart"] == []
    assert result["after"]["vifs"][0]["tag"] == "b" and result["after"]["disks"][0]["tag"] == "sys"


def test_generated_uuid_and_macs_are_kept(conn):
    conn.defineXML(f"""<domain type='test'><name>{NAME}</name><memory>131072</memory>
      <os><type>hvm</type></os><devices>
      <interface type='bridge'><mac address='52:54:00:9a:8b:7c'/><source bridge='br0'/></interface>
      <video><model type='vga'/></video></devices></domain>""")
    uuid = conn.lookupByName(NAME).UUIDString()
    # defined by hand: adopted once (only the marker is added), then matched as it is
    result = converge(conn, type="hvm", memory=128, vifs=[{"bridge": "br0"}], adopt=True)
    assert result["actions"] == ["redefine"] and result["before"] == result["after"]
    result = converge(conn, type="hvm", memory=128, vifs=[{"bridge": "br0"}])
    assert result["changed"] is False, result["actions"]
    result = four_steps(conn, memory=64, vifs=[{"bridge": "br0"}, {"bridge": "br1"}])
    root = inactive_xml(conn)
    assert root.findtext("uuid") == uuid
    macs = [m.get("address") for m in root.findall("devices/interface/mac")]
    assert macs[0] == "52:54:00:9a:8b:7c" and len(set(macs)) == 2
    assert root.find("devices/video") is not None  # a device the spec does not model survives
    assert result["after"]["uuid"] == uuid


def test_extra_is_merged_and_idempotent(conn):
    fragment = "<features><pae/></features>"
    result = four_steps(conn, memory=64, extra={"on_crash": "preserve", "xml": [fragment]})
    root = inactive_xml(conn)
    assert root.find("features/pae") is not None
    assert root.findtext("on_crash") == "preserve"
    assert result["after"]["extra"] == {
        "on_poweroff": "destroy",
        "on_reboot": "restart",
        "on_crash": "preserve",
        "domain_type": "test",
        "xml": [fragment],
    }
    # leaving extra out afterwards keeps what is there
    assert converge(conn, memory=64)["changed"] is False


def test_uuid_cannot_change_in_place(conn):
    four_steps(conn, memory=64)
    before = etree.tostring(inactive_xml(conn))
    with pytest.raises(Conflict, match="state: absent"):
        converge(conn, uuid="0b2c4d6e-8f10-4a12-9c14-16e18a20c222", memory=128)
    assert etree.tostring(inactive_xml(conn)) == before


def test_memory_above_the_guests_maxmem_fails_naming_maxmem(conn):
    four_steps(conn, memory=64, maxmem=128)
    with pytest.raises(ValidationError) as info:
        converge(conn, memory=256)
    assert info.value.parameter == "maxmem"
    assert inactive_xml(conn).findtext("currentMemory") == str(64 * 1024)


def test_stopped_and_running(conn):
    four_steps(conn, memory=64, state="running")
    result = four_steps(conn, state="stopped")
    assert result["actions"] == ["stop"]
    assert not conn.lookupByName(NAME).isActive()
    result = four_steps(conn, state="running")
    assert result["actions"] == ["start"]
    conn.lookupByName(NAME).suspend()
    result = four_steps(conn, state="running")
    assert result["actions"] == ["resume"]
    assert conn.lookupByName(NAME).state()[0] == libvirt.VIR_DOMAIN_RUNNING
    conn.lookupByName(NAME).suspend()
    result = four_steps(conn, state="stopped")  # a paused guest is resumed to be shut down
    assert result["actions"] == ["stop"]
    assert not conn.lookupByName(NAME).isActive()


def test_absent_removes_a_running_guest_and_keeps_images(conn, tmp_path):
    image = tmp_path / "lcfgtest-dom-a.img"
    image.write_bytes(b"\0" * 512)
    four_steps(
        conn, memory=64, state="running", disks=[{"path": str(image)}], access=HostAccess(storage_dirs=(str(tmp_path),))
    )
    result = four_steps(conn, state="absent")
    assert result["actions"] == ["stop", "undefine"]
    assert result["after"] == {"name": NAME, "state": "absent"}
    assert NAME not in calls.list_domains(conn)
    assert image.exists()


def test_absent_with_remove_disks(conn, tmp_path):
    image = tmp_path / "lcfgtest-dom-b.img"
    image.write_bytes(b"QFI\xfb" + b"\0" * 508)  # a qcow2 magic written by the guest means nothing
    access = HostAccess(storage_dirs=(str(tmp_path),))
    result = four_steps(conn, memory=64, disks=[{"path": str(image)}], access=access)
    assert result["after"]["disks"][0]["format"] == "raw"  # never probed: not recorded, so raw
    result = four_steps(conn, state="absent", remove_disks=True, access=access)
    assert result["actions"] == ["undefine", f"remove_disk {image}"]
    assert not image.exists()


def test_remove_disks_only_with_absent(conn):
    with pytest.raises(ValidationError) as info:
        converge(conn, memory=64, remove_disks=True)
    assert info.value.parameter == "remove_disks"
    assert NAME not in calls.list_domains(conn)


class StubbornDomain:
    """A guest that ignores shutdown requests."""

    def __init__(self, driver="QEMU"):
        self.active = True
        self.calls = []
        self.driver = driver

    def isActive(self):  # noqa: N802 - libvirt's name
        return self.active

    def state(self):
        return [libvirt.VIR_DOMAIN_RUNNING, 0]

    def shutdown(self):
        self.calls.append("shutdown")

    def shutdownFlags(self, flags):  # noqa: N802 - libvirt's name
        self.calls.append(f"shutdown({flags})")

    def destroy(self):
        self.calls.append("destroy")
        self.active = False

    def connect(self):
        return self

    def getType(self):  # noqa: N802 - the connection's, as libvirt names it
        return self.driver


def test_stop_waits_then_fails_without_force(monkeypatch):
    monkeypatch.setattr(calls, "POLL", 0.01)
    dom = StubbornDomain()
    with pytest.raises(Conflict, match="force_stop"):
        calls.stop(dom, 0.05, False, name=NAME)
    assert dom.calls == ["shutdown"] and dom.active


def test_stop_destroys_after_the_timeout_with_force(monkeypatch):
    monkeypatch.setattr(calls, "POLL", 0.01)
    dom = StubbornDomain()
    assert calls.stop(dom, 0.05, True, name=NAME) == "destroy"
    assert dom.calls == ["shutdown", "destroy"]


def test_domain_info_lists_inactive_and_running_guests(conn):
    defined = four_steps(conn, name="lcfgtest-dom-i1", memory=64, vifs=[{"nettype": "nat", "tag": "n"}])
    running = four_steps(conn, name="lcfgtest-dom-i2", memory=96, maxmem=128, state="running", autostart=True)
    info = {g["name"]: g for g in _domain.domain_info(conn)}
    assert {"lcfgtest-dom-i1", "lcfgtest-dom-i2"} <= set(info)
    first, second = info["lcfgtest-dom-i1"], info["lcfgtest-dom-i2"]
    assert first["state"] == "stopped" and first["live"] is None
    assert second["state"] == "running" and second["live"] == {"memory": 96, "maxmem": 128, "vcpus": 1}
    assert second["autostart"] is True
    assert dict(first["config"], state="stopped") == defined["after"]
    assert dict(second["config"], state="running") == running["after"]
    assert _domain.domain_info(conn, "lcfgtest-dom-i1")[0]["name"] == "lcfgtest-dom-i1"
    assert _domain.domain_info(conn, "lcfgtest-dom-missing") == []


def test_domain_info_skips_a_guest_undefined_after_the_listing(conn, monkeypatch):
    four_steps(conn, name="lcfgtest-dom-gone", memory=64)
    four_steps(conn, name="lcfgtest-dom-stays", memory=64)
    listed = calls.list_domains(conn)
    listed["lcfgtest-dom-gone"].undefine()  # another run removes it between list and read
    monkeypatch.setattr(calls, "list_domains", lambda _conn: listed)
    names = [g["name"] for g in _domain.domain_info(conn)]
    assert "lcfgtest-dom-stays" in names and "lcfgtest-dom-gone" not in names


def guests(count, **common):
    return [
        dict({"name": f"lcfgtest-dom-g{i}", "memory": 64, "vifs": [{"bridge": "br0"}]}, **common) for i in range(count)
    ]


def test_converge_guests_check_predicts_and_is_idempotent(conn):
    wanted = guests(4, autostart=True)
    check = _domain.converge_guests(conn, wanted, check_mode=True)
    assert not set(calls.list_domains(conn)) & {g["name"] for g in wanted}
    real = _domain.converge_guests(conn, wanted)
    assert check["changed"] is real["changed"] is True
    assert check["diff"] == real["diff"]
    assert [r["actions"] for r in real["results"]] == [["define", "set_autostart"]] * 4
    started = _domain.converge_guests(conn, [dict(g, state="running") for g in wanted])
    assert all(r["actions"] == ["start"] for r in started["results"])
    assert started["actions"] == [f"{g['name']}: start" for g in wanted]  # the result contract (list_result)
    assert started["pending_restart"] == [] and all(r["pending_restart"] == [] for r in started["results"])
    again = _domain.converge_guests(conn, [dict(g, state="running") for g in wanted])
    assert again["changed"] is False and again["actions"] == []
    assert all(conn.lookupByName(g["name"]).isActive() for g in wanted)


@pytest.mark.parametrize("parallel", [1, 3])
def test_converge_guests_one_failing_guest_does_not_stop_the_others(conn, monkeypatch, parallel):
    real_start = calls.start

    def start(dom, *, name):
        if name == "lcfgtest-dom-g1":
            raise LibvirtFailure(f"start guest {name}: no room")
        real_start(dom, name=name)

    monkeypatch.setattr(calls, "start", start)
    wanted = guests(3, state="running")
    with pytest.raises(XenError) as info:
        _domain.converge_guests(conn, wanted, parallel=parallel)
    assert info.value.message.startswith("guest lcfgtest-dom-g1: start guest lcfgtest-dom-g1: no room")
    assert info.value.result["failed_guests"] == ["lcfgtest-dom-g1"]
    assert [r["name"] for r in info.value.result["results"]] == ["lcfgtest-dom-g0", "lcfgtest-dom-g2"]
    assert info.value.result["changed"] is True
    assert conn.lookupByName("lcfgtest-dom-g0").isActive() and conn.lookupByName("lcfgtest-dom-g2").isActive()
    assert not conn.lookupByName("lcfgtest-dom-g1").isActive()


def test_converge_guests_parallel_matches_serial(conn):
    wanted = guests(6, state="running", autostart=True)
    check = _domain.converge_guests(conn, wanted, check_mode=True, parallel=4)
    real = _domain.converge_guests(conn, wanted, parallel=4)
    assert check["diff"] == real["diff"]
    assert [r["name"] for r in real["results"]] == [g["name"] for g in wanted]
    assert _domain.converge_guests(conn, wanted, parallel=1)["changed"] is False


def test_converge_guests_fails_before_any_change(conn):
    wanted = guests(3)
    wanted[2]["vcpus"] = 4
    wanted[2]["maxvcpus"] = 2
    with pytest.raises(ValidationError) as info:
        _domain.converge_guests(conn, wanted)
    assert info.value.parameter == "guests[2].vcpus"
    assert not set(calls.list_domains(conn)) & {g["name"] for g in wanted}


def test_converge_guests_tolerates_hostvar_keys_and_rejects_unknown(conn):
    hostvar = {
        "name": "lcfgtest-dom-h",
        "uuid": None,
        "type": "paravm",
        "memory": 64,
        "maxmem": 64,
        "vcpus": 1,
        "maxvcpus": 1,
        "cpus": None,
        "autostart": False,
        "disks": [{"tag": "root", "name": "h", "type": "image", "size_gb": 4, "path": "/var/lib/libvirt/images/h.img"}],
        "vifs": [{"tag": "eth0", "mac": None, "ip": None, "nettype": "bridge", "bridge": None, "script": None}],
        "template": None,
        "profile_url": None,
        "partition": None,
        "groups": [],
        "kernel": None,
        "ramdisk": None,
        "cmdline": None,
        "bootloader": None,
        "extra": "on_crash=preserve",
    }
    result = _domain.converge_guests(conn, [hostvar], default_bridge="br9")
    assert result["results"][0]["after"]["vifs"][0]["bridge"] == "br9"
    assert result["results"][0]["after"]["extra"]["on_crash"] == "preserve"
    assert result["results"][0]["after"]["type"] == "pv"
    assert _domain.converge_guests(conn, [hostvar], default_bridge="br9")["changed"] is False
    with pytest.raises(ValidationError) as info:
        _domain.converge_guests(conn, [dict(hostvar, colour="red")])
    assert info.value.parameter == "guests[0].colour"
    with pytest.raises(ValidationError) as info:
        _domain.converge_guests(conn, [hostvar, hostvar])
    assert info.value.parameter == "guests[1].name"


class FakeConnection:
    """Just enough of virConnect for the capability probe."""

    def __init__(self, uri, caps):
        self.uri = uri
        self.caps = caps

    def getURI(self):  # noqa: N802 - libvirt's name
        return self.uri

    def getCapabilities(self):  # noqa: N802
        return self.caps


XEN_CAPS = """<capabilities><host><cpu><arch>x86_64</arch></cpu></host>
  <guest><os_type>xen</os_type><arch name='x86_64'><domain type='xen'/></arch></guest>
  <guest><os_type>hvm</os_type><arch name='x86_64'><loader>/usr/lib/xen-4.17/boot/hvmloader</loader>
    <domain type='xen'/></arch></guest></capabilities>"""
QEMU_CAPS = """<capabilities><host><cpu><arch>x86_64</arch></cpu></host>
  <guest><os_type>hvm</os_type><arch name='x86_64'><domain type='qemu'/><domain type='kvm'/></arch></guest>
  </capabilities>"""


def test_caps_of_xen():
    caps = current.DriverCaps(FakeConnection("xen:///system", XEN_CAPS)).full()
    assert caps["driver"] == "xen" and caps["domain_type"] == "xen" and caps["local"] is True
    assert caps["loader"] == "/usr/lib/xen-4.17/boot/hvmloader"


@pytest.mark.parametrize("usable, expected", [(True, "kvm"), (False, "qemu")])
def test_caps_of_qemu_use_kvm_only_when_dev_kvm_opens(monkeypatch, usable, expected):
    monkeypatch.setattr(current, "_kvm_usable", lambda local: usable)
    caps = current.DriverCaps(FakeConnection("qemu:///system", QEMU_CAPS)).full()
    assert caps["domain_type"] == expected and caps["arch"] == "x86_64" and caps["loader"] is None


def test_caps_of_qemu_without_kvm_in_the_capabilities(monkeypatch):
    monkeypatch.setattr(current, "_kvm_usable", lambda local: True)
    caps = current.DriverCaps(FakeConnection("qemu:///system", QEMU_CAPS.replace("<domain type='kvm'/>", ""))).full()
    assert caps["domain_type"] == "qemu"


@pytest.mark.parametrize(
    "uri, local",
    [
        ("qemu:///system", True),
        ("xen:///system", True),
        ("test:///default", True),
        ("qemu+ssh://root@host/system", False),
        ("xen+tcp://host/system", False),
        ("qemu+unix:///system", True),
        ("qemu://localhost/system", True),
    ],
)
def test_is_local(uri, local):
    assert current._is_local(uri) is local


# --------------------------------------------------------------------------- foreign domains (N0)

FOREIGN = "lcfgtest-dom-foreign"
FOREIGN_XML = f"""<domain type='test'><name>{FOREIGN}</name><memory>131072</memory>
  <os><type>hvm</type></os><devices>
  <disk type='file' device='disk'><source file='/var/lib/lcfg-xen/guests/{FOREIGN}.img'/><target dev='vda'/></disk>
  <interface type='bridge'><mac address='52:54:00:9a:8b:01'/><source bridge='br0'/></interface>
  </devices></domain>"""


def raw_xml(conn, name):
    return conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)


@pytest.mark.parametrize("check", [True, False])
@pytest.mark.parametrize(
    "params",
    [
        {"memory": 64},  # a change (would drop the disk and vif)
        {"type": "hvm", "memory": 128},  # no change asked: refused all the same
        {"state": "absent"},
        {"state": "absent", "remove_disks": True},
        {"state": "running"},
    ],
)
def test_a_domain_lcfg_did_not_define_is_refused(conn, check, params):
    conn.defineXML(FOREIGN_XML)
    before = raw_xml(conn, FOREIGN)
    with pytest.raises(Conflict) as err:
        converge(conn, check=check, name=FOREIGN, **params)
    assert f"guest {FOREIGN} exists on the hypervisor but was not defined by lcfg.xen" in err.value.message
    assert "adopt" in err.value.message
    assert raw_xml(conn, FOREIGN) == before
    assert not conn.lookupByName(FOREIGN).isActive()
    with pytest.raises(Conflict):  # the same in one xen_guests call, with the other guest untouched
        _domain.converge_guests(conn, [{"name": NAME, "memory": 64}, dict(params, name=FOREIGN)], check_mode=check)
    assert raw_xml(conn, FOREIGN) == before
    assert NAME not in calls.list_domains(conn)


def test_libvirts_own_test_domain_is_not_removed(conn):
    with pytest.raises(Conflict, match="guest test exists on the hypervisor but was not defined"):
        converge(conn, name="test", state="absent", force_stop=True)
    assert conn.lookupByName("test").isActive()


def test_adopt_takes_over_once_and_marks_the_domain(conn):
    conn.defineXML(FOREIGN_XML)
    assert not carries_marker(raw_xml(conn, FOREIGN))
    # identical spec: only the marker is added, predicted by check mode
    check = converge(conn, check=True, name=FOREIGN, type="hvm", memory=128, adopt=True)
    assert check["actions"] == ["redefine"] and not carries_marker(raw_xml(conn, FOREIGN))
    real = converge(conn, name=FOREIGN, type="hvm", memory=128, adopt=True)
    assert real["actions"] == ["redefine"] and real["before"] == real["after"]
    root = inactive_xml(conn, FOREIGN)
    assert root.find(f"metadata/{{{METADATA_NS}}}guest") is not None
    assert root.find("devices/disk/source").get("file").endswith(f"{FOREIGN}.img")  # left as it was
    # marked now: later runs need no adopt
    assert converge(conn, name=FOREIGN, type="hvm", memory=128)["changed"] is False
    assert converge(conn, name=FOREIGN, memory=64)["actions"] == ["redefine"]
    assert converge(conn, name=FOREIGN, state="absent")["actions"] == ["undefine"]
    assert FOREIGN not in calls.list_domains(conn)


def test_xen_guests_adopts_only_the_names_it_is_given(conn):
    conn.defineXML(FOREIGN_XML)
    conn.defineXML(FOREIGN_XML.replace(FOREIGN, FOREIGN + "2").replace(":01'", ":02'"))
    wanted = [{"name": FOREIGN, "memory": 64}, {"name": FOREIGN + "2", "memory": 64}]
    with pytest.raises(Conflict, match=f"guests\\[1\\].name: guest {FOREIGN}2 exists"):
        _domain.converge_guests(conn, wanted, adopt=[FOREIGN])
    assert not carries_marker(raw_xml(conn, FOREIGN))  # nothing changed: refused while planning
    result = _domain.converge_guests(conn, wanted, adopt=[FOREIGN, FOREIGN + "2"])
    assert [r["actions"] for r in result["results"]] == [["redefine"], ["redefine"]]
    assert all(carries_marker(raw_xml(conn, n)) for n in (FOREIGN, FOREIGN + "2"))
    assert _domain.converge_guests(conn, wanted)["changed"] is False
    with pytest.raises(ValidationError, match="adopt"):
        _domain.converge_guests(conn, wanted, adopt="yes")


def test_plan_fields_match_the_actions(conn):
    """The ensure_* steps read the plan's typed fields; they say what ``actions`` says."""
    from ansible_collections.lcfg.xen.plugins.module_utils.domain.plan import plan_domain, validate_guest

    def plan(state, **params):
        return plan_domain(conn, validate_guest(dict({"name": NAME}, **params)), state)

    new = plan("running", memory=64, autostart=True)
    assert (new.autostart, new.power, new.stop_first) == (True, "start", False)
    assert new.actions == ["define", "set_autostart", "start"]
    converge(conn, memory=64, state="running")
    same = plan("running")
    assert (same.autostart, same.power, same.actions) == (None, None, [])
    stop = plan("stopped")
    assert stop.power == "stop" and stop.actions == ["stop"]
    absent = plan("absent")
    assert absent.stop_first and absent.power is None and absent.actions == ["stop", "undefine"]


def test_a_container_is_asked_to_stop_with_sigterm(monkeypatch):
    """libvirt's default shutdown of an LXC container (initctl) needs a SysV init; SIGTERM works."""
    monkeypatch.setattr(calls, "POLL", 0.01)
    dom = StubbornDomain(driver="LXC")
    assert calls.stop(dom, 0.05, True, name=NAME) == "destroy"
    assert dom.calls == [f"shutdown({libvirt.VIR_DOMAIN_SHUTDOWN_SIGNAL})", "destroy"]
