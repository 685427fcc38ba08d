"""xen_snapshot / xen_snapshot_info end to end on the real libvirtd (qemu:///system).

A guest named i13snap-* gets a qcow2 disk in a fresh storage directory with an ext4 file
system (made with libguestfs, no partition table) holding /marker. The test takes a
snapshot, changes /marker, reverts and reads /marker back with libguestfs (an independent
reader); ``qemu-img snapshot -l`` is the independent witness of what the image holds. Each
libguestfs appliance launch takes some 30 s here under software emulation.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from support import run_module, storage_directory, wait_for

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


def _remove_own(conn) -> None:
    """Our guests with their snapshot metadata (a plain undefine refuses a guest that has any)."""
    for dom in conn.listAllDomains(0):
        if dom.name().startswith(PREFIX):
            if dom.isActive():
                dom.destroy()
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)


@pytest.fixture(scope="module")
def conn():
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    connection = libvirt.open(URI)
    _remove_own(connection)
    yield connection
    _remove_own(connection)
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
