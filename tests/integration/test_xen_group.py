"""xen_group against the real libvirtd: virtual groups reconfigured live.

The member guests boot a real Linux kernel with a tiny busybox initramfs that loads the
virtio balloon driver, so a memory change is carried out by the guest and can be read
back from the running domain (``virDomain.info``), not only from its saved definition.
Every object is named ``lcfgtest-grp-*`` and removed by the fixtures.
"""

from __future__ import annotations

import glob
import gzip
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from support import ROOT, run_module, run_playbook, wait_for

pytestmark = pytest.mark.integration

libvirt = pytest.importorskip("libvirt")

URI = "qemu:///system"
PREFIX = "lcfgtest-grp-"
WORK = Path("/var/lib/lcfg-xen/test/lcfgtest-grp")
MODULES = ("virtio", "virtio_ring", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci", "virtio_balloon")
INIT = """#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
for m in {modules}; do /bin/busybox insmod /lib/modules/$m.ko; done
echo lcfgtest-grp-ready > /dev/console
while true; do /bin/busybox sleep 3600; done
"""


def _kernel() -> tuple[str, str]:
    kernels = sorted(glob.glob("/boot/vmlinuz-*"))
    if not kernels or not os.path.exists("/bin/busybox"):
        pytest.skip("needs a Debian kernel in /boot and busybox-static")
    version = os.path.basename(kernels[-1])[len("vmlinuz-") :]
    return kernels[-1], version


def _build_initramfs(dest: Path, version: str) -> None:
    """newc cpio of busybox, the balloon driver and its dependencies, and /init."""
    root = dest.parent / "initramfs-root"
    shutil.rmtree(root, ignore_errors=True)
    for sub in ("bin", "proc", "dev", "lib/modules"):
        (root / sub).mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    for mod in MODULES:
        found = glob.glob(f"/lib/modules/{version}/kernel/drivers/virtio/{mod}.ko*")
        if not found or not found[0].endswith(".ko"):
            pytest.skip(f"kernel module {mod}.ko not found (uncompressed) for {version}")
        shutil.copy2(found[0], root / "lib" / "modules" / f"{mod}.ko")
    init = root / "init"
    init.write_text(INIT.format(modules=" ".join(MODULES)))
    init.chmod(0o755)
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    data = subprocess.run(
        ["cpio", "-o", "-H", "newc", "--quiet"],
        cwd=root,
        input="\n".join(names).encode(),
        capture_output=True,
        check=True,
    ).stdout
    with gzip.open(dest, "wb") as handle:
        handle.write(data)
    shutil.rmtree(root)


@pytest.fixture(scope="module")
def conn():
    connection = libvirt.open(URI)
    yield connection
    connection.close()


def _remove(conn, name: str) -> None:
    try:
        dom = conn.lookupByName(name)
    except libvirt.libvirtError:
        return
    if dom.isActive():
        dom.destroy()
    dom.undefine()


@pytest.fixture(scope="module")
def boot_files():
    kernel, version = _kernel()
    WORK.mkdir(parents=True, exist_ok=True)
    vmlinuz = WORK / "vmlinuz"
    shutil.copy2(kernel, vmlinuz)
    initrd = WORK / "initrd.gz"
    _build_initramfs(initrd, version)
    yield str(vmlinuz), str(initrd)
    shutil.rmtree(WORK, ignore_errors=True)


def _spec(name: str, boot_files, memory=128, maxmem=256, vcpus=1, maxvcpus=2) -> dict:
    return {
        "name": name,
        "type": "pv",
        "memory": memory,
        "maxmem": maxmem,
        "vcpus": vcpus,
        "maxvcpus": maxvcpus,
        "kernel": boot_files[0],
        "ramdisk": boot_files[1],
        "cmdline": "console=ttyS0 quiet panic=-1",
        "state": "running",
    }


def _live_mib(conn, name: str) -> int:
    return conn.lookupByName(name).info()[2] // 1024


def _pins(conn, name: str) -> list[list[int]]:
    dom = conn.lookupByName(name)
    return [[cpu for cpu, on in enumerate(row) if on] for row in dom.vcpuPinInfo(libvirt.VIR_DOMAIN_AFFECT_LIVE)]


BALLOON: dict[str, bool] = {}


@pytest.fixture
def members(conn, boot_files):
    """Three running members. Where the guests' kernel boots (it needs a working KVM or
    TCG guest; nested hosts may halt it), their balloon driver comes up and live memory
    is read back from the guest; BALLOON records whether it did."""
    names = [f"{PREFIX}{i}" for i in (1, 2, 3)]
    for name in names:
        _remove(conn, name)
    result = run_module("xen_guests", {"uri": URI, "guests": [_spec(n, boot_files) for n in names]})
    assert not result.get("failed"), result.get("msg")
    if "up" not in BALLOON:
        try:
            wait_for(lambda: _live_mib(conn, names[0]) == 128, timeout=60, what="the balloon driver")
            BALLOON["up"] = True
        except AssertionError:
            BALLOON["up"] = False
    if BALLOON["up"]:
        for name in names:
            wait_for(lambda n=name: _live_mib(conn, n) == 128, what=f"the balloon driver of {name}")
    yield names
    for name in names:
        _remove(conn, name)


def _group(names, check=False, **settings):
    params = {"uri": URI, "name": "lcfgtest-grp", "members": names}
    params.update(settings)
    return run_module("xen_group", params, check=check, diff=True)


def test_group_reconfigures_running_members_live(conn, members):
    ids = {n: conn.lookupByName(n).ID() for n in members}
    own = [members[0], members[1], {"name": members[2], "memory": 160}]
    predicted = _group(own, check=True, memory=192, vcpus=2, cpus="1", live_wait=60)
    assert predicted["changed"] is True
    # check mode changed nothing
    assert all(conn.lookupByName(n).info()[3] == 1 for n in members)
    applied = _group(own, memory=192, vcpus=2, cpus="1", live_wait=60)
    assert not applied.get("failed"), applied.get("msg")
    assert applied["changed"] is True and applied["changed_members"] == members
    assert predicted["diff"] == applied["diff"]
    assert [entry["name"] for entry in applied["results"]] == members
    for entry in applied["results"]:
        # memory counts as changed live only when the guest's balloon followed it
        if BALLOON["up"]:
            assert entry["live"] == ["memory", "vcpus", "cpus"] and entry["live_not_followed"] == [], entry
        else:
            assert entry["live"] == ["vcpus", "cpus"], entry
            assert entry["live_not_followed"][0].startswith("memory: target"), entry
        assert abs(entry["memory_actual"] - _live_mib(conn, entry["name"])) <= 2, entry
        assert entry["pending_restart"] == [], (entry["pending_restart_fields"], entry["actions"])
        assert entry["state"] == "running"
    # values read back from the running guests: the balloon moved, VCPUs are online, pinned
    for name, want in ((members[0], 192), (members[1], 192), (members[2], 160)):
        if BALLOON["up"]:
            wait_for(lambda n=name, w=want: _live_mib(conn, n) == w, what=f"{name} to balloon to {want} MiB")
        dom = conn.lookupByName(name)
        assert dom.info()[3] == 2
        assert _pins(conn, name) == [[1], [1]]
        assert dom.ID() == ids[name], "the member was restarted"
        saved = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        assert f"<currentMemory unit='KiB'>{want * 1024}</currentMemory>" in saved
    again_check = _group(own, check=True, memory=192, vcpus=2, cpus="1")
    again = _group(own, memory=192, vcpus=2, cpus="1")
    assert again_check["changed"] is False and again["changed"] is False
    assert again["diff"]["before"] == again["diff"]["after"]


def test_maxmem_waits_for_restart_and_nothing_restarts(conn, members):
    ids = {n: conn.lookupByName(n).ID() for n in members}
    result = _group(members, maxmem=320)
    assert result["changed"] is True
    assert result["pending_restart"] == members
    entries = {entry["name"]: entry for entry in result["results"]}
    for name in members:
        assert entries[name]["pending_restart_fields"] == ["maxmem"]
        dom = conn.lookupByName(name)
        assert dom.ID() == ids[name]
        assert "<memory unit='KiB'>327680</memory>" in dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        assert dom.maxMemory() == 256 * 1024


def test_bad_input_changes_nothing(conn, members):
    before = {n: conn.lookupByName(n).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) for n in members}
    too_much = _group([members[0], {"name": members[1], "maxmem": 128}], memory=200)
    assert too_much["failed"] and "members[" in too_much["msg"] and "maxmem" in too_much["msg"]
    missing = _group([members[0], f"{PREFIX}nosuch"], memory=150)
    assert missing["failed"] and f"{PREFIX}nosuch" in missing["msg"]
    typo = _group([{"name": members[0], "memroy": 100}])
    assert typo["failed"] and "memroy" in typo["msg"]
    after = {n: conn.lookupByName(n).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) for n in members}
    assert before == after
    assert all(conn.lookupByName(n).info()[3] == 1 for n in members)


