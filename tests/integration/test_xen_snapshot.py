"""xen_snapshot / xen_snapshot_info end to end on the real libvirtd (qemu:///system), and
playbooks/rolling.yml with ``rolling_snapshot=true``.

A guest named i13snap-* gets a qcow2 disk in a fresh storage directory with an ext4 file
system (made with libguestfs, no partition table) holding /marker. The test takes a
snapshot, changes /marker, reverts and reads /marker back with libguestfs (an independent
reader); ``qemu-img snapshot -l`` is the independent witness of what the image holds. Each
libguestfs appliance launch takes some 30 s here under software emulation.

For rolling.yml, one running guest i13snap-r1 (HVM, no operating system, a qcow2 disk) is the
only member of the virtual group i13snapgrp of a temporary inventory, defined from the
inventory's own ``xen_domain`` (lcfg.xen.xen_domain) so the rolling play finds it as the
profile says. With no operating system there is no balloon driver: the balloon never follows
a memory change, which ``rolling_require_followed`` turns into a failed check (where
lcfg.xen.xen_group reports what the guest did not follow).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.lcfg.xen.plugins.module_utils.spec.argspec import guest_module_argspec
from support import ROOT, inventory_list, remove_domains, run_module, run_playbook, storage_directory, wait_for

libvirt = pytest.importorskip("libvirt")
guestfs = pytest.importorskip("guestfs")

pytestmark = pytest.mark.integration

URI = "qemu:///system"
PREFIX = "i13snap-"
GUEST = f"{PREFIX}g1"
DOMAIN_XML = """<domain type='{virt}'><name>{name}</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>
<os><type arch='x86_64'>hvm</type></os><devices>
<disk type='file' device='disk'><driver name='qemu' type='{fmt}'/><source file='{path}'/>
<target dev='vda' bus='virtio'/></disk></devices></domain>"""


@pytest.fixture(scope="module")
def conn():
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    connection = libvirt.open(URI)
    remove_domains(URI, PREFIX)
    yield connection
    remove_domains(URI, PREFIX)
    connection.close()


@pytest.fixture(scope="module")
def store():
    with storage_directory(PREFIX) as directory:
        yield directory


def _guestfs(path: Path, fmt: str, readonly: bool = False):
    os.environ.setdefault("LIBGUESTFS_BACKEND", "direct")
    handle = guestfs.GuestFS(python_return_dict=True)
    handle.set_backend_settings(list(handle.get_backend_settings()) + ["force_tcg"])
    handle.add_drive_opts(str(path), format=fmt, readonly=readonly)
    handle.launch()
    return handle


def write_marker(path: Path, fmt: str, text: str, mkfs: bool = False) -> None:
    handle = _guestfs(path, fmt)
    try:
        if mkfs:
            handle.mkfs("ext4", "/dev/sda")
        handle.mount("/dev/sda", "/")
        handle.write("/marker", text.encode())
        handle.umount_all()
        handle.shutdown()
    finally:
        handle.close()


def read_marker(path: Path, fmt: str) -> str:
    handle = _guestfs(path, fmt, readonly=True)
    try:
        handle.mount_ro("/dev/sda", "/")
        return handle.cat("/marker")
    finally:
        handle.close()


def image_snapshots(path: Path) -> list[str]:
    """The internal snapshots qemu-img sees inside the image (names)."""
    out = subprocess.run(
        ["qemu-img", "snapshot", "-U", "-l", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return [line.split()[1] for line in out.splitlines()[2:] if line.strip()]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _virt() -> str:
    return "kvm" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "qemu"


def make_guest(conn, store: Path, name: str, fmt: str):
    path = store / f"{name}.{fmt}"
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, str(path), "64M"], check=True)
    conn.defineXML(DOMAIN_XML.format(virt=_virt(), name=name, fmt=fmt, path=path))
    return path


def snapshot(check=False, diff=False, **params) -> dict:
    return run_module("xen_snapshot", dict({"uri": URI, "name": GUEST}, **params), check=check, diff=diff)


def info(**params) -> dict:
    return run_module("xen_snapshot_info", dict({"uri": URI, "name": GUEST}, **params))


def test_snapshot_revert_restores_the_disk_content(conn, store):
    path = make_guest(conn, store, GUEST, "qcow2")
    write_marker(path, "qcow2", "original\n", mkfs=True)

    predicted = snapshot(check=True, diff=True, snapshot="s1", description="before the change")
    assert predicted["rc"] == 0 and predicted["changed"], predicted
    assert predicted["actions"] == ["create snapshot s1 (disk only)"]
    assert predicted["diff"] == {"before": {"snapshots": [], "current": None}, "after": predicted["after"]}
    assert image_snapshots(path) == [] and info()["snapshots"] == []  # check mode changed nothing

    created = snapshot(diff=True, snapshot="s1", description="before the change")
    assert created["changed"] and created["after"] == {"snapshots": ["s1"], "current": "s1"}
    assert created["after"] == predicted["after"]
    assert image_snapshots(path) == ["s1"]
    listed = info()
    assert listed["exists"] and listed["current"] == "s1"
    entry = listed["snapshots"][0]
    assert (entry["name"], entry["description"], entry["state"], entry["memory"]) == (
        "s1",
        "before the change",
        "shutoff",
        False,
    )
    assert entry == created["info"]
    again = snapshot(snapshot="s1", description="before the change")
    assert again["rc"] == 0 and not again["changed"] and again["actions"] == []

    write_marker(path, "qcow2", "changed\n")
    image = sha256(path)
    check_revert = snapshot(check=True, snapshot="s1", state="reverted")
    assert check_revert["changed"] and check_revert["actions"] == ["revert to snapshot s1"]
    assert sha256(path) == image  # check mode changed nothing

    reverted = snapshot(snapshot="s1", state="reverted")
    assert reverted["rc"] == 0 and reverted["changed"], reverted
    assert read_marker(path, "qcow2") == "original\n"
    assert not conn.lookupByName(GUEST).isActive()  # a shut-off snapshot leaves the guest shut off

    check_delete = snapshot(check=True, diff=True, snapshot="s1", state="absent")
    assert check_delete["changed"] and check_delete["diff"]["after"] == {"snapshots": [], "current": None}
    assert image_snapshots(path) == ["s1"]
    deleted = snapshot(snapshot="s1", state="absent")
    assert deleted["changed"] and deleted["after"] == {"snapshots": [], "current": None}
    assert image_snapshots(path) == [] and info()["snapshots"] == []
    assert not snapshot(snapshot="s1", state="absent")["changed"]

    missing = snapshot(snapshot="s1", state="reverted")
    assert missing["failed"] and f"guest {GUEST} has no snapshot s1 to revert to" in missing["msg"]
    assert missing["name"] == GUEST and missing["snapshot"] == "s1"


def test_running_guest_snapshot_holds_its_memory(conn, store):
    dom = conn.lookupByName(GUEST)
    path = store / f"{GUEST}.qcow2"
    dom.create()
    try:
        refused = snapshot(snapshot="live1", memory=False)
        assert refused["failed"] and "must include its memory" in refused["msg"] and GUEST in refused["msg"]
        created = snapshot(snapshot="live1")
        assert created["changed"] and created["actions"] == ["create snapshot live1 (with memory)"], created
        assert created["info"]["memory"] is True and created["info"]["state"] == "running"
        assert "live1" in image_snapshots(path)
        dom.destroy()
        reverted = snapshot(snapshot="live1", state="reverted")
        assert reverted["changed"], reverted
        assert wait_for(dom.isActive, timeout=30, what=f"{GUEST} to run again from its snapshot")
        assert snapshot(snapshot="live1", state="absent")["changed"]
        assert "live1" not in image_snapshots(path)
    finally:
        if dom.isActive():
            dom.destroy()


def test_raw_disk_and_bad_names_are_refused(conn, store):
    raw_guest = f"{PREFIX}raw"
    path = make_guest(conn, store, raw_guest, "raw")
    for check in (True, False):
        result = run_module("xen_snapshot", {"uri": URI, "name": raw_guest, "snapshot": "s1"}, check=check)
        assert result["failed"] and result["rc"] == 1
        assert (
            f"guest {raw_guest}: disk vda ({path}) is raw; internal snapshots need every writable disk in qcow2"
            in (result["msg"])
        )
    assert conn.lookupByName(raw_guest).snapshotNum(0) == 0
    bad = snapshot(snapshot="../s1")
    assert bad["failed"] and "snapshot: invalid snapshot name" in bad["msg"]
    nobody = run_module("xen_snapshot", {"uri": URI, "name": f"{PREFIX}nosuch", "snapshot": "s1"})
    assert nobody["failed"] and f"guest {PREFIX}nosuch: the guest does not exist" in nobody["msg"]
    assert run_module("xen_snapshot_info", {"uri": URI, "name": f"{PREFIX}nosuch"})["exists"] is False


# --- playbooks/rolling.yml with rolling_snapshot ---

MEMBER = f"{PREFIX}r1"
GROUP = "i13snapgrp"
ROLLING = ROOT / "playbooks" / "rolling.yml"
PROFILE = """/* i13snap-hv: a hypervisor with one virtual group of one guest */
!profile.components mADD(xen)
!xen.xendconfbridgenet mSET(off)
!xen.virtualmachines mADD(r1)
!xen.name_r1 mSET(i13snap-r1)
!xen.type_r1 mSET(hvm)
!xen.disks_r1 mADD(root)
!xen.diskpath_r1 mSET({store})
!xen.diskformat_r1 mSET(qcow2)
!xen.virtualgroup mADD(i13snapgrp)
!xen.members_i13snapgrp mADD(r1)
!xen.groupmemory_i13snapgrp mSET({memory})
!xen.groupmaxmem_i13snapgrp mSET(256)
!xen.groupvcpus_i13snapgrp mSET(1)
!xen.groupmaxvcpus_i13snapgrp mSET(2)
"""


def _inventory(directory: Path, store: Path, memory: int) -> Path:
    (directory / "profiles").mkdir(exist_ok=True)
    (directory / "profiles" / f"{PREFIX}hv").write_text(PROFILE.format(store=store, memory=memory))
    config = directory / "site.lcfg.yml"
    config.write_text("plugin: lcfg.xen.lcfg\nsources: [profiles]\nstrict: true\n")
    return config


@pytest.fixture
def member(conn, tmp_path):
    """The running guest, defined from the inventory at 128 MiB; yields (store, tmp_path)."""
    with storage_directory(PREFIX) as store:
        config = _inventory(tmp_path, store, 128)
        spec = inventory_list(config)["_meta"]["hostvars"][MEMBER]["xen_domain"]
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", spec["disks"][0]["path"], "64M"], check=True)
        options = {key: value for key, value in spec.items() if key in guest_module_argspec()}
        made = run_module("xen_domain", dict(options, uri=URI, state="running"))
        assert made["rc"] == 0 and made["after"]["state"] == "running", made
        yield store, tmp_path
        remove_domains(URI, PREFIX)


def _config_mib(conn) -> int:
    xml = conn.lookupByName(MEMBER).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    return int(re.search(r"<currentMemory unit='KiB'>(\d+)<", xml).group(1)) // 1024


def _rolling(config: Path, *args: str, **extra_vars):
    """rolling.yml on the group; the hypervisor is this machine (extra vars: no group_vars)."""
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "xen_uri": URI}
    return run_playbook(ROLLING, "--limit", GROUP, *args, inventory=config, extra_vars=dict(local, **extra_vars))


def test_rolling_snapshot_taken_and_dropped_when_the_check_passes(conn, member):
    store, tmp_path = member
    dom = conn.lookupByName(MEMBER)
    started = dom.ID()
    config = _inventory(tmp_path, store, 176)
    checked = _rolling(config, "--check", rolling_snapshot=True)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-2000:]
    assert dom.snapshotNum(0) == 0 and _config_mib(conn) == 128  # check mode changed nothing
    run = _rolling(config, rolling_snapshot=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert re.search(r"TASK \[Snapshot the member before changing it\][^\n]*\nchanged: ", run.stdout), run.stdout
    assert f"{MEMBER}: running, 176 MiB, 1 VCPUs; live: " in run.stdout
    # the member has no balloon driver unless its kernel brought one up: then memory counts as
    # changed live, else the message says plainly that the guest did not follow
    followed = f"{MEMBER}: running, 176 MiB, 1 VCPUs; live: memory" in run.stdout
    assert followed or "NOT followed by the guest: memory: target 176 MiB" in run.stdout, run.stdout[-3000:]
    assert "TASK [Revert the member to its snapshot]" not in run.stdout  # the rescue did not run
    assert _config_mib(conn) == 176 and dom.ID() == started  # changed live, not restarted
    assert dom.snapshotNum(0) == 0  # the snapshot was dropped after the passed check
    image = store / f"{MEMBER}.img"
    listing = subprocess.run(
        ["qemu-img", "snapshot", "-U", "-l", str(image)], capture_output=True, text=True, check=True
    )
    assert "lcfg-rolling" not in listing.stdout


def test_rolling_reverts_the_member_when_the_guest_does_not_follow(conn, member):
    store, tmp_path = member
    same = run_module("xen_group", {"uri": URI, "name": GROUP, "members": [MEMBER], "memory": 128})
    if "live_not_followed" not in same["results"][0]:
        pytest.skip("xen_group does not report live_not_followed (what the guest did not follow) in this checkout")
    config = _inventory(tmp_path, store, 176)
    run = _rolling(config, rolling_snapshot=True, rolling_require_followed=True)
    assert run.returncode != 0, run.stdout[-3000:]
    assert "the guest did not follow" in run.stdout and "reverted to its snapshot lcfg-rolling" in run.stdout
    dom = conn.lookupByName(MEMBER)
    assert _config_mib(conn) == 128  # the definition is the snapshot's again
    assert dom.isActive() and dom.snapshotNum(0) == 0


def test_rolling_snapshot_refused_for_a_raw_member_changes_nothing(conn, member):
    store, tmp_path = member
    image = store / f"{MEMBER}.img"
    conn.lookupByName(MEMBER).destroy()
    xml = conn.lookupByName(MEMBER).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    conn.defineXML(xml.replace("type='qcow2'", "type='raw'"))
    conn.lookupByName(MEMBER).create()
    config = _inventory(tmp_path, store, 176)
    run = _rolling(config, rolling_snapshot=True)
    assert run.returncode != 0
    target = re.search(r"<target dev='(\w+)'", xml).group(1)
    assert (
        f"guest {MEMBER}: disk {target} ({image}) is raw; internal snapshots need every writable disk in qcow2"
        in run.stdout
    )
    assert _config_mib(conn) == 128  # failed before the change
