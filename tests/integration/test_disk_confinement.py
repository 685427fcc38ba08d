"""Nothing outside the storage directories, ever (issue 9 §3), against the real host.

Every test plays an attack a hostile profile (or guest) could mount and reads back that
nothing outside the storage directories changed: modes, owners, contents, listings, and
the domain XML libvirt holds. Files live under /var/lib/lcfg-xen/lcfgt-disk-*; the
"victim" directory stands for /root/.ssh; libvirt objects are named lcfgt-disk-*.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from lxml import etree

from support import define_by_hand, run_module, run_playbook, tree_snapshot

pytestmark = pytest.mark.integration

URI = "qemu:///system"
DOMAIN = "lcfgt-disk-dom"
GIB = 1024**3


@pytest.fixture
def site():
    """store (the only storage directory) and victim (a stand-in for /root/.ssh, owned by
    another user, 0700, holding a key), plus store/link -> victim."""
    os.makedirs("/var/lib/lcfg-xen", exist_ok=True)
    top = Path(tempfile.mkdtemp(prefix="lcfgt-disk-", dir="/var/lib/lcfg-xen"))
    os.chmod(top, 0o755)
    store, victim = top / "store", top / "victim"
    store.mkdir()
    victim.mkdir()
    (victim / "authorized_keys").write_text("ssh-ed25519 AAAA victim\n")
    os.chown(victim, 4242, 4242)
    os.chmod(victim, 0o700)
    (store / "link").symlink_to(victim)
    yield store, victim
    shutil.rmtree(top, ignore_errors=True)


def disk(store, name, **extra):
    return dict({"path": str(store / name), "storage_dirs": [str(store)]}, **extra)


# ---------------------------------------------------------------- directories


def _guest_role_play(tmp_path, store, disk_path) -> Path:
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        json.dumps(
            [
                {
                    "hosts": "localhost",
                    "connection": "local",
                    "gather_facts": False,
                    "vars": {"ansible_python_interpreter": sys.executable},
                    "roles": [
                        {
                            "role": "lcfg.xen.guest",
                            "guest_uri": URI,
                            "guest_storage_dirs": [str(store)],
                            "guest_specs": [
                                {
                                    "name": DOMAIN,
                                    "memory": 64,
                                    "disks": [{"tag": "root", "type": "image", "size_gb": 1, "path": str(disk_path)}],
                                }
                            ],
                        }
                    ],
                }
            ]
        )
    )
    return playbook


def test_role_never_touches_a_directory_outside(site, tmp_path):
    """The guest role used to create/chown/chmod a profile's disk directory before any check."""
    store, victim = site
    before = tree_snapshot(victim)
    proc = run_playbook(_guest_role_play(tmp_path, store, victim / "evil.img"), "-i", "localhost,")
    assert proc.returncode != 0
    assert "outside the storage directories" in proc.stdout
    assert tree_snapshot(victim) == before  # owner 4242, mode 0700, the key: all as they were
    assert oct(os.lstat(victim).st_mode & 0o7777) == "0o700" and os.lstat(victim).st_uid == 4242


def test_role_check_mode_on_a_fresh_host_predicts(site, tmp_path):
    """--check used to fail on every disk: "directory ... does not exist: create it first"."""
    store, _victim = site
    proc = run_playbook(_guest_role_play(tmp_path, store, store / "fresh" / "vm.qcow2"), "-i", "localhost,", "--check")
    assert proc.returncode == 0, proc.stdout
    assert f"changed: [localhost] => (item={DOMAIN} root: {store}/fresh/vm.qcow2)" in proc.stdout, proc.stdout
    assert list(store.iterdir()) == [store / "link"]  # nothing created
    assert (
        DOMAIN
        not in subprocess.run(
            ["virsh", "-c", URI, "list", "--all", "--name"], capture_output=True, text=True, check=True
        ).stdout.split()
    )


def test_symlinked_directory_cannot_lead_out(site):
    store, victim = site
    before = tree_snapshot(victim)
    for params in (
        disk(store, "link/evil.img", size_gb=1),
        disk(store, "new.img", template=str(store / "link" / "authorized_keys")),
        disk(store, "link/authorized_keys", state="absent"),
    ):
        result = run_module("xen_disk", params)
        assert result.get("failed") and "symbolic link" in result["msg"], result
    assert tree_snapshot(victim) == before


def test_profile_storage_dirs_can_only_narrow(site):
    store, victim = site
    before = tree_snapshot(victim)
    result = run_module("xen_disk", disk(store, "x.img", size_gb=1, profile_storage_dirs=[str(victim)]))
    assert result.get("failed") and "may only narrow" in result["msg"], result
    result = run_module(
        "xen_disk",
        dict(disk(store, "x.img", size_gb=1), path=str(victim / "x.img"), profile_storage_dirs=[str(victim)]),
    )
    assert result.get("failed"), result
    assert tree_snapshot(victim) == before and not (store / "x.img").exists()


