"""xen_domain / xen_domain_info against the real libvirtd (qemu:///system).

Every case runs the module four times through its real entry point (check, apply, check,
apply) and requires the check runs to predict the apply runs (same changed, actions and
diff), then reads the result back from libvirt. Guests and images are named
``lcfgtest-dom-*`` and removed by the fixtures.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from lxml import etree

from support import ROOT, four_steps, run_module, wait_for

libvirt = pytest.importorskip("libvirt")

pytestmark = pytest.mark.integration

URI = "qemu:///system"
PREFIX = "lcfgtest-dom-"
IMAGES = Path("/var/lib/libvirt/images")
BOOT_DIR = IMAGES / "lcfgtest-dom-boot"
MODULES = (
    "virtio_ring.ko",
    "virtio.ko",
    "virtio_pci_legacy_dev.ko",
    "virtio_pci_modern_dev.ko",
    "virtio_pci.ko",
    "virtio_balloon.ko",
)


def connect():
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt.open(URI)


def remove_test_guests() -> None:
    conn = connect()
    try:
        for dom in conn.listAllDomains(0):
            if not dom.name().startswith(PREFIX):
                continue
            if dom.isActive():
                dom.destroy()
            if dom.isPersistent():
                dom.undefineFlags(
                    libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
                    | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                    | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                )
    finally:
        conn.close()


@pytest.fixture
def clean():
    """No lcfgtest-dom guest or image before and after the test."""
    remove_test_guests()
    created: list[Path] = []
    yield created
    remove_test_guests()
    for path in created:
        if path.exists():
            path.unlink()


@pytest.fixture
def conn():
    connection = connect()
    yield connection
    try:
        connection.close()
    except libvirt.libvirtError:
        pass


def blank_image(created: list[Path], name: str, fmt: str = "qcow2", size: str = "16M") -> Path:
    path = IMAGES / f"{PREFIX}{name}.{fmt}"
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, str(path), size], check=True)
    created.append(path)
    return path


@pytest.fixture(scope="module")
def boot_files():
    """A Debian kernel and a busybox initramfs that loads virtio_balloon and then idles."""
    kernels = sorted(Path("/boot").glob("vmlinuz-*"))
    busybox = shutil.which("busybox")
    if not kernels or not busybox:
        pytest.skip("needs /boot/vmlinuz-* and busybox-static")
    kernel = kernels[-1]
    release = kernel.name[len("vmlinuz-") :]
    moddir = Path("/lib/modules") / release / "kernel/drivers/virtio"
    if not all((moddir / m).exists() for m in MODULES):
        pytest.skip(f"virtio modules of {release} not found")
    BOOT_DIR.mkdir(mode=0o755, exist_ok=True)
    tree = BOOT_DIR / "tree"
    if tree.exists():
        shutil.rmtree(tree)
    for sub in ("bin", "proc", "sys", "dev", "mod"):
        (tree / sub).mkdir(parents=True)
    shutil.copy(busybox, tree / "bin/busybox")
    for module in MODULES:
        shutil.copy(moddir / module, tree / "mod" / module)
    init = tree / "init"
    init.write_text(
        "#!/bin/busybox sh\n"
        "/bin/busybox mount -t proc proc /proc\n"
        "/bin/busybox mount -t sysfs sysfs /sys\n"
        + "".join(f"/bin/busybox insmod /mod/{m}\n" for m in MODULES)
        + "echo lcfgtest-ready > /dev/console\n"
        "while true; do /bin/busybox sleep 3600; done\n"
    )
    init.chmod(0o755)
    files = subprocess.run(["find", ".", "-mindepth", "1"], cwd=tree, capture_output=True, text=True, check=True).stdout
    initrd = BOOT_DIR / "initrd.cpio"
    with open(initrd, "wb") as handle:
        subprocess.run(
            ["cpio", "-o", "-H", "newc", "--quiet"], cwd=tree, input=files.encode(), stdout=handle, check=True
        )
    shutil.copy(kernel, BOOT_DIR / "vmlinuz")
    shutil.rmtree(tree)
    yield {"kernel": str(BOOT_DIR / "vmlinuz"), "ramdisk": str(initrd), "cmdline": "console=ttyS0 quiet panic=-1"}
    shutil.rmtree(BOOT_DIR, ignore_errors=True)


def inactive(conn, name: str):
    return etree.fromstring(conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode())


def qemu_pid(name: str) -> int:
    return int(Path(f"/run/libvirt/qemu/{name}.pid").read_text().strip())


def test_define_reads_back_as_declared(clean, conn):
    name = PREFIX + "define"
    image = blank_image(clean, "define")
    os.setxattr(image, "trusted.lcfg-xen.format", b"qcow2")  # as xen_disk records it; never probed
    result = four_steps(
        "xen_domain",
        {
            "name": name,
            "type": "pv",
            "memory": 96,
            "maxmem": 128,
            "vcpus": 1,
            "maxvcpus": 2,
            "cpus": "0",
            "autostart": True,
            "disks": [{"path": str(image), "tag": "root"}],
            "vifs": [{"nettype": "nat", "network": "default", "tag": "eth0"}],
        },
    )
    assert result["actions"] == ["define", "set_autostart"]
    dom = conn.lookupByName(name)
    assert dom.autostart() == 1 and not dom.isActive()
    root = inactive(conn, name)
    assert root.get("type") == ("kvm" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "qemu")
    assert root.findtext("memory") == str(128 * 1024) and root.findtext("currentMemory") == str(96 * 1024)
    assert root.find("vcpu").get("current") == "1" and root.find("vcpu").get("cpuset") == "0"
    disk = root.find("devices/disk")
    assert disk.find("driver").get("type") == "qcow2"  # recorded by xen_disk, not read from the header
    assert disk.find("target").get("dev") == "vda" and disk.find("target").get("bus") == "virtio"
    nic = root.find("devices/interface")
    assert nic.find("model").get("type") == "virtio" and nic.find("source").get("network") == "default"
    assert nic.find("mac").get("address") == result["after"]["vifs"][0]["mac"]
    assert root.findtext("uuid") == result["after"]["uuid"]
    assert image.exists()


def test_update_keeps_uuid_macs_and_foreign_devices(clean, conn):
    name = PREFIX + "update"
    first = four_steps(
        "xen_domain", {"name": name, "type": "hvm", "memory": 64, "vifs": [{"nettype": "nat", "network": "default"}]}
    )
    # someone adds a device the module does not model
    root = inactive(conn, name)
    rng = etree.SubElement(root.find("devices"), "rng", model="virtio")
    etree.SubElement(rng, "backend", model="random").text = "/dev/urandom"
    conn.defineXML(etree.tostring(root, encoding="unicode"))
    result = four_steps(
        "xen_domain",
        {
            "name": name,
            "memory": 48,
            "vifs": [{"nettype": "nat", "network": "default"}, {"nettype": "nat", "network": "default"}],
        },
    )
    assert result["actions"] == ["redefine"]
    root = inactive(conn, name)
    assert root.findtext("uuid") == first["after"]["uuid"]
    macs = [m.get("address") for m in root.findall("devices/interface/mac")]
    assert macs[0] == first["after"]["vifs"][0]["mac"] and len(set(macs)) == 2
    assert root.find("devices/rng/backend").text == "/dev/urandom"
    assert root.findtext("currentMemory") == str(48 * 1024)
    assert [n.find("model").get("type") for n in root.findall("devices/interface")] == ["e1000", "e1000"]


def test_live_changes_keep_the_qemu_process(clean, conn, boot_files):
    name = PREFIX + "live"
    # TCG: the KVM offered on this (nested) machine is too slow to boot a kernel
    params = {
        "name": name,
        "type": "pv",
        "memory": 128,
        "maxmem": 128,
        "vcpus": 1,
        "maxvcpus": 2,
        "state": "running",
        "extra": {"domain_type": "qemu"},
        **boot_files,
    }
    four_steps("xen_domain", params)
    dom = conn.lookupByName(name)
    pid = qemu_pid(name)
    result = four_steps("xen_domain", dict(params, memory=96, vcpus=2))
    assert result["actions"] == ["set_memory_live", "set_vcpus_live"]
    assert result["pending_restart"] == []
    # the guest's balloon driver gives the memory back once the kernel has loaded it
    wait_for(lambda: dom.info()[2] == 96 * 1024, timeout=240, step=2, what="the guest to report 96 MiB")
    assert dom.info()[3] == 2
    assert len(dom.vcpus()[0]) == 2
    assert qemu_pid(name) == pid
    root = inactive(conn, name)
    assert root.findtext("currentMemory") == str(96 * 1024) and root.find("vcpu").get("current") is None
    # maxmem cannot change live: saved, reported, guest left running
    pending = four_steps("xen_domain", dict(params, memory=96, vcpus=2, maxmem=192))
    assert pending["pending_restart_fields"] == ["maxmem"] and pending["pending_restart"] == [name]
    assert inactive(conn, name).findtext("memory") == str(192 * 1024)
    assert dom.isActive() and qemu_pid(name) == pid
    assert dom.info()[1] == 128 * 1024  # the running guest still has its old ceiling


def test_absent_shutdown_policy(clean, conn):
    name = PREFIX + "absent"
    image = blank_image(clean, "absent", fmt="raw")
    four_steps(
        "xen_domain", {"name": name, "type": "hvm", "memory": 64, "state": "running", "disks": [{"path": str(image)}]}
    )
    # No OS: nothing answers the shutdown request. Without force_stop the module fails and
    # leaves the guest as it was.
    refused = run_module("xen_domain", {"uri": URI, "name": name, "state": "absent", "shutdown_timeout": 1})
    assert refused["rc"] == 1 and "force_stop" in refused["msg"]
    assert conn.lookupByName(name).isActive()
    started = time.monotonic()
    removed = four_steps("xen_domain", {"name": name, "state": "absent", "shutdown_timeout": 2, "force_stop": True})
    assert time.monotonic() - started < 60
    assert removed["actions"] == ["stop", "undefine"]
    assert name not in [d.name() for d in conn.listAllDomains(0)]
    assert image.exists()  # images are kept unless remove_disks


def test_remove_disks(clean, conn):
    name = PREFIX + "rmdisk"
    image = blank_image(clean, "rmdisk")
    four_steps("xen_domain", {"name": name, "memory": 64, "disks": [{"path": str(image)}]})
    result = four_steps("xen_domain", {"name": name, "state": "absent", "remove_disks": True})
    assert result["actions"] == ["undefine", f"remove_disk {image}"]
    assert not image.exists()


@pytest.mark.parametrize(
    "params, parameter",
    [
        ({"memory": 512, "maxmem": 128}, "memory"),
        ({"memory": 4096}, "maxmem"),
        ({"vcpus": 8}, "maxvcpus"),
        ({"cpus": "x"}, "cpus"),
        ({"type": "pvh"}, "type"),
        ({"disks": [{"path": "rel/a.img"}]}, "disks[0].path"),
        ({"bootloader": "pygrub"}, "bootloader"),
        ({"uuid": "0b2c4d6e-8f10-4a12-9c14-16e18a20c222"}, "uuid"),
    ],
)
def test_bad_parameters_leave_libvirt_untouched(clean, conn, params, parameter):
    name = PREFIX + "bad"
    four_steps("xen_domain", {"name": name, "memory": 64, "maxmem": 128, "vcpus": 1})
    before = conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    guests_before = sorted(d.name() for d in conn.listAllDomains(0))
    result = run_module("xen_domain", dict(params, uri=URI, name=name))
    assert result["rc"] == 1
    assert parameter in result["msg"]
    assert conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) == before
    assert sorted(d.name() for d in conn.listAllDomains(0)) == guests_before


def test_domain_info_reports_inactive_and_running(clean, conn):
    stopped = four_steps(
        "xen_domain", {"name": PREFIX + "info1", "memory": 64, "vifs": [{"nettype": "nat", "network": "default"}]}
    )
    running = four_steps("xen_domain", {"name": PREFIX + "info2", "type": "hvm", "memory": 64, "state": "running"})
    info = run_module("xen_domain_info", {"uri": URI})
    guests = {g["name"]: g for g in info["guests"]}
    first, second = guests[PREFIX + "info1"], guests[PREFIX + "info2"]
    assert first["state"] == "stopped" and first["live"] is None
    assert dict(first["config"], state="stopped") == stopped["after"]
    assert second["state"] == "running" and second["live"]["vcpus"] == 1
    assert dict(second["config"], state="running") == running["after"]
    # the reported configuration is valid xen_domain input and changes nothing
    again = run_module("xen_domain", dict(first["config"], uri=URI))
    assert again["rc"] == 0 and again["changed"] is False


def test_second_task_works_after_libvirtd_restart(clean, conn):
    name = PREFIX + "restart"
    four_steps("xen_domain", {"name": name, "memory": 64})
    subprocess.run(["bash", str(ROOT / "scripts/libvirtd.sh"), "restart"], check=True, timeout=120)
    result = four_steps("xen_domain", {"name": name, "memory": 48})
    assert result["actions"] == ["redefine"]
    fresh = connect()
    try:
        assert inactive(fresh, name).findtext("currentMemory") == str(48 * 1024)
    finally:
        fresh.close()


N0 = "lcfgt-n0-admin"


@pytest.fixture
def foreign_domain(conn):
    """A VM an admin defined by hand (no lcfg metadata), with a raw image of its own."""
    image = IMAGES / f"{N0}.img"

    def remove():
        try:
            dom = conn.lookupByName(N0)
        except libvirt.libvirtError:
            pass
        else:
            if dom.isActive():
                dom.destroy()
            dom.undefine()
        image.unlink(missing_ok=True)

    remove()
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(image), "1M"], check=True)
    conn.defineXML(f"""<domain type='qemu'><name>{N0}</name><memory unit='MiB'>64</memory>
      <os><type>hvm</type></os><devices>
      <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{image}'/>
        <target dev='vda' bus='virtio'/></disk>
      <interface type='network'><mac address='52:54:00:4e:30:01'/><source network='default'/></interface>
      </devices></domain>""")
    yield image
    remove()


def test_a_hand_made_domain_is_left_alone_until_adopted(conn, foreign_domain):
    """N0: a profile naming its guest after a domain lcfg.xen did not define neither redefines it
    nor, through teardown's remove_disks, undefines it and deletes its image - until the play adopts it."""
    image = foreign_domain
    before = conn.lookupByName(N0).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    attempts = [
        ("xen_domain", {"name": N0, "memory": 64}),  # would drop its disk and vif
        ("xen_guests", {"guests": [{"name": N0, "state": "absent", "force_stop": True, "remove_disks": True}]}),
    ]
    for module, params in attempts:
        for check in (True, False):
            result = run_module(module, dict(params, uri=URI), check=check)
            assert result.get("failed") and not result.get("changed"), result
            assert f"guest {N0} exists on the hypervisor but was not defined by lcfg.xen" in result["msg"]
            assert "adopt" in result["msg"]
    assert conn.lookupByName(N0).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) == before
    assert image.exists()
    # adopted once: converged from the spec and marked as lcfg.xen's
    adopt = {"uri": URI, "guests": [{"name": N0, "type": "hvm", "memory": 48}], "adopt": [N0]}
    check = run_module("xen_guests", adopt, check=True)
    real = run_module("xen_guests", adopt)
    assert not real.get("failed"), real
    assert check["results"][0]["actions"] == real["results"][0]["actions"] == ["redefine"]
    root = inactive(conn, N0)
    assert root.find("metadata/{urn:lcfg:xen:guest:1}guest") is not None
    assert root.findtext("currentMemory") == str(48 * 1024)
    # lcfg.xen's now: the next run needs no adopt, and removal with remove_disks works
    again = run_module("xen_guests", {"uri": URI, "guests": [{"name": N0, "type": "hvm", "memory": 48}]})
    assert again["changed"] is False, again
    gone = run_module("xen_domain", {"uri": URI, "name": N0, "state": "absent", "remove_disks": True})
    assert gone["actions"] == ["undefine", f"remove_disk {image}"], gone
    assert not image.exists()
