"""Containers (type container) on libvirt's LXC driver (lxc:///system), for real: defined and
started by xen_domain with check runs that predict the real ones, limits changed live and read
back from the container's cgroup, its addresses on a bridge and a NAT network read from inside
it (``ip -j`` in its network namespace), bad input refused with nothing changed.

The root filesystem is built by scripts/container-template.sh (busybox, mkfs.ext4 -d).
Containers are named ``lcfgtest-ct-*`` and removed by the fixtures.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from support import ROOT, four_steps, libvirt_domains, remove_domains, run_module, storage_directory, wait_for

libvirt = pytest.importorskip("libvirt")

pytestmark = pytest.mark.integration

URI = "lxc:///system"
PREFIX = "lcfgtest-ct-"
NAT = "lcfgtest-ctnat"
BRIDGE = "lcfgtest-ctbr"


def lxc_available() -> bool:
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    try:
        libvirt.open(URI).close()
    except libvirt.libvirtError:
        return False
    return True


@pytest.fixture(scope="module")
def rootfs():
    if not lxc_available():
        pytest.fail("libvirt's LXC driver does not answer on lxc:///system: scripts/bootstrap.sh installs it")
    remove_domains(URI, PREFIX)  # left by an interrupted run
    with storage_directory("lcfgtest-ct-") as directory:
        template = directory / "template.img"
        subprocess.run(["bash", str(ROOT / "scripts/container-template.sh"), str(template), "32"], check=True)
        yield directory, template
        remove_domains(URI, PREFIX)


@pytest.fixture(scope="module")
def networks():
    """A NAT network with a reserved address and a plain bridge, made by xen_bridge."""
    params = {
        "uri": "qemu:///system",
        "networks": [
            {
                "name": NAT,
                "mode": "nat",
                "bridge": "lcfgtestctn0",
                "address": "10.78.0.1/24",
                "dhcp_hosts": [{"mac": "52:54:00:78:00:05", "ip": "10.78.0.5", "name": f"{PREFIX}net"}],
            },
            {"name": BRIDGE},
        ],
    }
    result = run_module("xen_bridge", params)
    assert result["rc"] == 0, result.get("msg")
    yield
    run_module("xen_bridge", dict(params, networks=[dict(n, state="absent") for n in params["networks"]]))


def clone(directory: Path, template: Path, name: str) -> str:
    path = directory / f"{name}.img"
    shutil.copyfile(template, path)
    return str(path)


def cgroup_value(name: str, controller: str, knob: str) -> int:
    found = list(Path("/sys/fs/cgroup", controller, "machine").glob(f"lxc-*-{name}.libvirt-lxc/{knob}"))
    assert len(found) == 1, found
    return int(found[0].read_text().split()[0])


def init_pid(name: str) -> int:
    conn = libvirt.open(URI)
    try:
        controller = conn.lookupByName(name).ID()
    finally:
        conn.close()
    children = Path(f"/proc/{controller}/task/{controller}/children").read_text().split()
    assert children, f"container {name} has no init"
    return int(children[0])


def addresses_inside(name: str) -> dict:
    """{interface: [address/prefix]} as the container's own network namespace has them."""
    out = subprocess.run(
        ["nsenter", "-t", str(init_pid(name)), "-n", "ip", "-j", "addr", "show"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {
        link["ifname"]: [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", []) if a["family"] == "inet"]
        for link in json.loads(out)
    }


def test_container_is_defined_started_and_limited(rootfs):
    directory, template = rootfs
    name = PREFIX + "one"
    params = {
        "name": name,
        "type": "container",
        "memory": 64,
        "maxmem": 256,
        "vcpus": 1,
        "maxvcpus": 2,
        "disks": [{"path": clone(directory, template, name)}],
        "state": "running",
        "autostart": True,
        "allow_containers": True,
    }
    first = four_steps("xen_domain", params, URI)
    assert first["actions"][:1] == ["define"] and "start" in first["actions"]
    assert cgroup_value(name, "memory", "memory.limit_in_bytes") == 64 * 1024**2
    assert cgroup_value(name, "cpu", "cpu.cfs_quota_us") == 100000
    assert first["memory_actual"] == 64 and first["vcpus_online"] == 1
    # no vif, yet a network namespace of its own (not the host's)
    assert os.readlink(f"/proc/{init_pid(name)}/ns/net") != os.readlink("/proc/self/ns/net")
    xml = libvirt_domains(URI)[name]
    assert '<type arch="x86_64">exe</type>' in xml.replace("'", '"')
    conn = libvirt.open(URI)
    try:
        assert conn.lookupByName(name).autostart() == 1
    finally:
        conn.close()

    changed = four_steps("xen_domain", dict(params, memory=128, vcpus=2), URI)
    assert {"set_memory_live", "set_vcpus_live"} <= set(changed["actions"])
    assert changed["pending_restart_fields"] == [] and changed["live_not_followed"] == []
    assert cgroup_value(name, "memory", "memory.limit_in_bytes") == 128 * 1024**2
    assert cgroup_value(name, "cpu", "cpu.cfs_quota_us") == 200000
    assert (changed["memory_actual"], changed["vcpus_online"]) == (128, 2)

    # a VM never opens a container's image (nor the other way round)
    vm = run_module(
        "xen_domain",
        {"uri": "qemu:///system", "name": PREFIX + "vm", "memory": 32, "disks": params["disks"]},
        check=True,
    )
    assert vm["rc"] != 0 and "already used by" in vm["msg"] and name in vm["msg"], vm.get("msg")

    # stopped without force (its init is sent SIGTERM); the saved limits survive a restart
    stopped = run_module("xen_domain", dict(params, memory=128, vcpus=2, state="stopped", shutdown_timeout=30, uri=URI))
    assert stopped["rc"] == 0 and stopped["actions"] == ["stop"], stopped.get("msg")
    started = run_module("xen_domain", dict(params, memory=128, vcpus=2, uri=URI))
    assert started["rc"] == 0 and "start" in started["actions"]
    assert cgroup_value(name, "memory", "memory.limit_in_bytes") == 128 * 1024**2
    assert cgroup_value(name, "cpu", "cpu.cfs_quota_us") == 200000


def test_container_addresses_on_nat_and_bridge(rootfs, networks):
    directory, template = rootfs
    name = PREFIX + "net"
    params = {
        "name": name,
        "memory": 32,
        "disks": [{"path": clone(directory, template, name)}],
        "vifs": [
            {"nettype": "nat", "network": NAT, "mac": "52:54:00:78:00:05", "ip": "10.78.0.5"},
            {"bridge": BRIDGE, "ip": "192.0.2.77"},
        ],
        "state": "running",
        "allow_containers": True,
    }
    four_steps("xen_domain", params, URI)
    inside = wait_for(lambda: addresses_inside(name), what="the container's addresses")
    assert inside["eth0"] == ["10.78.0.5/24"] and inside["eth1"] == ["192.0.2.77/24"]
    routes = subprocess.run(
        ["nsenter", "-t", str(init_pid(name)), "-n", "ip", "-j", "route", "show", "default"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert json.loads(routes)[0]["gateway"] == "10.78.0.1"


@pytest.mark.parametrize(
    ("params", "parameter", "words"),
    [
        ({"allow_containers": False}, "type", "only the play can allow containers"),
        ({"type": "hvm"}, "type", "LXC connection runs containers"),
        ({"memory": 512, "maxmem": 256}, "maxmem", "exceeds"),
        ({"vifs": [{"nettype": "nat", "network": "lcfgtest-no-such-net"}]}, "vifs[0].network", "does not exist"),
        ({"kernel": "KERNEL"}, "kernel", "boots nothing"),
    ],
)
def test_bad_container_input_changes_nothing(rootfs, params, parameter, words):
    directory, template = rootfs
    name = PREFIX + "bad"
    before = libvirt_domains(URI)
    full = {
        "name": name,
        "memory": 32,
        "disks": [{"path": str(directory / "bad.img")}],
        "state": "running",
        "allow_containers": True,
    }
    full.update(params)
    if full.get("kernel") == "KERNEL":  # inside the storage directories: the container rule answers
        full["kernel"] = str(directory / "vmlinuz")
    result = run_module("xen_domain", dict(full, uri=URI))
    assert result["rc"] != 0 and words in result["msg"], result.get("msg")
    if parameter:
        assert parameter in result["msg"]
    assert libvirt_domains(URI) == before
