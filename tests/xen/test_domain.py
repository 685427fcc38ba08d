"""xen_domain on real Xen (libvirt's libxl driver), driven with ansible-playbook over SSH.

PV guests boot the dom0 kernel with the lab's busybox initramfs (direct kernel boot); their
console goes to /var/log/xen/console/guest-<name>.log (xenconsoled --log=guest), which shows
that the guest kernel ran our /init. Every result is read back inside dom0 with xl, virsh
or xenstore-read, not taken from the module's own report.
"""

from __future__ import annotations

import pytest
from xenlab import GUEST_BOOT_ACCESS, GUEST_CMDLINE, GUEST_KERNEL, GUEST_RAMDISK, URI

from support import wait_for

pytestmark = pytest.mark.xen

PV = "lcfgtest-pv"
HVM = "lcfgtest-hvm"
BOOT_TIMEOUT = 600  # seconds of wall time for a guest's kernel to reach /init under TCG


def pv_guest(name: str, **extra) -> dict:
    params = {
        "uri": URI,
        "name": name,
        "type": "pv",
        "memory": 128,
        "maxmem": 256,
        "vcpus": 1,
        "maxvcpus": 2,
        "kernel": GUEST_KERNEL,
        "ramdisk": GUEST_RAMDISK,
        "cmdline": GUEST_CMDLINE,
        "autostart": False,
        "state": "running",
        **GUEST_BOOT_ACCESS,
    }
    params.update(extra)
    return params


def guest_console(xen_lab, name: str) -> str:
    return xen_lab.ssh(f"cat /var/log/xen/console/guest-{name}.log", check=False).stdout


@pytest.fixture
def cleanup(xen_lab):
    names: list[str] = []
    yield names
    for name in names:
        xen_lab.destroy(name)


def test_pv_guest_boots_and_changes_live(xen_lab, cleanup):
    cleanup.append(PV)
    run = xen_lab.play(
        [
            {"name": "create", "lcfg.xen.xen_domain": pv_guest(PV)},
            {"name": "again", "lcfg.xen.xen_domain": pv_guest(PV)},
            {
                "name": "predict",
                "lcfg.xen.xen_domain": pv_guest(PV, memory=200, vcpus=2),
                "check_mode": True,
                "diff": True,
            },
            {
                "name": "xl after predict",
                "ansible.builtin.command": {"argv": ["xl", "list", PV]},
                "changed_when": False,
            },
            {"name": "live", "lcfg.xen.xen_domain": pv_guest(PV, memory=200, vcpus=2)},
            {"name": "live again", "lcfg.xen.xen_domain": pv_guest(PV, memory=200, vcpus=2)},
        ]
    )
    assert run.rc == 0, run.output

    created = run["create"]
    assert created["changed"] is True
    assert "define" in created["actions"] and "start" in created["actions"]
    assert created["after"]["state"] == "running"
    assert created["after"]["type"] == "pv"

    assert run["again"]["changed"] is False, run["again"]
    assert run["again"]["actions"] == []

    predicted = run["predict"]
    assert predicted["changed"] is True
    assert set(predicted["actions"]) == {"set_memory_live", "set_vcpus_live"}
    # Check mode changed nothing: still 128 MiB and 1 VCPU in Xen.
    mem, vcpus = run["xl after predict"]["stdout"].splitlines()[-1].split()[2:4]
    assert (int(mem), int(vcpus)) == (128, 1)

    live = run["live"]
    assert live["changed"] is True
    assert live["actions"] == predicted["actions"]
    assert live["pending_restart"] == []
    assert run["live again"]["changed"] is False, run["live again"]

    # Xen itself: the balloon target, the VCPUs online, and the guest's own console.
    target_kib = int(xen_lab.ssh(f"xenstore-read /local/domain/$(xl domid {PV})/memory/target").stdout)
    assert target_kib == 200 * 1024
    listed = wait_for(
        lambda: (x := xen_lab.xl_list(PV)) and x["mem"] == 200 and x, 120, "xl list to show 200 MiB", step=5
    )
    assert listed["vcpus"] == 2
    # the guest brings the hot-added VCPU online in its own time: wait for it, as for memory
    wait_for(lambda: xen_lab.xl_vcpus_online(PV) == 2, 120, "xl to show 2 VCPUs online", step=5)
    assert xen_lab.ssh(f"virsh -c {URI} dominfo {PV}").stdout.count("running") == 1
    console = wait_for(
        lambda: (c := guest_console(xen_lab, PV)) and "lcfg-xen-lab guest: up" in c and c,
        BOOT_TIMEOUT,
        "the guest's /init on its console",
        step=5,
    )
    assert "lcfg-xen-lab guest: up, 1 cpu(s)" in console


