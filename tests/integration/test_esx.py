"""xen_esx_guest against VMware's ESX simulator (govmomi's vcsim), for real: the simulator is
built from tests/fixtures/vcsim/main.go with Debian's Go toolchain and govmomi sources, started
on loopback, and every result is read back through the vSphere API (pyvmomi) and from the
simulated datastore's files. Each case runs check, apply, check, apply: the checks predict the
runs and the second pair changes nothing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import ROOT, four_steps, run_module, run_playbook

pyvmomi = pytest.importorskip("pyVmomi")
from pyVim.connect import Disconnect, SmartConnect  # noqa: E402 - after the importorskip

pytestmark = pytest.mark.integration

vim = pyvmomi.vim
SOURCE = ROOT / "tests" / "fixtures" / "vcsim" / "main.go"
GOPATH = "/usr/share/gocode"  # Debian's golang-github-vmware-govmomi-dev


def build_simulator() -> Path:
    """The simulator binary, built once per version of its source (cached)."""
    if shutil.which("go") is None or not Path(GOPATH, "src/github.com/vmware/govmomi/simulator").is_dir():
        pytest.fail("building vcsim needs Debian's golang-go and golang-github-vmware-govmomi-dev (bootstrap.sh)")
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lcfg-xen" / "vcsim"
    binary = cache / f"vcsim-{digest}"
    if not binary.exists():
        cache.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, GO111MODULE="off", GOPATH=GOPATH, GOCACHE=str(cache / "go-build"), GOFLAGS="")
        partial = binary.with_suffix(".partial")
        subprocess.run(["go", "build", "-o", str(partial), str(SOURCE)], check=True, env=env, timeout=900)
        partial.rename(binary)
    return binary


@pytest.fixture(scope="module")
def esx():
    """Connection options of a running simulator, and a pyvmomi view of it."""
    proc = subprocess.Popen([str(build_simulator()), "-l", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()  # http://user:pass@127.0.0.1:PORT/sdk
        assert url.startswith("http://"), url
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        options = {"hostname": "127.0.0.1", "port": port, "username": "user", "password": "pass", "protocol": "http"}
        service = SmartConnect(host="127.0.0.1", port=port, user="user", pwd="pass", protocol="http")
        content = service.RetrieveContent()
        # a second VM network, as an ESX admin adds one (the simulator starts with "VM Network")
        host_of(content).configManager.networkSystem.AddPortGroup(
            portgrp=vim.host.PortGroup.Specification(
                name="lcfg-vlan2", vlanId=2, vswitchName="vSwitch0", policy=vim.host.NetworkPolicy()
            )
        )
        yield options, content
        Disconnect(service)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def vms(content) -> dict:
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    try:
        return {vm.name: vm for vm in view.view}
    finally:
        view.Destroy()


def host_of(content):
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
    try:
        return view.view[0]
    finally:
        view.Destroy()


def devices(vm, kind) -> list:
    return [d for d in vm.config.hardware.device if isinstance(d, kind)]


def autostart_of(content, vm) -> str | None:
    config = host_of(content).configManager.autoStartManager.config
    return next((i.startAction for i in config.powerInfo or [] if i.key == vm), None)


def datastore_dir(vm) -> Path:
    """The simulated datastore's directory of ``vm`` on this machine (vcsim keeps real files)."""
    datastore = vm.datastore[0]
    folder = vm.config.files.vmPathName.split("] ", 1)[1].rsplit("/", 1)[0]
    return Path(datastore.info.url) / folder


def guest(options: dict, **params) -> dict:
    base = {
        "name": "lcfgtest-esx-web",
        "memory": 256,
        "vcpus": 1,
        "disks": [{"path": "/guests/web.img", "size_gb": 2}],
        "vifs": [{"bridge": "xenbr0", "mac": "00:50:56:00:10:01"}],
        "port_groups": {"xenbr0": "VM Network"},
        "autostart": True,
        "state": "running",
    }
    base.update(options)
    base.update(params)
    return base


def test_vm_is_created_reconfigured_stopped_and_removed(esx):
    options, content = esx
    first = four_steps("xen_esx_guest", guest(options), uri=None)
    assert first["actions"] == ["create", "power_on", "set_autostart"]
    vm = vms(content)["lcfgtest-esx-web"]
    assert (vm.config.hardware.memoryMB, vm.config.hardware.numCPU) == (256, 1)
    assert [d.capacityInKB for d in devices(vm, vim.vm.device.VirtualDisk)] == [2 * 1024 * 1024]
    (nic,) = devices(vm, vim.vm.device.VirtualEthernetCard)
    assert (nic.backing.deviceName, nic.macAddress) == ("VM Network", "00:50:56:00:10:01")
    assert vm.runtime.powerState == "poweredOn" and autostart_of(content, vm) == "powerOn"
    assert first["vm"]["memory"] == 256 and first["vm"]["state"] == "running"

    # more memory and VCPUs live, a bigger disk and a second one, a NIC on another port group
    grown = guest(
        options,
        memory=512,
        vcpus=2,
        disks=[{"path": "/guests/web.img", "size_gb": 3}, {"path": "/guests/data.img", "size_gb": 1}],
        vifs=[{"bridge": "xenbr0", "mac": "00:50:56:00:10:01"}, {"bridge": "xenbr1"}],
        port_groups={"xenbr0": "VM Network", "xenbr1": "lcfg-vlan2"},
    )
    changed = four_steps("xen_esx_guest", grown, uri=None)
    assert set(changed["actions"]) == {"set_memory", "set_vcpus", "set_grow_disks", "set_add_disks", "set_nics"}
    vm = vms(content)["lcfgtest-esx-web"]
    assert (vm.config.hardware.memoryMB, vm.config.hardware.numCPU) == (512, 2)
    assert [d.capacityInKB for d in devices(vm, vim.vm.device.VirtualDisk)] == [3 * 1024 * 1024, 1024 * 1024]
    assert [n.backing.deviceName for n in devices(vm, vim.vm.device.VirtualEthernetCard)] == [
        "VM Network",
        "lcfg-vlan2",
    ]
    assert vm.runtime.powerState == "poweredOn"

    # a decrease on a running VM is reported, not made
    smaller = run_module("xen_esx_guest", dict(grown, memory=256))
    assert smaller["rc"] == 0 and smaller["changed"] is False and smaller["not_applied"] == ["memory"]
    assert vms(content)["lcfgtest-esx-web"].config.hardware.memoryMB == 512

    stopped = four_steps("xen_esx_guest", dict(grown, memory=256, state="stopped", force_stop=True), uri=None)
    assert stopped["actions"] == ["power_off", "set_memory"]
    vm = vms(content)["lcfgtest-esx-web"]
    assert vm.runtime.powerState == "poweredOff" and vm.config.hardware.memoryMB == 256

    files = datastore_dir(vm)
    kept = sorted(p.name for p in files.glob("*.vmdk"))
    assert kept, files
    removed = four_steps("xen_esx_guest", dict(grown, state="absent"), uri=None)
    assert removed["actions"] == ["remove"]
    assert "lcfgtest-esx-web" not in vms(content)
    assert sorted(p.name for p in files.glob("*.vmdk")) == kept  # unregistered: the disks stay


