"""What running guests show of themselves, against the real libvirtd (qemu:///system): the
addresses xen_domain_info finds (DHCP lease on a libvirt NAT network, ARP for a bridged guest),
the serial console log virtlogd writes and _info reads back, the balloon's actual size after a
live memory change the guest cannot follow, and a guest that stops right after its start.

The guests boot the host's Debian kernel with a busybox initramfs built here, whose /init
prints a marker on ttyS0, loads e1000 and asks for an address with udhcpc. Everything is named
``i13info-`` and removed afterwards.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from lxml import etree

from support import remove_domains, remove_networks, run_module, storage_directory, wait_for

libvirt = pytest.importorskip("libvirt")

pytestmark = pytest.mark.integration

URI = "qemu:///system"
PREFIX = "i13info-"
NETWORK = PREFIX + "net"
BRIDGE = "i13infobr0"
SUBNET = "10.113.77"
MARKER = "i13info-marker-from-init"
CONSOLE_DIR = Path("/var/log/libvirt/qemu")

DHCP_SCRIPT = """#!/bin/busybox sh
case "$1" in
  bound|renew)
    /bin/busybox ip addr flush dev "$interface"
    /bin/busybox ip addr add "$ip/$mask" dev "$interface"
    echo "$router" > /router
    echo "i13info-address $ip" > /dev/ttyS0
    ;;
