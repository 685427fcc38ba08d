"""xen_disk / xen_disk_info end to end: real qemu-img, libguestfs and libvirtd (qemu:///system).

Images live in a fresh directory under /var/lib/lcfg-xen (libvirtd can reach it) and are
named lcfgtest-disk-*; libvirt objects are lcfgtest-disk-pool and lcfgtest-disk-dom. The
template is built once per module with scripts/make-template.py's helper (msdos table,
ext4 on logical partition 5, 16 MiB of random data). libguestfs appliance launches take
about 30 s each on a host where KVM cannot run the appliance (software emulation).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from lxml import etree

from support import ROOT, ansible_env, run_module

pytestmark = pytest.mark.integration

GIB = 1024**3
URI = "qemu:///system"
POOL = "lcfgtest-disk-pool"
DOMAIN = "lcfgtest-disk-dom"
PROFILE_URL = "http://lcfg.example.org/profiles/example.org/"


def sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(4 * 1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def qemu_info(path) -> dict:
    return json.loads(
        subprocess.run(
            ["qemu-img", "info", "-U", "--output=json", str(path)], capture_output=True, text=True, check=True
        ).stdout
    )


def allocated(path) -> int:
    return os.stat(path).st_blocks * 512


def guest_cat(image, fmt, *paths) -> list[str]:
    """Read files from partition 5 with guestfish (an independent reader), read-only."""
    env = dict(os.environ, LIBGUESTFS_BACKEND="direct")
    env.setdefault("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg")  # KVM cannot run the appliance here
    commands = []
    for path in paths:
        commands += ["cat", path, ":"]
    proc = subprocess.run(
        ["guestfish", "--ro", "--format=" + fmt, "-a", str(image), "-m", "/dev/sda5"] + commands[:-1],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=True,
    )
    return [line for line in proc.stdout.splitlines() if line]  # guestfish separates outputs by blank lines


@pytest.fixture(scope="module")
def store():
    os.makedirs("/var/lib/lcfg-xen", exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="test-disk-", dir="/var/lib/lcfg-xen"))
    os.chmod(directory, 0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def template(store):
    path = store / "lcfgtest-disk-template.img"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make-template.py"), str(path), "--size-gb", "1", "--data-mb", "16"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    again = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make-template.py"), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "left alone" in again.stdout
    return path, sha256(path)


def params_for(store, name, **extra):
    return dict({"path": str(store / name), "storage_dirs": [str(store)]}, **extra)


def converge(params):
    """check -> apply -> check -> apply; return the four results."""
    results = [run_module("xen_disk", params, check=check, diff=True) for check in (True, False, True, False)]
    for result in results:
        assert result["rc"] == 0 and not result.get("failed"), result
    check, apply, check_again, apply_again = results
    assert check["changed"] is True and apply["changed"] is True
    assert check["actions"] == apply["actions"]
    assert check["diff"]["before"] == apply["diff"]["before"]
    assert check["diff"]["after"] == apply["diff"]["after"]
    assert check_again["changed"] is False and apply_again["changed"] is False
    assert check_again["diff"]["before"] == check_again["diff"]["after"]
    return results


def test_raw_image_is_sparse(store):
    params = params_for(store, "lcfgtest-disk-raw.img", size_gb=5)
    converge(params)
    assert qemu_info(params["path"])["format"] == "raw"
    assert os.stat(params["path"]).st_size == 5 * GIB
    assert allocated(params["path"]) < 1024 * 1024


def test_qcow2_image(store):
    params = params_for(store, "lcfgtest-disk-q.qcow2", size="3G", format="qcow2")
    converge(params)
    info = qemu_info(params["path"])
    assert info["format"] == "qcow2" and info["virtual-size"] == 3 * GIB
    assert "backing-filename" not in info


def test_full_copy_preserves_sparseness_and_content(store, template):
    tpath, tsum = template
    params = params_for(store, "lcfgtest-disk-copy.img", template=str(tpath))
    converge(params)
    subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "raw", str(tpath), params["path"]], check=True)
    assert os.stat(params["path"]).st_size == GIB
    assert allocated(params["path"]) <= allocated(tpath) + 1024 * 1024
    assert allocated(params["path"]) < GIB // 10
    # A copy converted to qcow2 and grown to 2 GiB still holds the template's data.
    grown = params_for(store, "lcfgtest-disk-copy2.qcow2", template=str(tpath), format="qcow2", size_gb=2)
    results = converge(grown)
    assert [a.split(" ")[0] for a in results[1]["actions"]] == ["copy", "grow", "move"]
    assert qemu_info(grown["path"])["virtual-size"] == 2 * GIB
    subprocess.run(["qemu-img", "compare", str(tpath), grown["path"]], check=True)
    assert sha256(tpath) == tsum


def test_overlay_has_backing_file(store, template):
    tpath, tsum = template
    params = params_for(store, "lcfgtest-disk-ov.qcow2", template=str(tpath), clone="overlay", size_gb=2)
    converge(params)
    info = qemu_info(params["path"])
    assert info["format"] == "qcow2" and info["virtual-size"] == 2 * GIB
    assert info["full-backing-filename"] == str(tpath) and info["backing-filename-format"] == "raw"
    assert sha256(tpath) == tsum


def test_lcfg_clone_is_injected_before_it_appears(store, template):
    tpath, tsum = template
    params = params_for(
        store, "lcfgtest-disk-node1.img", template=str(tpath), size_gb=1.5, profile_url=PROFILE_URL, partition=5
    )
    check, apply, _check_again, _apply_again = converge(params)
    files = {"/etc/hostname": "lcfgtest-disk-node1\n", "/etc/lcfg/profile_url": PROFILE_URL + "\n"}
    assert check["diff"]["after"]["lcfg_files"] == files
    assert apply["image"]["lcfg_files"] == files
    assert apply["injection"]["seconds"] > 0
    print(
        f"\ninjection took {apply['injection']['seconds']} s "
        f"(appliance launch {apply['injection']['launch_seconds']} s)"
    )
    assert guest_cat(params["path"], "raw", "/etc/hostname", "/etc/lcfg/profile_url", "/etc/lcfg/TEMPLATE") == [
        "lcfgtest-disk-node1",
        PROFILE_URL,
        "lcfg.xen template image",
    ]
    assert qemu_info(params["path"])["virtual-size"] == 3 * GIB // 2
    assert not (store / ".lcfgtest-disk-node1.img.lcfg-xen-partial").exists()
    assert sha256(tpath) == tsum


def test_lcfg_overlay_writes_only_the_overlay(store, template):
    tpath, tsum = template
    params = params_for(
        store,
        "lcfgtest-disk-node2.qcow2",
        template=str(tpath),
        clone="overlay",
        profile_url=PROFILE_URL,
        partition=5,
        hostname="node2.example.org",
        lcfg_files={"profile_url": "/var/lcfg/conf/client/url"},
    )
    result = run_module("xen_disk", params)
    assert result["changed"] is True, result
    assert guest_cat(params["path"], "qcow2", "/etc/hostname", "/var/lcfg/conf/client/url") == [
        "node2.example.org",
        PROFILE_URL,
    ]
    assert sha256(tpath) == tsum


def test_wrong_partition_fails_and_leaves_nothing(store, template):
    tpath, tsum = template
    params = params_for(store, "lcfgtest-disk-bad.img", template=str(tpath), profile_url=PROFILE_URL, partition=3)
    result = run_module("xen_disk", params)
    assert result.get("failed") is True
    assert "no partition 3" in result["msg"] and "1, 2, 5" in result["msg"] and "'partition'" in result["msg"]
    assert not (store / "lcfgtest-disk-bad.img").exists()
    assert not (store / ".lcfgtest-disk-bad.img.lcfg-xen-partial").exists()
    assert sha256(tpath) == tsum


def test_existing_image_with_other_content_is_never_overwritten(store, template):
    tpath, tsum = template
    path = store / "lcfgtest-disk-mine.img"
    path.write_bytes(os.urandom(1024 * 1024))
    before = sha256(path)
    for extra in (
        {"template": str(tpath), "format": "qcow2"},
        {"template": str(tpath), "clone": "overlay"},
        {"size_gb": 2},
        {"size_gb": 1, "format": "qcow2"},
    ):
        result = run_module("xen_disk", params_for(store, path.name, **extra))
        assert result.get("failed") is True, (extra, result)
        assert str(path) in result["msg"]
        assert sha256(path) == before
    assert sha256(tpath) == tsum


def _start_module(params) -> subprocess.Popen:
    args = dict(params, _ansible_check_mode=False, _ansible_diff=False)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ansible_collections.lcfg.xen.plugins.modules.xen_disk", handle.name],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ansible_env(),
        start_new_session=True,
    )
    proc.args_file = handle.name  # type: ignore[attr-defined]
    return proc


def test_kill_during_clone_leaves_no_image_and_rerun_converges(store, template):
    tpath, tsum = template
    params = params_for(store, "lcfgtest-disk-killed.img", template=str(tpath), profile_url=PROFILE_URL, partition=5)
    final = Path(params["path"])
    partial = store / ".lcfgtest-disk-killed.img.lcfg-xen-partial"
    proc = _start_module(params)
    try:
        deadline = time.monotonic() + 120
        while not partial.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert partial.exists(), "the module never started preparing the image"
        time.sleep(3)  # copy finished or nearly; libguestfs is starting
        assert proc.poll() is None, "the module finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # helpers the killed module left behind
        except ProcessLookupError:
            pass
        os.unlink(proc.args_file)
    time.sleep(1)
    assert not final.exists()
    assert partial.exists()
    check = run_module("xen_disk", params, check=True)
    assert check["actions"][0] == f"remove the partial image {partial} left by an interrupted run"
    assert not final.exists()
    result = run_module("xen_disk", params)
    assert result["changed"] is True and result["actions"] == check["actions"]
    assert final.exists() and not partial.exists()
    assert result["image"]["lcfg_files"]["/etc/hostname"] == "lcfgtest-disk-killed\n"
    assert run_module("xen_disk", params)["changed"] is False
    assert sha256(tpath) == tsum


# ---------------------------------------------------------------- libvirt storage API


@pytest.fixture
def conn(store):
    libvirt = pytest.importorskip("libvirt")
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # cleanup lookups may miss
    connection = libvirt.open(URI)
    yield connection
    for name in (DOMAIN,):
        try:
            connection.lookupByName(name).undefine()
        except libvirt.libvirtError:
            pass
    try:
        pool = connection.storagePoolLookupByName(POOL)
        if pool.isActive():
            pool.destroy()
        pool.undefine()
    except libvirt.libvirtError:
        pass
    connection.close()


def _define_domain(connection, disk_path):
    root = etree.Element("domain", type="qemu")
    etree.SubElement(root, "name").text = DOMAIN
    etree.SubElement(root, "memory", unit="MiB").text = "64"
    os_el = etree.SubElement(root, "os")
    etree.SubElement(os_el, "type").text = "hvm"
    devices = etree.SubElement(root, "devices")
    disk = etree.SubElement(devices, "disk", type="file", device="disk")
    etree.SubElement(disk, "driver", name="qemu", type="raw")
    etree.SubElement(disk, "source", file=str(disk_path))
    etree.SubElement(disk, "target", dev="vda", bus="virtio")
    return connection.defineXML(etree.tostring(root).decode())


def test_libvirt_storage_api(store, template, conn):
    tpath, tsum = template
    common = {"uri": URI, "pool": POOL}
    raw = params_for(store, "lcfgtest-disk-lv.img", size_gb=2, **common)
    results = converge(raw)
    assert results[1]["actions"][0] == f"define and start libvirt storage pool {POOL} for {store}"
    pool = conn.storagePoolLookupByName(POOL)
    assert pool.isActive() and pool.autostart()
    pool.refresh(0)
    volume = pool.storageVolLookupByName("lcfgtest-disk-lv.img")
    assert volume.path() == raw["path"] and volume.info()[1] == 2 * GIB
    assert allocated(raw["path"]) < 1024 * 1024
    assert ".lcfgtest-disk-lv.img.lcfg-xen-partial" not in pool.listVolumes()

    copy = params_for(store, "lcfgtest-disk-lvcopy.img", template=str(tpath), **common)
    converge(copy)
    subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "raw", str(tpath), copy["path"]], check=True)
    assert allocated(copy["path"]) <= allocated(tpath) + 1024 * 1024

    overlay = params_for(store, "lcfgtest-disk-lvov.qcow2", template=str(tpath), clone="overlay", **common)
    converge(overlay)
    assert qemu_info(overlay["path"])["full-backing-filename"] == str(tpath)
    assert sha256(tpath) == tsum

    # In use by a domain: listed, and not deleted.
    _define_domain(conn, raw["path"])
    info = run_module("xen_disk_info", {"storage_dirs": [str(store)], "uri": URI})
    used = {image["path"]: image["used_by"] for image in info["images"]}
    assert used[raw["path"]] == [DOMAIN] and used[copy["path"]] == []
    refused = run_module("xen_disk", dict(raw, state="absent"))
    assert refused.get("failed") is True and DOMAIN in refused["msg"] and "undefine" in refused["msg"]
    assert os.path.exists(raw["path"])
    conn.lookupByName(DOMAIN).undefine()
    removed = run_module("xen_disk", dict(raw, state="absent"), diff=True)
    assert removed["changed"] is True and removed["diff"]["after"]["exists"] is False
    assert not os.path.exists(raw["path"])
    pool.refresh(0)
    assert "lcfgtest-disk-lv.img" not in pool.listVolumes()