PROFILE = """/* lcfgtest-grp: a hypervisor with one virtual group of three guests */
!profile.components mADD(xen)
!xen.xendconfbridgenet mSET(off)
!xen.virtualmachines mADD(g1 g2 g3)
{guests}
!xen.virtualgroup mADD(lcfgtestgrp)
!xen.members_lcfgtestgrp mADD(g1 g2 g3)
!xen.groupmemory_lcfgtestgrp mSET({memory})
!xen.groupmaxmem_lcfgtestgrp mSET(256)
!xen.groupvcpus_lcfgtestgrp mSET(1)
!xen.groupmaxvcpus_lcfgtestgrp mSET(2)
"""
GUEST = """!xen.name_g{i} mSET(lcfgtest-grp-{i})
!xen.type_g{i} mSET(pv)
!xen.kernel_g{i} mSET({kernel})
!xen.ramdisk_g{i} mSET({initrd})
!xen.cmdline_g{i} mSET(console=ttyS0 quiet panic=-1)
"""


def _inventory(tmp_path: Path, boot_files, memory: int) -> Path:
    (tmp_path / "profiles").mkdir(exist_ok=True)
    guests = "".join(GUEST.format(i=i, kernel=boot_files[0], initrd=boot_files[1]) for i in (1, 2, 3))
    (tmp_path / "profiles" / "lcfgtest-grp-hv").write_text(PROFILE.format(guests=guests, memory=memory))
    (tmp_path / "group_vars").mkdir(exist_ok=True)
    (tmp_path / "group_vars" / "xen_hypervisors.yml").write_text(
        f'ansible_connection: local\nansible_python_interpreter: "{{{{ ansible_playbook_python }}}}"\nxen_uri: {URI}\n'
    )
    config = tmp_path / "site.lcfg.yml"
    config.write_text("plugin: lcfg.xen.lcfg\nsources: [profiles]\nstrict: true\n")
    return config


