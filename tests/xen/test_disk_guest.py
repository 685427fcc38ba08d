"""A file-backed guest on real Xen: cloned from an LCFG template, booted with its disk on
dom0's QEMU disk backend (qdisk), its console log and address read back, and what libvirt's
libxl driver offers for snapshots and the address sources, recorded.

The template and its clone with the LCFG settings (profile URL, host name) are made by
``xen_disk`` on the test machine, where libguestfs runs (the lab's dom0 has no libguestfs
appliance, and one under Xen under TCG would take many minutes). The clone goes into dom0's
``/var/lib/xen/images``; there ``xen_disk`` makes a qcow2 overlay of it (qemu-img in dom0)
and ``xen_domain`` boots a PV guest from that overlay with the lab's kernel and busybox
initramfs, whose ``/init`` mounts ``/dev/xvda5`` and prints the LCFG files on the console
(``lcfglab.disk=`` on the kernel command line, see tests/xen/lab/build.sh). Everything is
read back in dom0: virsh, xenstore, xenconsoled's log file, dom0's neighbour table.

Parts that belong to modules of other branches (``xen_domain_info``'s ``console_log`` and
``interfaces``, ``xen_snapshot``) are checked when the module has them and skipped, saying so,
when it has not.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from xenlab import GUEST_BOOT_ACCESS, GUEST_CMDLINE, GUEST_KERNEL, GUEST_RAMDISK, URI

from support import run_module, storage_directory, wait_for

pytestmark = pytest.mark.xen

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "tests" / "output"
NAME = "i13xen-disk"
IMAGES = "/var/lib/xen/images"
BASE = f"{IMAGES}/i13xen-base.img"  # the clone made on the test machine, copied in
OVERLAY = f"{IMAGES}/{NAME}.qcow2"  # made in dom0 by xen_disk, backed by BASE
PROFILE_URL = "http://lcfg.example.org/profiles/i13xen-disk/XML/profile.xml"
BRIDGE = "i13xenbr0"
DOM0_ADDRESS = "10.213.13.1"
GUEST_ADDRESS = "10.213.13.10"
MAC = "00:16:3e:13:0e:01"
CONSOLE = f"/var/log/xen/console/guest-{NAME}.log"
BOOT_TIMEOUT = 900  # seconds of wall time for the guest's kernel to reach /init under TCG
METADATA_NS = "urn:lcfg:xen:guest:1"


def guest_params(**extra) -> dict:
    params = {
        "uri": URI,
        "name": NAME,
        "type": "pv",
        "memory": 128,
        "vcpus": 1,
        "kernel": GUEST_KERNEL,
        "ramdisk": GUEST_RAMDISK,
        "cmdline": f"{GUEST_CMDLINE} lcfglab.disk=/dev/xvda5 lcfglab.ip={GUEST_ADDRESS}/24 lcfglab.peer={DOM0_ADDRESS}",
        "disks": [{"path": OVERLAY, "format": "qcow2", "device": "xvda"}],
        "vifs": [{"mac": MAC, "nettype": "bridge", "bridge": BRIDGE, "script": "vif-bridge"}],
        "autostart": False,
        "state": "running",
        **GUEST_BOOT_ACCESS,
    }
    params.update(extra)
    return params


def module_documents(module: str, option: str | None = None) -> bool:
    """Whether this checkout has ``plugins/modules/<module>.py`` (with ``option``, if named)."""
    path = ROOT / "plugins" / "modules" / f"{module}.py"
    if not path.exists():
        return False
    return option is None or f"\n  {option}:\n" in path.read_text()


# A probe run by dom0's python3: what libvirt's libxl driver answers, error or value.
PROBE = r"""
import json, sys, libvirt
name, ns = sys.argv[1], sys.argv[2]
conn = libvirt.open("xen:///system")
dom = conn.lookupByName(name)
out = {"libvirt": conn.getLibVersion(), "driver": conn.getType()}
def call(key, fn):
    try:
        out[key] = {"ok": True, "value": fn()}
    except libvirt.libvirtError as err:
        out[key] = {"ok": False, "code": err.get_error_code(), "error": str(err)}
for source in ("LEASE", "AGENT", "ARP"):
    flag = getattr(libvirt, "VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_" + source)
    call("addresses_" + source.lower(), lambda: dom.interfaceAddresses(flag))
