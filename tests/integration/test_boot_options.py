"""Guests built from scratch against the real libvirtd (issue 13): network boot from a libvirt
NAT network's TFTP, UEFI firmware, an install ISO as CD-ROM.

1. xen_bridge makes a NAT network whose dnsmasq serves TFTP (Debian's pxelinux.0 and
   ldlinux.c32, the host's kernel and an initramfs built here from busybox-static); xen_domain
   defines a guest with ``boot_order: [network]`` and no disk; it network-boots, its /init
   prints LCFG-NETBOOT-OK on ttyS0 and powers off; the marker is read from the console log.
2. A guest with ``firmware: uefi`` reaches OVMF's boot manager on its serial console, and
   libvirt keeps its UEFI variables under /var/lib/libvirt/qemu/nvram.
3. An ISO image inside the storage directories is attached as CD-ROM (read back from
   libvirt); one outside them, or a link leading out, is refused with a clear message.

Every object is named ``i13boot-*`` and removed by the fixtures. The console log is the one
the collection renders for every guest (libvirt's ``<log>`` of the guest's ``<serial>``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from lxml import etree

from support import run_module, storage_directory, wait_for

libvirt = pytest.importorskip("libvirt")

pytestmark = pytest.mark.integration

URI = "qemu:///system"
PREFIX = "i13boot-"
NETWORK = PREFIX + "nat"
SUBNET = "10.213.113"
PXELINUX = Path("/usr/lib/PXELINUX/pxelinux.0")
LDLINUX = Path("/usr/lib/syslinux/modules/bios/ldlinux.c32")
MARKER = "LCFG-NETBOOT-OK"
LOG_DIR = Path("/var/log/libvirt/qemu")


def connect():
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt.open(URI)


def remove_guests() -> None:
    """Destroy and undefine the i13boot guests (with their UEFI variables) and their logs."""
    conn = connect()
    try:
        for dom in conn.listAllDomains(0):
            if not dom.name().startswith(PREFIX):
                continue
            if dom.isActive():
                dom.destroy()
            if dom.isPersistent():
                dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
    finally:
        conn.close()
    for log in LOG_DIR.glob(f"{PREFIX}*"):  # console logs and libvirt's own
        log.unlink()


def console(name: str) -> str:
    path = LOG_DIR / f"{name}.console"
    return path.read_text(errors="replace") if path.exists() else ""


def guest(name: str, **params) -> dict:
    base = {
        "uri": URI,
        "name": name,
        "type": "hvm",
        "memory": 256,
        "vcpus": 1,
    }
    return dict(base, **params)


def inactive_xml(name: str) -> etree._Element:
    conn = connect()
    try:
        return etree.fromstring(conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode())
    finally:
        conn.close()


def active(name: str) -> bool:
    conn = connect()
    try:
        return bool(conn.lookupByName(name).isActive())
    finally:
        conn.close()


@pytest.fixture
def clean():
    remove_guests()
    yield
    remove_guests()


# --------------------------------------------------------------------------- 1. network boot


def build_initramfs(target: Path) -> None:
    """busybox-static and an /init that prints the marker on ttyS0 and powers off."""
    busybox = shutil.which("busybox")
    tree = target.parent / "initramfs-tree"
    for sub in ("bin", "dev", "proc"):
        (tree / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy(busybox, tree / "bin/busybox")
    init = tree / "init"
    init.write_text(
        "#!/bin/busybox sh\n"
        "/bin/busybox mount -t devtmpfs devtmpfs /dev\n"
        "/bin/busybox mount -t proc proc /proc\n"
        f"echo {MARKER} > /dev/ttyS0\n"
        "/bin/busybox sync\n"
        "/bin/busybox poweroff -f\n"
    )
    init.chmod(0o755)
    files = subprocess.run(["find", ".", "-mindepth", "1"], cwd=tree, capture_output=True, text=True, check=True)
    with open(target, "wb") as handle:
        subprocess.run(
            ["cpio", "-o", "-H", "newc", "--quiet"], cwd=tree, input=files.stdout.encode(), stdout=handle, check=True
        )
    shutil.rmtree(tree)


@pytest.fixture
def tftp_root():
    """A TFTP root with Debian's pxelinux, the host's kernel and a marker initramfs."""
    kernels = sorted(Path("/boot").glob("vmlinuz-*"))
    if not (PXELINUX.exists() and LDLINUX.exists() and kernels and shutil.which("busybox")):
        pytest.skip("needs pxelinux, syslinux-common, busybox-static and /boot/vmlinuz-*")
    # Not under a storage directory: those may be 0710 root:libvirt-qemu, which dnsmasq's
    # own user cannot enter; a TFTP root is a host path the play chooses (e.g. /srv/tftp).
    root = Path(tempfile.mkdtemp(prefix=PREFIX + "tftp-", dir="/var/lib"))
    root.chmod(0o755)
    try:
        shutil.copy(PXELINUX, root / "pxelinux.0")
        shutil.copy(LDLINUX, root / "ldlinux.c32")
        shutil.copy(kernels[-1], root / "vmlinuz")
        build_initramfs(root / "initrd.img")
        (root / "pxelinux.cfg").mkdir()
        (root / "pxelinux.cfg" / "default").write_text(
            "SERIAL 0 115200\nDEFAULT netboot\nPROMPT 0\nTIMEOUT 0\n"
            "LABEL netboot\n  KERNEL vmlinuz\n  APPEND initrd=initrd.img console=ttyS0 panic=-1\n"
        )
        for path in root.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)  # dnsmasq reads them as its own user
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def nat_network(tftp_root):
    params = {
        "uri": URI,
        "name": NETWORK,
        "mode": "nat",
        "bridge": "i13bootnat0",
        "address": f"{SUBNET}.1/24",
        "dhcp_range": {"start": f"{SUBNET}.10", "end": f"{SUBNET}.20"},
        "tftp_root": str(tftp_root),
        "boot_file": "pxelinux.0",
    }
    run_module("xen_bridge", {"uri": URI, "name": NETWORK, "mode": "nat", "state": "absent"})
    made = run_module("xen_bridge", params)
    assert not made.get("failed"), made.get("msg")
    try:
        yield params
    finally:
        gone = run_module("xen_bridge", {"uri": URI, "name": NETWORK, "mode": "nat", "state": "absent"})
        assert not gone.get("failed"), gone.get("msg")


def test_guest_network_boots_from_the_nat_networks_tftp(clean, nat_network, tftp_root):
    conn = connect()
    try:
        net = etree.fromstring(conn.networkLookupByName(NETWORK).XMLDesc(0).encode())
    finally:
        conn.close()
    assert net.find("ip/tftp").get("root") == str(tftp_root)
    assert net.find("ip/dhcp/bootp").get("file") == "pxelinux.0"
    again = run_module("xen_bridge", nat_network)
    assert again["changed"] is False, again.get("actions")

    name = PREFIX + "net"
    # TCG, as for UEFI: under this machine's nested KVM the NIC's iPXE option ROM never sends
    # a packet; under TCG the marker comes about 80 s after the start
    extra = {"domain_type": "qemu"}
    vifs = [{"nettype": "nat", "network": NETWORK}]
    params = guest(name, boot_order=["network"], vifs=vifs, extra=extra, state="running")
    started = run_module("xen_domain", params)
    assert not started.get("failed"), started.get("msg")
    root = inactive_xml(name)
    assert [b.get("dev") for b in root.findall("os/boot")] == ["network"]
    assert root.findall("devices/disk") == []  # nothing to boot but the network

    log = wait_for(lambda: MARKER in console(name) and console(name), timeout=400, what="the netboot marker")
    assert "PXELINUX 6.04 PXE" in log and "Loading vmlinuz... ok" in log  # Debian's pxelinux, by TFTP
    conn = connect()
    try:
        leases = conn.networkLookupByName(NETWORK).DHCPLeases()
    finally:
        conn.close()
    mac = root.find("devices/interface/mac").get("address")
    assert [lease["ipaddr"] for lease in leases if lease["mac"] == mac]  # its address came from the network
    wait_for(lambda: not active(name), timeout=60, what="the guest powering off")


# --------------------------------------------------------------------------- 2. UEFI


def test_uefi_guest_reaches_its_firmwares_boot_manager(clean):
    if not Path("/usr/share/qemu/firmware").is_dir() or not list(Path("/usr/share/qemu/firmware").glob("*.json")):
        pytest.skip("needs Debian's ovmf (its firmware descriptors)")
    name = PREFIX + "uefi"
    # TCG: on this nested-virtualisation machine KVM stops OVMF at once ("emulation failure"
    # running from its pflash), while SeaBIOS guests run under KVM; OVMF under TCG needs ~20 s
    extra = {"domain_type": "qemu"}
    params = guest(name, firmware="uefi", extra=extra, state="running")
    started = run_module("xen_domain", params)
    assert not started.get("failed"), started.get("msg")
    assert inactive_xml(name).find("os").get("firmware") == "efi"
    conn = connect()
    try:
        live = etree.fromstring(conn.lookupByName(name).XMLDesc(0).encode())
    finally:
        conn.close()
    assert live.find("os/loader").get("type") == "pflash" and "OVMF" in live.findtext("os/loader")
    nvram = live.findtext("os/nvram")
    assert nvram.startswith("/var/lib/libvirt/qemu/nvram/") and Path(nvram).exists()
    # OVMF's boot manager on the serial console: 'BdsDxe: loading Boot0001 "EFI Internal Shell"'
    # (no disk to boot), then 'UEFI Interactive Shell v2.2'
    log = wait_for(lambda: "BdsDxe: " in console(name) and console(name), timeout=180, what="OVMF's boot manager")
    wait_for(lambda: "UEFI Interactive Shell" in console(name), timeout=60, what="the UEFI shell")
    assert "BdsDxe: loading Boot" in log
    again = run_module("xen_domain", params)
    assert again["changed"] is False, again.get("actions")
    # the UEFI shell ignores ACPI power buttons: removal forces it off
    gone = run_module(
        "xen_domain", {"uri": URI, "name": name, "state": "absent", "shutdown_timeout": 0, "force_stop": True}
    )
    assert not gone.get("failed"), gone.get("msg")
    assert not Path(nvram).exists()  # removed with the guest


# --------------------------------------------------------------------------- 3. CD-ROM


def make_iso(path: Path) -> None:
    source = path.parent / "iso-tree"
    source.mkdir()
    (source / "README").write_text("lcfg.xen install medium\n")
    if shutil.which("xorriso"):
        subprocess.run(
            ["xorriso", "-as", "mkisofs", "-quiet", "-V", "I13BOOT", "-o", str(path), str(source)], check=True
        )
    else:
        path.write_bytes(b"\0" * 32768)
    shutil.rmtree(source)


def test_cdrom_inside_the_storage_directories_is_attached_outside_refused(clean, tmp_path):
    name = PREFIX + "cd"
    with storage_directory(PREFIX + "iso-") as storage:
        iso = storage / "installer.iso"
        make_iso(iso)
        params = guest(name, cdrom=str(iso), boot_order=["cdrom", "disk"], state="present")
        made = run_module("xen_domain", params)
        assert not made.get("failed"), made.get("msg")
        cdroms = inactive_xml(name).findall("devices/disk[@device='cdrom']")
        assert [(c.find("source").get("file"), c.find("target").get("dev")) for c in cdroms] == [(str(iso), "hdc")]
        assert cdroms[0].find("readonly") is not None
        assert [b.get("dev") for b in inactive_xml(name).findall("os/boot")] == ["cdrom", "hd"]
        assert run_module("xen_domain", params)["changed"] is False

        outside = tmp_path / "outside.iso"
        make_iso(outside)
        refused = run_module("xen_domain", dict(params, cdrom=str(outside)))
        assert refused.get("failed")
        assert "cdrom" in refused["msg"] and "outside the storage directories" in refused["msg"]
        link = storage / "link.iso"
        os.symlink("/etc/hostname", link)
        escaped = run_module("xen_domain", dict(params, cdrom=str(link)))
        assert escaped.get("failed") and "-> /etc/hostname" in escaped["msg"]
        cdroms = inactive_xml(name).findall("devices/disk[@device='cdrom']")
        assert [c.find("source").get("file") for c in cdroms] == [str(iso)]  # unchanged

        removed = run_module("xen_domain", dict(params, cdrom="", boot_order=["disk"]))
        assert not removed.get("failed"), removed.get("msg")
        assert inactive_xml(name).findall("devices/disk[@device='cdrom']") == []