esac
"""


def init_script(network: bool) -> str:
    lines = [
        "#!/bin/busybox sh",
        "/bin/busybox --install -s /bin",
        "mount -t proc proc /proc",
        "mount -t sysfs sysfs /sys",
        "mount -t devtmpfs devtmpfs /dev",
        f"echo {MARKER} > /dev/ttyS0",
    ]
    if network:
        lines += [
            "insmod /mod/e1000.ko",
            "ip link set eth0 up",
            "udhcpc -b -i eth0 -s /dhcp.sh -t 30 -T 2",
            # traffic to the gateway puts the guest into the host's ARP table
            "while true; do [ -f /router ] && ping -c 1 -W 1 $(cat /router) >/dev/null 2>&1; sleep 2; done",
        ]
    else:
        lines += ["echo i13info-powering-off > /dev/ttyS0", "poweroff -f"]
    return "\n".join(lines) + "\n"


def build_initrd(directory: Path, name: str, network: bool, release: str) -> Path:
    tree = directory / f"tree-{name}"
    for sub in ("bin", "proc", "sys", "dev", "mod"):
        (tree / sub).mkdir(parents=True)
    shutil.copy(shutil.which("busybox"), tree / "bin/busybox")
    shutil.copy(Path("/lib/modules") / release / "kernel/drivers/net/ethernet/intel/e1000/e1000.ko", tree / "mod")
    (tree / "init").write_text(init_script(network))
    (tree / "dhcp.sh").write_text(DHCP_SCRIPT)
    (tree / "init").chmod(0o755)
    (tree / "dhcp.sh").chmod(0o755)
    files = subprocess.run(["find", ".", "-mindepth", "1"], cwd=tree, capture_output=True, text=True, check=True).stdout
    initrd = directory / f"{name}.cpio"
    with open(initrd, "wb") as handle:
        subprocess.run(
            ["cpio", "-o", "-H", "newc", "--quiet"], cwd=tree, input=files.encode(), stdout=handle, check=True
        )
    shutil.rmtree(tree)
    return initrd


@pytest.fixture(scope="module")
def boot():
    """The host kernel copied into a storage directory, and two initramfs images (network, poweroff)."""
    kernels = sorted(Path("/boot").glob("vmlinuz-*"))
    if not kernels or not shutil.which("busybox") or not shutil.which("cpio"):
        pytest.skip("needs /boot/vmlinuz-*, busybox-static and cpio")
    release = kernels[-1].name[len("vmlinuz-") :]
    if not (Path("/lib/modules") / release / "kernel/drivers/net/ethernet/intel/e1000/e1000.ko").exists():
        pytest.skip(f"e1000 module of {release} not found")
    with storage_directory(PREFIX) as directory:
        kernel = directory / "vmlinuz"
        shutil.copy(kernels[-1], kernel)
        yield {
            "kernel": str(kernel),
            "net": str(build_initrd(directory, "net", True, release)),
            "off": str(build_initrd(directory, "off", False, release)),
        }


@pytest.fixture(scope="module")
def network():
    remove_domains(URI, PREFIX)
    remove_networks(URI, PREFIX)
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    conn = libvirt.open(URI)
    xml = (
        f"<network><name>{NETWORK}</name><forward mode='nat'/><bridge name='{BRIDGE}' stp='off'/>"
        f"<ip address='{SUBNET}.1' netmask='255.255.255.0'><dhcp><range start='{SUBNET}.10' "
        f"end='{SUBNET}.60'/></dhcp></ip></network>"
    )
    net = conn.networkDefineXML(xml)
    net.create()
    yield conn
    remove_domains(URI, PREFIX)
    remove_networks(URI, PREFIX)
    for log in CONSOLE_DIR.glob(f"{PREFIX}*"):
        log.unlink()
    conn.close()


def guest(name: str, boot: dict, initrd: str, **extra) -> dict:
    params = {
        "uri": URI,
        "name": name,
        "type": "pv",
        "memory": 256,
        "maxmem": 256,
        "vcpus": 1,
        "maxvcpus": 2,
        "kernel": boot["kernel"],
        "ramdisk": initrd,
        "cmdline": "console=ttyS0 quiet panic=-1",
        "state": "running",
        # TCG: the KVM offered on this (nested) machine is too slow to boot a kernel
        "extra": {"domain_type": "qemu"},
        "storage_dirs": [str(Path(boot["kernel"]).parent)],
    }
    params.update(extra)
    return params


def info(name: str, **extra) -> dict:
    result = run_module("xen_domain_info", {"uri": URI, "name": name, **extra})
    assert result.get("rc", 0) == 0, result
    return result["guests"][0]


def test_lease_console_and_balloon(network, boot):
    name = PREFIX + "nat"
    started = run_module(
        "xen_domain", guest(name, boot, boot["net"], vifs=[{"nettype": "nat", "network": NETWORK, "model": "e1000"}])
    )
    assert started.get("rc", 0) == 0 and started["actions"] == ["define", "start"], started
    assert started["memory_actual"] == 256 and started["live_not_followed"] == []

    # The definition logs the serial console where the collection says, and libvirt keeps it.
    dom = network.lookupByName(name)
    root = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode())
    log_path = str(CONSOLE_DIR / f"{name}.console")
    assert root.find("devices/serial/log").get("file") == log_path
    assert root.find("devices/serial/log").get("append") == "off"

    # The address comes from the network's DHCP lease, waited for by the module itself.
    found = run_module("xen_domain_info", {"uri": URI, "name": name, "wait_for_address": 480})
    assert found.get("rc", 0) == 0, found
    assert found["guests"][0]["addresses"], found

    # Whichever source answered first (ARP can beat libvirt's lease file), the lease comes.
    def leased():
        entry = info(name)
        return [a for a in entry["interfaces"][0]["addresses"] if a["source"] == "lease"] and entry

    entry = wait_for(leased, timeout=120, step=2, what="the DHCP lease of the NAT guest")
    vif = entry["interfaces"][0]
    assert vif["network"] == NETWORK and vif["name"].startswith("vnet")
    lease = [a for a in vif["addresses"] if a["source"] == "lease"]
    assert lease[0]["address"].startswith(SUBNET + ".") and lease[0]["prefix"] == 24
    assert lease[0]["family"] == "ipv4" and lease[0]["address"] in entry["addresses"]
    leases = network.networkLookupByName(NETWORK).DHCPLeases()
    assert lease[0]["address"] in [item["ipaddr"] for item in leases]

    # The console log is on disk, written by virtlogd, and _info returns the marker /init printed.
    assert Path(log_path).is_file()
    assert MARKER in Path(log_path).read_text(errors="replace")
    seen = wait_for(
        lambda: (g := info(name))["console_log"] and any(MARKER in line for line in g["console_log"]["lines"]) and g,
        timeout=60,
        what="the marker in console_log.lines",
    )
    assert seen["console_log"]["path"] == log_path and seen["console_log"]["exists"] is True
    assert info(name, console_lines=1)["console_log"]["lines"][-1].startswith("i13info-address")

    # No balloon driver in this guest: the live change is made but not followed, and said so.
    assert seen["memory_actual"] == 256 and seen["vcpus_online"] is None
    changed = run_module("xen_domain", guest(name, boot, boot["net"], memory=192, live_wait=4))
    assert changed["actions"] == ["set_memory_live"], changed
    assert changed["memory_actual"] == 256
    assert changed["live_not_followed"] == ["memory: target 192 MiB, guest still at 256 MiB"]
    assert "did not follow it within 4s" in str(changed.get("warnings")), changed
    assert dom.memoryStats()["actual"] == 256 * 1024  # what libvirt itself reads from the balloon
    after = info(name)
    assert after["config"]["memory"] == 192 and after["memory_actual"] == 256

    # The same run again: nothing to do (the console log is in the definition already).
    again = run_module("xen_domain", guest(name, boot, boot["net"], memory=192))
    assert again["changed"] is False, again

    # xen_group: VCPUs the hypervisor hot-plugged count as live (no agent: the guest side is
    # unknown); the memory the balloon did not follow is not claimed as live.
    group = run_module(
        "xen_group", {"uri": URI, "name": "i13infogrp", "members": [name], "memory": 160, "vcpus": 2, "live_wait": 3}
    )
    member = group["results"][0]
    assert {"set_memory_live", "set_vcpus_live"} <= set(member["actions"]), group
    assert member["live"] == ["vcpus"] and member["vcpus_online"] is None and member["memory_actual"] == 256
    assert member["live_not_followed"] == ["memory: target 160 MiB, guest still at 256 MiB"]
    assert dom.info()[3] == 2


def test_arp_for_a_bridged_guest(network, boot):
    name = PREFIX + "bridged"
    started = run_module(
        "xen_domain", guest(name, boot, boot["net"], vifs=[{"nettype": "bridge", "bridge": BRIDGE, "model": "e1000"}])
    )
    assert started.get("rc", 0) == 0, started
    mac = started["after"]["vifs"][0]["mac"]

    def arp_address():
        entry = info(name)
        found = [a for vif in entry["interfaces"] for a in vif["addresses"] if a["source"] == "arp"]
        return found and (entry, found)

    entry, found = wait_for(arp_address, timeout=480, step=3, what="an ARP address of the bridged guest")
    assert entry["interfaces"][0]["bridge"] == BRIDGE and entry["interfaces"][0]["mac"] == mac
    assert found[0]["address"].startswith(SUBNET + ".")
    arp = Path("/proc/net/arp").read_text()
    assert any(line.split()[0] == found[0]["address"] and mac in line for line in arp.splitlines()[1:])
    # a bridge vif has no lease source (libvirt's lease source covers network vifs only)
    assert not [a for a in found if a["source"] == "lease"]


def test_guest_that_stops_at_start_fails_with_its_console(network, boot):
    name = PREFIX + "dies"
    result = run_module("xen_domain", guest(name, boot, boot["off"], start_wait=480))
    assert result.get("failed") and result["rc"] == 1, result
    assert f"guest {name} stopped" in result["msg"]
    assert "i13info-powering-off" in result["msg"] and MARKER in result["msg"]
    assert not network.lookupByName(name).isActive()
    # the console log stays for _info after the guest stopped
    stopped = info(name)
    assert stopped["state"] == "stopped" and stopped["memory_actual"] is None
    assert any("i13info-powering-off" in line for line in stopped["console_log"]["lines"])
    assert stopped["interfaces"] == []


def test_existing_guest_gets_the_console_log_once(network, boot):
    name = PREFIX + "old"
    first = run_module("xen_domain", guest(name, boot, boot["net"], state="present"))
    assert first["actions"] == ["define"], first
    # as a version before the console log defined it: no serial, the collection's marker kept
    dom = network.lookupByName(name)
    root = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode())
    # (libvirt copies serial 0, with its log, into the console element: drop both)
    for element in root.findall("devices/serial") + root.findall("devices/console/log"):
        element.getparent().remove(element)
    network.defineXML(etree.tostring(root, encoding="unicode"))
    assert info(name)["console_log"] is None
    check = run_module("xen_domain", guest(name, boot, boot["net"], state="present"), check=True)
    assert check["actions"] == ["redefine"], check
    redefined = run_module("xen_domain", guest(name, boot, boot["net"], state="present"))
    assert redefined["actions"] == ["redefine"] and redefined["pending_restart_fields"] == []
    root = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode())
    assert root.find("devices/serial/log").get("file") == str(CONSOLE_DIR / f"{name}.console")
    assert run_module("xen_domain", guest(name, boot, boot["net"], state="present"))["changed"] is False