def test_check_mode_on_a_fresh_host_predicts_directories_then_creates_them_private(site):
    store, _victim = site
    params = disk(store, "fresh/deeper/vm.img", size_gb=1)
    check = run_module("xen_disk", params, check=True)
    assert not check.get("failed") and check["changed"], check
    assert check["actions"][:2] == [
        f"create directory {store}/fresh (mode 0700, owner root:root)",
        f"create directory {store}/fresh/deeper (mode 0700, owner root:root)",
    ]
    assert not (store / "fresh").exists()  # check mode changed nothing
    apply = run_module("xen_disk", params)
    assert apply["changed"] and apply["actions"] == check["actions"], apply
    assert os.lstat(store / "fresh").st_mode & 0o7777 == 0o700
    assert os.lstat(store / "fresh" / "deeper").st_mode & 0o7777 == 0o700
    image = store / "fresh" / "deeper" / "vm.img"
    assert os.lstat(image).st_mode & 0o7777 == 0o600
    assert os.getxattr(image, "trusted.lcfg-xen.format") == b"raw"
    assert run_module("xen_disk", params)["changed"] is False
    # With a storage group: 0710 root:group, so the hypervisor's user can pass through.
    grouped = disk(store, "grouped/vm.qcow2", size_gb=1, format="qcow2", storage_group="libvirt-qemu")
    assert run_module("xen_disk", grouped)["changed"]
    info = os.lstat(store / "grouped")
    assert info.st_mode & 0o7777 == 0o710 and info.st_gid == __import__("grp").getgrnam("libvirt-qemu").gr_gid


def test_existing_directory_keeps_its_owner_and_mode(site):
    store, _victim = site
    admins_dir = store / "admins_dir"
    admins_dir.mkdir()
    os.chown(admins_dir, 4242, 4242)
    os.chmod(admins_dir, 0o755)
    before = os.lstat(admins_dir)
    assert run_module("xen_disk", disk(store, "admins_dir/vm.img", size_gb=1))["changed"]
    after = os.lstat(admins_dir)
    assert (after.st_mode, after.st_uid, after.st_gid) == (before.st_mode, before.st_uid, before.st_gid)


# ---------------------------------------------------------------- formats


def _qcow2_header_pointing_at(target: Path, scratch: Path) -> bytes:
    """What a hostile guest writes at the start of its raw disk: a qcow2 header whose backing
    file is a host file."""
    header = scratch / "evil.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(target), "-F", "raw", str(header), "1G"], check=True
    )
    data = header.read_bytes()
    header.unlink()
    return data


def test_guest_written_qcow2_header_is_not_believed(site, tmp_path):
    store, victim = site
    params = disk(store, "guest.img", size_gb=1)
    assert run_module("xen_disk", params)["changed"]
    image = Path(params["path"])
    with open(image, "r+b") as handle:  # the guest writes into its own raw disk
        handle.write(_qcow2_header_pointing_at(victim / "authorized_keys", tmp_path))
    # A second copy made outside xen_disk (no recorded format) is read as raw too.
    unrecorded = store / "unrecorded.img"
    shutil.copyfile(image, unrecorded)
    before = tree_snapshot(victim)
    for path in (image, unrecorded):
        result = run_module("xen_disk", dict(params, path=str(path)))
        assert not result.get("failed") and result["changed"] is False, result
        assert result["image"]["format"] == "raw" and result["image"]["backing_file"] is None
    listing = run_module("xen_disk_info", {"storage_dirs": [str(store)]})
    for entry in listing["images"]:
        assert entry["format"] == "raw" and entry.get("backing_file") is None, entry
    # The domain side: a disk with no declared format is defined as raw, explicitly.
    guest = {
        "name": DOMAIN,
        "type": "hvm",
        "memory": 64,
        "storage_dirs": [str(store)],
        "disks": [{"path": str(image)}, {"path": str(unrecorded)}],
    }
    try:
        result = run_module("xen_domain", dict(guest, uri=URI))
        assert not result.get("failed"), result
        xml = subprocess.run(
            ["virsh", "-c", URI, "dumpxml", "--inactive", DOMAIN], capture_output=True, text=True, check=True
        ).stdout
        drivers = [d.get("type") for d in etree.fromstring(xml.encode()).iterfind("devices/disk/driver")]
        assert drivers == ["raw", "raw"], xml
    finally:
        run_module("xen_domain", {"name": DOMAIN, "uri": URI, "state": "absent"})
    assert tree_snapshot(victim) == before