call("snapshot_create", lambda: dom.snapshotCreateXML(
    "<domainsnapshot><name>i13xen-snap</name></domainsnapshot>", 0).getName())
call("snapshot_create_disk_only", lambda: dom.snapshotCreateXML(
    "<domainsnapshot><name>i13xen-snap-disk</name></domainsnapshot>",
    libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY).getName())
call("snapshot_list", lambda: dom.snapshotListNames())
call("snapshot_current", lambda: dom.hasCurrentSnapshot())
call("metadata", lambda: dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, ns, 0))
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def lcfg_clone():
    """An LCFG template and a clone with the guest's profile URL and host name (xen_disk on
    the test machine), as the guest role makes them."""
    with storage_directory("i13xen-") as directory:
        started = time.monotonic()
        template = directory / "i13xen-template.img"
        clone = directory / "i13xen-base.img"
        built = run_module("xen_disk", {"path": str(template), "state": "template", "size_gb": 0.25})
        assert built["rc"] == 0 and built["changed"], built
        cloned = run_module(
            "xen_disk",
            {
                "path": str(clone),
                "template": str(template),
                "clone": "copy",
                "profile_url": PROFILE_URL,
                "partition": 5,
                "hostname": NAME,
            },
        )
        assert cloned["rc"] == 0 and cloned["changed"], cloned
        yield {"path": clone, "seconds": time.monotonic() - started}


@pytest.fixture(scope="module")
def disk_guest(xen_lab, lcfg_clone):
    """The running file-backed guest, its console showing the mounted disk."""
    timings: dict[str, float] = {"template + clone with injection (test machine)": lcfg_clone["seconds"]}
    started = time.monotonic()
    # Sparse copy into dom0.
    tar = subprocess.Popen(
        ["tar", "-C", str(lcfg_clone["path"].parent), "-cSf", "-", lcfg_clone["path"].name], stdout=subprocess.PIPE
    )
    subprocess.run(
        [
            "ssh",
            *xen_lab.lab.ssh_options(),
            "root@127.0.0.1",
            f"mkdir -p {IMAGES} && tar -C {IMAGES} -xSf - && chmod 0600 {BASE}",
        ],
        stdin=tar.stdout,
        check=True,
        timeout=900,
    )
    assert tar.wait() == 0
    xen_lab.ssh(
        f"ip link add {BRIDGE} type bridge && ip addr add {DOM0_ADDRESS}/24 dev {BRIDGE} && ip link set {BRIDGE} up"
    )
    timings["copy into dom0 + bridge"] = time.monotonic() - started
    started = time.monotonic()
    try:
        run = xen_lab.play(
            [
                {
                    "name": "overlay",
                    "lcfg.xen.xen_disk": {
                        "path": OVERLAY,
                        "template": BASE,
                        "template_format": "raw",
                        "clone": "overlay",
                    },
                },
                {"name": "guest", "lcfg.xen.xen_domain": guest_params()},
            ]
        )
        assert run.rc == 0, run.output
        timings["xen_disk overlay + xen_domain (one play)"] = time.monotonic() - started
        started = time.monotonic()
        console = wait_for(
            lambda: (c := xen_lab.ssh(f"cat {CONSOLE}", check=False).stdout) and "profile_url=" in c and c,
            BOOT_TIMEOUT,
            f"the guest's /init printing its disk's LCFG files in {CONSOLE}",
            step=10,
        )
        timings["guest start to disk mounted on its console"] = time.monotonic() - started
        yield {"run": run, "console": console, "timings": timings}
    finally:
        xen_lab.destroy(NAME)
        xen_lab.ssh(f"rm -f {OVERLAY} {BASE}; ip link del {BRIDGE}", check=False)
        OUTPUT.mkdir(parents=True, exist_ok=True)
        (OUTPUT / "xen-lab-disk-guest-timings.json").write_text(json.dumps(timings, indent=1) + "\n")


