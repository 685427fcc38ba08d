"""Two runs at once and teardown's interfaces (issue 10 items 2 and 4), on the real libvirtd.

* The per-hypervisor lock through the modules' real entry points: a held lock is waited
  for, then the call fails naming the holder; check mode takes no lock; a call queued behind
  a short holder succeeds and says how long it waited (``lock_waited``).
* Two ``site.yml`` runs started together over a small inventory of the test's own (two
  hypervisor profiles of this machine: four bridges, a NAT network, guests that boot):
  both succeed, and the host is right afterwards (domains, networks, ``ip -j link``).
* Teardown with ``teardown_remove_networks=true`` removes every interface the collection
  created (the stand-in veth pairs) and keeps one that was there before (a veth pair the
  profile's bridge uses as its port).

Everything is named ``lcfgt-conc-`` (libvirt objects, images) or ``lcc`` (interfaces,
which Linux limits to 15 characters) and removed afterwards.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from ansible_collections.lcfg.xen.plugins.module_utils.common.lock import hypervisor_lock
from support import ROOT, ansible_env, remove_domains, remove_networks, renamed_copy, run_module

libvirt = pytest.importorskip("libvirt")

pytestmark = [pytest.mark.integration, pytest.mark.slow]

URI = "qemu:///system"
PREFIX = "lcfgt-conc-"
GUEST_DIR = Path("/var/lib/lcfg-xen/guests")

# The test's own copy of the example site: two of its hypervisor profiles, renamed.
PROFILES = ("demo-networks", "demo-cluster")
RENAMES = (
    ("demo-custombr", "lcc-custombr"),
    ("demo-", PREFIX),
    ("lcfg-nat", f"{PREFIX}nat"),
    ("xenbr", "lccbr"),
    ("52:54:00:6c:", "52:54:00:8c:"),
    ("10.0.", "10.88."),
)
PRE_EXISTING = ("lcc-pre0", "lcc-pre0-x")  # a veth pair of the admin's: lccbr2's port


def _own_site(target: Path) -> Path:
    renamed_copy(ROOT / "inventory", target / "inventory", RENAMES, "7e570002")
    renamed_copy(
        ROOT / "lcfg",
        target / "lcfg",
        RENAMES,
        "7e570002",
        keep=lambda rel: (
            rel.parts[0] != "seed"
            and not (rel.parts[0] == "profiles" and len(rel.parts) > 1 and rel.name not in PROFILES)
        ),
    )
    # lccbr2's port is an interface of this machine's (the profile names eth2 for it)
    profile = target / "lcfg" / "profiles" / "demo-networks"
    profile.write_text(profile.read_text() + "\n!xen.bridgenetdev_eth2 mSET(eth2)\n")
    with open(target / "inventory" / "group_vars" / "xen_hypervisors.yml", "a", encoding="utf-8") as group_vars:
        group_vars.write(f"network_standin_prefix: lcc-\nnetwork_netdevs: {{eth2: {PRE_EXISTING[0]}}}\n")
    return target / "inventory" / "site.lcfg.yml"


def _links() -> dict:
    out = subprocess.run(["ip", "-j", "-d", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {entry["ifname"]: entry for entry in json.loads(out)}


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], capture_output=True, check=False)


def _cleanup() -> None:
    remove_domains(URI, PREFIX)
    remove_networks(URI, PREFIX)
    for name, entry in _links().items():
        if name.startswith("lcc") and (entry.get("linkinfo") or {}).get("info_kind") in ("bridge", "veth"):
            _ip("link", "del", "dev", name)
    for image in GUEST_DIR.glob(f"{PREFIX}*") if GUEST_DIR.is_dir() else ():
        image.unlink()


@pytest.fixture
def own_site(tmp_path):
    _cleanup()
    _ip("link", "add", PRE_EXISTING[0], "type", "veth", "peer", "name", PRE_EXISTING[1])
    yield _own_site(tmp_path / "site")
    _cleanup()


def _playbook(playbook: str, inventory: Path, *extra: str) -> subprocess.Popen:
    env = ansible_env()
    env["LIBGUESTFS_BACKEND_SETTINGS"] = "force_tcg"
    return subprocess.Popen(
        [
            str(Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "ansible-playbook"),
            "-v",
            "-i",
            str(inventory),
            str(ROOT / "playbooks" / playbook),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=ROOT,
    )


def _finish(proc: subprocess.Popen, started: float) -> tuple:
    out = proc.communicate(timeout=3600)[0]
    return proc.returncode, out, time.monotonic() - started


def _waits(output: str) -> list:
    return [float(value) for value in re.findall(r'"lock_waited": ([0-9.]+)', output)]


def test_two_site_runs_at_once_then_teardown_removes_only_created_interfaces(own_site, record_property):
    started = time.monotonic()
    first = _playbook("site.yml", own_site)
    second = _playbook("site.yml", own_site)
    results = [_finish(first, started), _finish(second, started)]
    for rc, out, _seconds in results:
        assert rc == 0, out[-6000:]
        assert "failed=0" in out
    waits = [sum(_waits(out)) for _rc, out, _s in results]
    record_property("site_seconds", [round(s, 1) for _rc, _o, s in results])
    record_property("lock_waited_seconds", [round(w, 1) for w in waits])
    print(
        f"two site runs: {[round(s, 1) for _rc, _o, s in results]} s, waited for the lock "
        f"{[round(w, 1) for w in waits]} s in all"
    )

    conn = libvirt.open(URI)
    try:
        doms = {d.name(): d for d in conn.listAllDomains(0) if d.name().startswith(PREFIX)}
        assert set(doms) >= {f"{PREFIX}multi", f"{PREFIX}web", f"{PREFIX}node1", f"{PREFIX}node4"}
        for name in (f"{PREFIX}multi", f"{PREFIX}node1"):  # boot yes
            assert doms[name].state()[0] == libvirt.VIR_DOMAIN_RUNNING, name
            assert doms[name].autostart() == 1
        assert not doms[f"{PREFIX}node2"].isActive()
        nat = conn.networkLookupByName(f"{PREFIX}nat")
        assert nat.isActive() and nat.autostart()
        assert "10.88.0.1" in nat.XMLDesc(0)
    finally:
        conn.close()
    links = _links()
    for bridge in ("lccbr0", "lccbr1", "lccbr2", "lcc-custombr"):
        assert links[bridge]["linkinfo"]["info_kind"] == "bridge", bridge
        assert "UP" in links[bridge]["flags"], bridge
    for standin, bridge in (("lcc-eth0", "lccbr0"), ("lcc-eth1", "lccbr1")):
        assert links[standin]["master"] == bridge
        assert links[standin]["ifalias"] == f"lcfg.xen stand-in port of bridge {bridge}"
        assert f"{standin}-p" in links
    assert links[PRE_EXISTING[0]]["master"] == "lccbr2"
    assert "ifalias" not in links[PRE_EXISTING[0]]  # not the collection's

    teardown = _playbook(
        "teardown.yml",
        own_site,
        "-e",
        json.dumps({"teardown_shutdown_timeout": 5, "teardown_remove_networks": True, "teardown_remove_disks": True}),
    )
    rc, out, _seconds = _finish(teardown, time.monotonic())
    assert rc == 0, out[-6000:]
    links = _links()
    left = sorted(name for name in links if name.startswith("lcc"))
    assert left == sorted(PRE_EXISTING), left  # every created interface gone, the admin's kept
    assert "master" not in links[PRE_EXISTING[0]]
    conn = libvirt.open(URI)
    try:
        assert not [d for d in conn.listAllDomains(0) if d.name().startswith(PREFIX)]
        assert not [n for n in conn.listAllNetworks(0) if n.name().startswith(PREFIX)]
    finally:
        conn.close()


# --------------------------------------------------------------------------- the lock through the modules

# libvirt's test driver: its own lock ("test"), so the real hypervisor's runs are not held up.
GUEST = {"uri": "test:///default", "name": f"{PREFIX}lock", "memory": 64, "vcpus": 1, "state": "running"}


def test_a_held_lock_is_waited_for_then_named():
    with hypervisor_lock(["test"], "pytest holding the lock", 5):
        start = time.monotonic()
        held = run_module("xen_domain", dict(GUEST, lock_timeout=2))
        waited = time.monotonic() - start
        check = run_module("xen_domain", dict(GUEST, lock_timeout=2), check=True)
    assert held["failed"] and held["rc"] != 0
    assert f"pid {os.getpid()} (pytest holding the lock, started " in held["msg"], held["msg"]
    assert "for more than 2 s" in held["msg"] and "raise lock_timeout" in held["msg"]
    assert waited >= 2
    assert not check.get("failed") and check["changed"] and "lock_waited" not in check  # check mode: no lock
    free = run_module("xen_domain", dict(GUEST, lock_timeout=2))
    assert not free.get("failed") and free["lock_waited"] < 1


def test_a_call_queued_behind_another_succeeds_and_says_how_long_it_waited():
    ready = threading.Event()

    def hold():
        with hypervisor_lock(["test"], "pytest", 5):
            ready.set()
            time.sleep(3)

    holder = threading.Thread(target=hold)
    holder.start()
    ready.wait()
    result = run_module(
        "xen_guests",
        {"uri": "test:///default", "lock_timeout": 60, "guests": [{"name": f"{PREFIX}q1", "memory": 64, "vcpus": 1}]},
    )
    holder.join()
    assert not result.get("failed"), result
    assert 1.5 <= result["lock_waited"] < 10


def test_a_module_call_that_holds_the_lock_is_named_by_the_waiting_one():
    # test:///default converges thousands of guests in a few seconds: long enough to meet
    many = [{"name": f"{PREFIX}m{index}", "memory": 64, "vcpus": 1, "state": "running"} for index in range(8000)]
    first: dict = {}
    holder = threading.Thread(
        target=lambda: first.update(run_module("xen_guests", {"uri": "test:///default", "guests": many}))
    )
    holder.start()
    second = None
    for _attempt in range(100):
        time.sleep(0.2)
        second = run_module("xen_domain", dict(GUEST, lock_timeout=0.5))
        if second.get("failed") or not holder.is_alive():
            break
    holder.join()
    assert not first.get("failed"), str(first.get("msg"))[:500]
    assert second["failed"], "the second call never met the first one holding the lock"
    assert re.search(
        r"held the lock on hypervisor test for more than 0.5 s: pid \d+ \(lcfg\.xen\.xen_guests, "
        r"started \S+Z, \d+ s ago\)",
        second["msg"],
    ), second["msg"]