def test_profile_declaring_qcow2_on_a_guest_written_header_is_refused(site, tmp_path):
    """A profile's xen.diskformat qcow2 on a raw disk whose first bytes the guest wrote."""
    store, victim = site
    params = disk(store, "declared-raw.img", size_gb=1)
    assert run_module("xen_disk", params)["changed"]
    recorded = Path(params["path"])
    unrecorded = store / "made-elsewhere.img"
    header = _qcow2_header_pointing_at(victim / "authorized_keys", tmp_path)
    for image in (recorded, unrecorded):
        with open(image, "r+b" if image.exists() else "wb") as handle:
            handle.write(header)
    before = tree_snapshot(victim)
    for image, words in ((recorded, "was created as raw by xen_disk"), (unrecorded, "outside the storage directories")):
        result = run_module(
            "xen_domain",
            {
                "name": DOMAIN,
                "type": "hvm",
                "memory": 64,
                "uri": URI,
                "storage_dirs": [str(store)],
                "disks": [{"path": str(image), "format": "qcow2"}],
            },
        )
        assert result.get("failed") and "disks[0].format" in result["msg"] and words in result["msg"], result
        assert (
            DOMAIN
            not in subprocess.run(
                ["virsh", "-c", URI, "list", "--all", "--name"], capture_output=True, text=True, check=True
            ).stdout.split()
        )
    assert tree_snapshot(victim) == before


def test_declared_qcow2_with_a_backing_file_outside_is_refused(site):
    store, victim = site
    image = store / "declared.qcow2"
    subprocess.run(
        [
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            str(victim / "authorized_keys"),
            "-F",
            "raw",
            str(image),
            "1G",
        ],
        check=True,
    )
    before = hashlib.sha256(image.read_bytes()).hexdigest()
    result = run_module("xen_disk", disk(store, "declared.qcow2", format="qcow2"))
    assert result.get("failed") and "outside the storage directories" in result["msg"], result
    assert hashlib.sha256(image.read_bytes()).hexdigest() == before


# ---------------------------------------------------------------- remove_disks


def _define(disks):
    root = etree.Element("domain", type="qemu")
    etree.SubElement(root, "name").text = DOMAIN
    etree.SubElement(root, "memory", unit="MiB").text = "64"
    etree.SubElement(etree.SubElement(root, "os"), "type").text = "hvm"
    devices = etree.SubElement(root, "devices")
    for index, path in enumerate(disks):
        element = etree.SubElement(devices, "disk", type="file", device="disk")
        etree.SubElement(element, "driver", name="qemu", type="raw")
        etree.SubElement(element, "source", file=str(path))
        etree.SubElement(element, "target", dev=f"vd{'abc'[index]}", bus="virtio")
    define_by_hand(URI, etree.tostring(root).decode())


@pytest.mark.parametrize("module", ["xen_domain", "xen_guests"])
def test_remove_disks_deletes_only_inside_the_storage_directories(site, module):
    store, victim = site
    (victim / "disk.img").write_bytes(b"\0" * 4096)
    inside = store / "inside.img"
    inside.write_bytes(b"\0" * 4096)
    before = tree_snapshot(victim)
    _define([victim / "disk.img", store / "link" / "disk.img", inside])
    absent = {"name": DOMAIN, "state": "absent", "remove_disks": True}
    # defined by hand, so the play adopts it (docs/domains.md)
    params = (
        dict(absent, uri=URI, storage_dirs=[str(store)], adopt=True)
        if module == "xen_domain"
        else {"uri": URI, "storage_dirs": [str(store)], "guests": [absent], "adopt": [DOMAIN]}
    )
    try:
        check = run_module(module, params, check=True)
        assert not check.get("failed"), check
        result = run_module(module, params)
        assert not result.get("failed") and result["changed"], result
    finally:
        subprocess.run(["virsh", "-c", URI, "undefine", DOMAIN], capture_output=True, check=False)
    warnings = json.dumps(result.get("warnings", []))  # strings, or dicts in newer ansible-core
    assert f"{victim}/disk.img kept" in warnings and f"{store}/link/disk.img kept" in warnings
    assert not inside.exists()
    assert tree_snapshot(victim) == before


# ---------------------------------------------------------------- the clone lock


def test_planted_lock_link_is_not_followed(site):
    """The lock used to be a predictable name in world-writable /run/lock, opened through links."""
    store, victim = site
    params = disk(store, "locked.img", size_gb=1)
    assert run_module("xen_disk", dict(params, state="absent"))["changed"] is False  # makes /run/lcfg-xen
    info = os.lstat("/run/lcfg-xen")
    assert info.st_uid == 0 and info.st_mode & 0o777 == 0o700
    lock = f"/run/lcfg-xen/disk-{hashlib.sha256(params['path'].encode()).hexdigest()[:24]}.lock"
    before = tree_snapshot(victim)
    os.unlink(lock)  # the absent run's own lock file; a hostile user plants a link instead
    os.symlink(victim / "authorized_keys", lock)
    try:
        result = run_module("xen_disk", params)
    finally:
        os.unlink(lock)
    assert result.get("failed") and "symbolic link" in result["msg"] and lock in result["msg"], result
    assert tree_snapshot(victim) == before and not (store / "locked.img").exists()