def test_autostart_and_removal(xen_lab, cleanup):
    cleanup.append(PV)
    run = xen_lab.play(
        [
            {"name": "autostart", "lcfg.xen.xen_domain": pv_guest(PV, autostart=True)},
            {"name": "autostart again", "lcfg.xen.xen_domain": pv_guest(PV, autostart=True)},
        ]
    )
    assert run.rc == 0, run.output
    assert run["autostart"]["changed"] is True
    assert "set_autostart" in run["autostart"]["actions"]
    assert run["autostart again"]["changed"] is False
    dominfo = xen_lab.ssh(f"virsh -c {URI} dominfo {PV}").stdout
    assert any(line.split() == ["Autostart:", "enable"] for line in dominfo.splitlines()), dominfo
    xen_lab.ssh(f"test -e /etc/libvirt/libxl/autostart/{PV}.xml")

    run = xen_lab.play(
        [
            {
                "name": "remove",
                "lcfg.xen.xen_domain": {
                    "uri": URI,
                    "name": PV,
                    "state": "absent",
                    "force_stop": True,
                    "shutdown_timeout": 30,
                },
            },
            {"name": "remove again", "lcfg.xen.xen_domain": {"uri": URI, "name": PV, "state": "absent"}},
        ]
    )
    assert run.rc == 0, run.output
    assert run["remove"]["changed"] is True
    assert run["remove again"]["changed"] is False
    assert xen_lab.xl_list(PV) is None
    assert PV not in xen_lab.ssh(f"virsh -c {URI} list --all --name").stdout.split()


def test_hvm_guest_is_defined_not_started(xen_lab, cleanup):
    """HVM guests need hardware virtualisation; Xen under QEMU's TCG has none.

    Where Xen offers HVM (``hvm`` in ``xl info`` virt_caps) the guest is defined, read back
    and left stopped. Where it does not (this lab under TCG), libvirt's libxl driver has no
    HVM capability and refuses the definition: the module must fail, name the guest, and
    leave nothing behind.
    """
    cleanup.append(HVM)
    virt_caps = xen_lab.ssh("xl info | sed -n 's/^virt_caps *: *//p'").stdout.split()
    params = {
        "uri": URI,
        "name": HVM,
        "type": "hvm",
        "memory": 256,
        "maxmem": 256,
        "vcpus": 1,
        "maxvcpus": 2,
        "state": "present",
    }
    run = xen_lab.play(
        [
            {"name": "define", "lcfg.xen.xen_domain": params, "ignore_errors": True},
            {"name": "again", "lcfg.xen.xen_domain": params, "ignore_errors": True},
        ]
    )
    defined = HVM in xen_lab.ssh(f"virsh -c {URI} list --all --name").stdout.split()
    if "hvm" not in virt_caps:
        assert run.status("define") == "failed"
        assert HVM in run["define"]["msg"]
        assert "could not find capabilities" in run["define"]["msg"]
        assert not defined
        return
    assert run.status("define") == "changed", run["define"]
    assert run["define"]["after"]["type"] == "hvm"
    assert run["again"]["changed"] is False, run["again"]
    assert defined
    xml = xen_lab.ssh(f"virsh -c {URI} dumpxml --inactive {HVM}").stdout
    assert "<domain type='xen'" in xml
    assert ">hvm</type>" in xml
    assert xen_lab.ssh(f"virsh -c {URI} domstate {HVM}").stdout.strip() == "shut off"
    assert xen_lab.xl_list(HVM) is None