def test_remove_disks_deletes_the_vm_files(esx):
    options, content = esx
    params = guest(options, name="lcfgtest-esx-tmp", vifs=[], autostart=False, state="stopped")
    four_steps("xen_esx_guest", params, uri=None)
    files = datastore_dir(vms(content)["lcfgtest-esx-tmp"])
    assert list(files.glob("*.vmdk"))
    result = run_module("xen_esx_guest", dict(params, state="absent", remove_disks=True))
    assert result["rc"] == 0 and result["actions"] == ["remove"]
    assert "lcfgtest-esx-tmp" not in vms(content) and not list(files.glob("*.vmdk"))


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"vifs": [{"bridge": "xenbr7"}]}, "vifs[0].bridge: port group 'xenbr7' does not exist"),
        ({"memory": 1024 * 1024}, "memory: 1048576 MiB is more than the ESX host has"),
        ({"vifs": [{"nettype": "nat"}]}, "vifs[0].nettype: ESX has no libvirt nat network"),
        ({"name": "ha-host_VM0"}, "lcfg.xen did not create it; set adopt"),
    ],
)
def test_bad_input_changes_nothing(esx, params, words):
    options, content = esx
    before = {name: (vm.config.hardware.memoryMB, vm.runtime.powerState) for name, vm in vms(content).items()}
    result = run_module("xen_esx_guest", guest(options, **dict({"name": "lcfgtest-esx-bad"}, **params)))
    assert result["rc"] != 0 and words in result["msg"], result.get("msg")
    after = {name: (vm.config.hardware.memoryMB, vm.runtime.powerState) for name, vm in vms(content).items()}
    assert after == before


def test_playbook_makes_the_guests_an_esx_profile_describes(esx, tmp_path):
    """playbooks/esx.yml over an LCFG profile (tests/fixtures/esx/esx-demo) and a hosts file
    saying where its ESX host is: check run, real run, then a run that changes nothing."""
    options, content = esx
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "esx.lcfg.yml").write_text(
        "plugin: lcfg.xen.lcfg\n"
        f"sources:\n  - {ROOT / 'tests' / 'fixtures' / 'esx' / 'esx-demo'}\n"
        "strict_profiles: true\n"
    )
    host = {
        "esx_hostname": options["hostname"],
        "esx_port": options["port"],
        "esx_protocol": options["protocol"],
        "esx_username": options["username"],
        "esx_password": options["password"],
        "esx_port_groups": {"xenbr0": "VM Network"},
        "ansible_python_interpreter": sys.executable,
    }
    # read after the profiles (a directory's files are read in name order): a profile's host
    # joins no host another source made first, but a later source may put it in a group
    (inventory / "hosts.yml").write_text(json.dumps({"esx_hypervisors": {"hosts": {"esx-demo": host}}}))
    playbook = ROOT / "playbooks" / "esx.yml"
    check = run_playbook(playbook, "--check", inventory=inventory)
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-2000:]
    assert "changed=1" in check.stdout and not {"lcfgtest-esxpb-web", "lcfgtest-esxpb-db"} & set(vms(content))
    for expected in ("changed=1", "changed=0"):
        run = run_playbook(playbook, inventory=inventory)
        assert run.returncode == 0 and expected in run.stdout, run.stdout[-3000:] + run.stderr[-2000:]
    made = vms(content)
    web, db = made["lcfgtest-esxpb-web"], made["lcfgtest-esxpb-db"]
    assert (web.config.hardware.memoryMB, web.config.hardware.numCPU, web.runtime.powerState) == (256, 2, "poweredOn")
    assert [n.macAddress for n in devices(web, vim.vm.device.VirtualEthernetCard)] == ["00:50:56:00:20:01"]
    assert autostart_of(content, web) == "powerOn" and autostart_of(content, db) in (None, "none")
    assert (db.config.hardware.memoryMB, db.runtime.powerState) == (128, "poweredOff")
    assert [d.capacityInKB // 1024**2 for d in devices(db, vim.vm.device.VirtualDisk)] == [1, 3]