def test_rolling_playbook_applies_a_new_group_memory_without_restart(conn, members, boot_files, tmp_path):
    """Change groupmemory in the profile, re-run the rolling playbook: members follow live."""
    ids = {n: conn.lookupByName(n).ID() for n in members}
    inventory = _inventory(tmp_path, boot_files, memory=128)
    first = run_playbook(ROOT / "playbooks" / "rolling.yml", "--limit", "lcfgtestgrp", inventory=inventory)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    assert "live: nothing" in first.stdout

    inventory = _inventory(tmp_path, boot_files, memory=176)
    second = run_playbook(ROOT / "playbooks" / "rolling.yml", "--limit", "lcfgtestgrp", "-v", inventory=inventory)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-2000:]
    for name in members:
        if BALLOON["up"]:
            wait_for(lambda n=name: _live_mib(conn, n) == 176, what=f"{name} to balloon to 176 MiB")
        dom = conn.lookupByName(name)
        assert dom.ID() == ids[name], "the member was restarted"
        assert "<currentMemory unit='KiB'>180224</currentMemory>" in dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        # a balloon that did not follow is not reported as a live change
        live = "memory" if BALLOON["up"] else "nothing"
        assert f"{name}: running, 176 MiB, 1 VCPUs; live: {live}" in second.stdout
    assert "changed=1" in second.stdout[second.stdout.index("PLAY RECAP") :]