@pytest.fixture(scope="module")
def libxl_probe(xen_lab, disk_guest):
    """What libvirt's libxl driver answers for the running guest (recorded in tests/output)."""
    wait_for(
        lambda: GUEST_ADDRESS in xen_lab.ssh(f"ip neigh show dev {BRIDGE}", check=False).stdout,
        300,
        "the guest's address in dom0's neighbour table",
        step=5,
    )
    proc = xen_lab.lab.ssh(["python3", "-", NAME, METADATA_NS], input=PROBE)
    answers = json.loads(proc.stdout)
    (OUTPUT / "xen-lab-libxl-answers.json").write_text(json.dumps(answers, indent=1) + "\n")
    return answers


def domain_info(xen_lab) -> dict:
    run = xen_lab.play([{"name": "info", "lcfg.xen.xen_domain_info": {"uri": URI, "name": NAME}}])
    assert run.rc == 0, run.output
    (guest,) = [g for g in run["info"]["guests"] if g["name"] == NAME]
    return guest


def test_role_packages_are_in_the_lab(xen_lab):
    """The lab's dom0 holds every package the hypervisor role installs on a Xen host, among
    them dom0's QEMU disk backend, and libxl finds that backend."""
    import yaml

    defaults = yaml.safe_load((ROOT / "roles/hypervisor/defaults/main.yml").read_text())
    wanted = defaults["hypervisor_packages_xen"]
    assert "qemu-system-xen" in wanted
    proc = xen_lab.ssh(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\\n", *wanted], check=False)
    installed = {line.split()[0] for line in proc.stdout.splitlines() if line.endswith(" installed")}
    assert set(wanted) <= installed, f"missing in the lab: {sorted(set(wanted) - installed)}"
    xen_lab.ssh("test -x /usr/libexec/xen-qemu-system-i386")


def test_file_backed_guest_boots_with_lcfg_disk(xen_lab, disk_guest):
    run = disk_guest["run"]
    assert run["overlay"]["changed"] is True
    assert run["guest"]["changed"] is True
    assert "start" in run["guest"]["actions"]

    # libvirt's definition: a qcow2 file on the qemu driver (libxl's qdisk backend).
    xml = xen_lab.ssh(f"virsh -c {URI} dumpxml {NAME}").stdout
    assert "<driver name='qemu' type='qcow2'/>" in xml, xml
    assert f"<source file='{OVERLAY}'/>" in xml, xml
    # The overlay made in dom0 is backed by the copied clone.
    info = json.loads(xen_lab.ssh(["qemu-img", "info", "--output=json", "-U", OVERLAY]).stdout)
    assert info["format"] == "qcow2"
    assert info["backing-filename"] == BASE
    # Xen: the disk is served by dom0's QEMU (qdisk backend), and that QEMU runs for the guest.
    domid = xen_lab.ssh(["xl", "domid", NAME]).stdout.strip()
    backend = xen_lab.ssh(f"xenstore-ls /local/domain/0/backend/qdisk/{domid}", check=False)
    assert backend.returncode == 0 and OVERLAY in backend.stdout, backend.stdout + backend.stderr
    assert f"-xen-domid {domid}" in xen_lab.ssh("ps -eo args").stdout

    # The guest's own console: its /init mounted the disk and read the LCFG files.
    console = disk_guest["console"]
    assert "lcfg-xen-lab disk: mounted /dev/xvda5 /mnt ext4 ro" in console, console
    assert f"lcfg-xen-lab disk: profile_url={PROFILE_URL}" in console
    assert f"lcfg-xen-lab disk: hostname={NAME}" in console


def test_console_log_read_back(xen_lab, disk_guest):
    """xenconsoled's per-guest log (the lab runs it with --log=guest) holds the guest's kernel
    and /init output."""
    stat = xen_lab.ssh(["stat", "-c", "%U %s", CONSOLE]).stdout.split()
    assert stat[0] == "root" and int(stat[1]) > 0
    assert xen_lab.ssh(["grep", "-a", "-c", "-E", r"^(\[[ 0-9.]+\] )?Linux version", CONSOLE]).stdout.strip() == "1"
    lines = xen_lab.ssh(["grep", "-a", "lcfg-xen-lab disk:", CONSOLE]).stdout.splitlines()
    assert f"lcfg-xen-lab disk: profile_url={PROFILE_URL}" in [line.strip() for line in lines], lines


def test_console_log_in_domain_info(xen_lab, disk_guest):
    """xen_domain_info's ``console_log`` (helper `info`) returns that file and its last lines."""
    if "console_log:" not in (ROOT / "plugins/modules/xen_domain_info.py").read_text():
        pytest.skip("xen_domain_info has no console_log field in this branch (helper `info` adds it)")
    guest = domain_info(xen_lab)
    log = guest["console_log"]
    assert log is not None, guest
    assert log["path"] == CONSOLE
    # The last lines of the file: each one is in the file as dom0 reads it afterwards.
    assert log["lines"], log
    text = xen_lab.ssh(["cat", CONSOLE]).stdout
    assert all(line.strip() in text for line in log["lines"]), log["lines"]


def test_address_discovery(xen_lab, disk_guest, libxl_probe):
    """The guest's address: dom0's neighbour table has it (what an ARP source reads); what
    libvirt's libxl driver answers for the lease, agent and ARP sources is checked (and
    recorded in tests/output/xen-lab-libxl-answers.json)."""
    neigh = xen_lab.ssh(f"ip neigh show dev {BRIDGE}").stdout
    assert any(line.split()[0] == GUEST_ADDRESS and MAC in line for line in neigh.splitlines()), neigh
    # The guest's vif is on the bridge with the configured MAC (libvirt's view).
    iflist = xen_lab.ssh(f"virsh -c {URI} domiflist {NAME}").stdout
    assert MAC in iflist and BRIDGE in iflist, iflist
    # The libxl driver: lease answers (empty: no libvirt network), agent and ARP are not
    # implemented in libvirt's libxl driver ("argument unsupported: Unsupported IP address
    # data source"). A change in that shows up here.
    for source in ("agent", "arp"):
        answer = libxl_probe[f"addresses_{source}"]
        if answer["ok"]:
            found = [a["addr"] for iface in answer["value"].values() for a in (iface.get("addrs") or [])]
            assert GUEST_ADDRESS in found, answer
        else:
            assert "not supported" in answer["error"] or "unsupported" in answer["error"], answer


def test_address_in_domain_info(xen_lab, disk_guest, libxl_probe):
    """xen_domain_info's ``interfaces`` (helper `info`) reports the guest's address on Xen."""
    if "interfaces:" not in (ROOT / "plugins/modules/xen_domain_info.py").read_text():
        pytest.skip("xen_domain_info has no interfaces field in this branch (helper `info` adds it)")
    guest = domain_info(xen_lab)
    (iface,) = [i for i in guest["interfaces"] if i["mac"] == MAC]
    addresses = {a["address"] for a in iface["addresses"]}
    assert GUEST_ADDRESS in addresses, guest["interfaces"]


def test_snapshots_refused_by_libxl(xen_lab, disk_guest, libxl_probe):
    """libvirt's libxl driver has no snapshot API, even for a qcow2 disk: create (full and
    disk-only) and list fail with "not supported"."""
    for key in ("snapshot_create", "snapshot_create_disk_only", "snapshot_list"):
        answer = libxl_probe[key]
        assert not answer["ok"], (key, answer)
        assert answer["code"] == 3, (key, answer)  # VIR_ERR_NO_SUPPORT
        assert "not supported" in answer["error"], (key, answer)
    # Nothing was made behind libvirt's back: the overlay has no internal snapshot.
    info = json.loads(xen_lab.ssh(["qemu-img", "info", "--output=json", "-U", OVERLAY]).stdout)
    assert not info.get("snapshots"), info


def test_snapshot_module_refuses_on_xen(xen_lab, disk_guest):
    """xen_snapshot (helper `snap`) fails on Xen, naming the guest and why."""
    if not module_documents("xen_snapshot"):
        pytest.skip("no xen_snapshot module in this branch (helper `snap` adds it)")
    from ansible.utils.plugin_docs import read_docstring  # noqa: PLC0415

    options = read_docstring(str(ROOT / "plugins/modules/xen_snapshot.py"))["doc"]["options"]
    params = {"uri": URI, "state": "present"}
    domain_key = "domain" if "domain" in options else "name"
    params[domain_key] = NAME
    snapshot_key = next((k for k in ("snapshot", "snapshot_name", "name") if k in options and k != domain_key), None)
    if snapshot_key:
        params[snapshot_key] = "i13xen-snap"
    result = xen_lab.module("xen_snapshot", params)
    assert result.get("failed") is True, result
    assert NAME in result["msg"], result
    assert any(word in result["msg"].lower() for word in ("not support", "xen", "libxl")), result
    assert xen_lab.ssh(f"virsh -c {URI} snapshot-list {NAME}", check=False).returncode != 0


HAND = "i13xen-hand"
STALE = "i13xen-stale"
HAND_XML = f"""<domain type='xen'>
  <name>{HAND}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='xenpv'>linux</type>
    <kernel>{GUEST_KERNEL}</kernel>
    <initrd>{GUEST_RAMDISK}</initrd>
    <cmdline>{GUEST_CMDLINE}</cmdline>
  </os>
</domain>
"""


def domain_names(xen_lab) -> list[str]:
    return xen_lab.ssh(f"virsh -c {URI} list --all --name").stdout.split()


@pytest.fixture
def hand_made(xen_lab):
    """A guest defined by hand (no lcfg.xen marker), left stopped."""
    xen_lab.lab.ssh(f"cat > /tmp/{HAND}.xml && virsh -c {URI} define /tmp/{HAND}.xml", input=HAND_XML)
    yield HAND
    xen_lab.destroy(HAND)
    xen_lab.destroy(STALE)


def test_prune_calls_on_libxl(xen_lab, disk_guest, libxl_probe, hand_made):
    """What pruning needs from libvirt's libxl driver, through plain libvirt: the lcfg.xen
    marker survives in the definition (only marked guests are candidates), a graceful shutdown
    reaches the guest, undefine removes the definition and keeps the disk. Runs last in this
    file: it removes the disk guest."""
    marker = libxl_probe["metadata"]
    assert marker["ok"], marker
    assert "guest" in marker["value"] and "xvda" in marker["value"], marker
    hand_xml = xen_lab.ssh(f"virsh -c {URI} dumpxml --inactive {HAND}").stdout
    assert METADATA_NS not in hand_xml
    assert METADATA_NS in xen_lab.ssh(f"virsh -c {URI} dumpxml --inactive {NAME}").stdout

    started = time.monotonic()
    xen_lab.ssh(f"virsh -c {URI} shutdown {NAME}")
    wait_for(
        lambda: xen_lab.ssh(f"virsh -c {URI} domstate {NAME}").stdout.strip() == "shut off",
        300,
        f"{NAME} to power off after a graceful shutdown request",
        step=5,
    )
    disk_guest["timings"]["graceful shutdown"] = time.monotonic() - started
    # libvirt reports "shut off" when libxl says the domain shut down; Xen may still be tearing
    # it down (seen on a loaded host): it must leave `xl list` shortly after
    wait_for(lambda: xen_lab.xl_list(NAME) is None, 120, f"{NAME} to leave xl list after its shutdown", step=5)
    xen_lab.ssh(f"virsh -c {URI} undefine {NAME}")
    names = domain_names(xen_lab)
    assert NAME not in names and HAND in names, names
    xen_lab.ssh(f"test -f {OVERLAY} && test -f {BASE}")


def test_prune_module_on_xen(xen_lab, hand_made):
    """xen_guests prune (helper `prune`) on Xen: the stale managed guest goes, the hand-made
    one stays."""
    if not module_documents("xen_guests", "prune"):
        pytest.skip("xen_guests has no prune option in this branch (helper `prune` adds it)")
    stale = guest_params(name=STALE, state="present", disks=[], vifs=[], cmdline=GUEST_CMDLINE)
    item = {key: value for key, value in stale.items() if key != "uri" and key not in GUEST_BOOT_ACCESS}
    # an owner of the test's own: the other lab guests (recorded with none) are not candidates
    owned = {"uri": URI, "owner": "i13xen-lab", **GUEST_BOOT_ACCESS}
    run = xen_lab.play(
        [
            {"name": "stale", "lcfg.xen.xen_guests": dict(owned, guests=[item])},
            {"name": "predict", "lcfg.xen.xen_guests": dict(owned, guests=[], prune=True), "check_mode": True},
            {"name": "prune", "lcfg.xen.xen_guests": dict(owned, guests=[], prune=True)},
        ]
    )
    assert run.rc == 0, run.output
    assert run["predict"]["changed"] is True and run["predict"]["stale"] == [STALE], run["predict"]
    assert run["prune"]["changed"] is True, run["prune"]
    names = domain_names(xen_lab)
    assert STALE not in names and HAND in names, names
