"""Guests you can log in to, end to end: the site's login switch (make site LOGIN=1).

scripts/site.sh runs playbooks/site.yml with -e site_login=true over a renamed copy of the
login demo (inventory-login/ and lcfg/login/demo-login): it builds the bootable Debian
template (debootstrap from this machine's apt mirror; the root filesystem is cached in
/var/cache/lcfg-xen, so only the first run on a machine pays for debootstrap), clones it
for two guests with the profile URL and a key pair made for this run, starts them on a NAT
network at their profile addresses, waits for SSH and checks inside each guest what its
profile said. The test then reads the report the guests gave (login.yml's
site_login_report_dir) and compares it with the inventory, and measures how long a guest
takes from libvirt's create() to answering SSH. Slow (minutes).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from support import ROOT, ansible_env, inventory_list, remove_domains, remove_networks, renamed_copy, run_playbook

pytestmark = [pytest.mark.integration, pytest.mark.slow]

libvirt = pytest.importorskip("libvirt")

URI = "qemu:///system"
PREFIX = "i13e2e-"
RENAMES = (
    ("demo-", PREFIX),
    ("lcfg-nat", f"{PREFIX}nat"),
    ("52:54:00:6c:", "52:54:00:8e:"),
    ("10.0.", "10.79."),
)
IMAGE_DIRS = ("/var/lib/lcfg-xen/guests", "/var/lib/lcfg-xen/templates")


def _copy_of_the_login_demo(target: Path) -> Path:
    renamed_copy(ROOT / "inventory-login", target / "inventory-login", RENAMES, "7e570013")
    renamed_copy(
        ROOT / "lcfg", target / "lcfg", RENAMES, "7e570013", keep=lambda rel: rel.parts[0] in ("include", "login")
    )
    return target / "inventory-login" / "login.lcfg.yml"


def _ssh_banner(address: str) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=2) as sock:
            sock.settimeout(3)
            return sock.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def _seconds_to_ssh(dom, address: str, timeout: float = 600) -> float:
    """Power-cycle ``dom`` and time libvirt's create() to the first SSH banner."""
    if dom.isActive():
        dom.destroy()
    start = time.monotonic()
    dom.create()
    while time.monotonic() - start < timeout:
        if _ssh_banner(address):
            return time.monotonic() - start
        time.sleep(0.5)
    raise AssertionError(f"{dom.name()} did not answer SSH at {address} within {timeout:.0f} s")


def _cleanup(inventory: Path | None) -> None:
    if inventory is not None and inventory.exists():
        run_playbook(
            ROOT / "playbooks" / "teardown.yml",
            inventory=inventory,
            extra_vars={"teardown_shutdown_timeout": 5, "teardown_remove_networks": True},
        )
    remove_domains(URI, PREFIX)
    remove_networks(URI, PREFIX)
    for directory in IMAGE_DIRS:
        for image in Path(directory).glob(f"{PREFIX}*") if os.path.isdir(directory) else []:
            image.unlink()


def _login_site(env: dict, key: Path, reports: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            "bash",
            str(ROOT / "scripts" / "site.sh"),
            "-e",
            "site_login=true",
            "-e",
            f"site_login_key={key}",
            "-e",
            f"site_login_report_dir={reports}",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=3600,
        check=False,
    )


def _live_change_seen_by_the_guests(inventory: Path, guests: dict, env: dict, key: Path, tmp_path: Path) -> None:
    """Raise the group's memory (384 -> 448 MiB, within groupmaxmem 512) and VCPUs (2 -> 3,
    within groupmaxvcpus 4) in the profile and run the site again: the running guests follow
    without a restart, and the guests themselves see it (MemTotal, nproc over SSH; the VCPUs
    online as qemu-guest-agent reports them through the channel the collection renders)."""
    before = {name: json.loads((tmp_path / "reports" / f"{name}.json").read_text()) for name in guests}
    (profile,) = (inventory.parent.parent / "lcfg" / "login").glob("*login")
    text = profile.read_text()
    for old, new in (("groupmemory_login      mSET(384)", "mSET(448)"), ("groupvcpus_login       mSET(2)", "mSET(3)")):
        assert old in text, f"{profile} no longer holds {old!r}"
        text = text.replace(old, old.split("mSET", maxsplit=1)[0] + new)
    profile.write_text(text)
    conn = libvirt.open(URI)
    try:
        ids = {name: conn.lookupByName(spec["name"]).ID() for name, spec in guests.items()}
        reports = tmp_path / "reports-live"
        site = _login_site(env, key, reports)
        assert site.returncode == 0, site.stdout[-6000:] + site.stderr[-3000:]
        for name, spec in guests.items():
            dom = conn.lookupByName(spec["name"])
            assert dom.ID() == ids[name], f"{name} was restarted; the change was meant to be live"
            report = json.loads((reports / f"{name}.json").read_text())
            assert int(report["vcpus_online"]) == 3, report
            grown = float(report["memtotal_mib"]) - float(before[name]["memtotal_mib"])
            assert 48 <= grown <= 64, f"{name}: MemTotal {before[name]['memtotal_mib']} -> {report['memtotal_mib']} MiB"
            agent = dom.guestVcpus()
            assert agent["online"] == "0-2", agent
            # the balloon's size as libvirt reads it back from QEMU
            assert abs(dom.info()[2] - 448 * 1024) <= 8 * 1024, dom.info()
            print(
                f"\n{name}: live 384 -> 448 MiB, 2 -> 3 VCPUs; the guest sees MemTotal {report['memtotal_mib']} MiB, "
                f"{report['vcpus_online']} online (agent: {agent['online']})"
            )
    finally:
        conn.close()


def test_login_site_guests_see_what_their_profile_says(tmp_path):
    inventory = _copy_of_the_login_demo(tmp_path / "site")
    key = tmp_path / "key" / "id_ed25519"
    reports = tmp_path / "reports"
    env = ansible_env()
    env["LCFG_XEN_INVENTORY"] = str(inventory)
    guests = {
        name: hv["xen_domain"]
        for name, hv in inventory_list(inventory)["_meta"]["hostvars"].items()
        if "xen_domain" in hv
    }
    assert sorted(guests) == [f"{PREFIX}login1", f"{PREFIX}login2"]
    try:
        started = time.monotonic()
        site = _login_site(env, key, reports)
        site_seconds = time.monotonic() - started
        assert site.returncode == 0, site.stdout[-6000:] + site.stderr[-3000:]
        assert key.exists() and (key.parent / "id_ed25519.pub").exists()  # made by the run, not committed

        for name, spec in guests.items():
            report = json.loads((reports / f"{name}.json").read_text())
            # what the guest itself reported over SSH
            assert report["hostname"] == spec["name"]
            assert int(report["vcpus_online"]) == spec["vcpus"]
            assert 0.75 * spec["memory"] <= float(report["memtotal_mib"]) <= spec["memory"]
            assert report["profile_url"] == spec["profile_url"]
            assert report["address"] == spec["vifs"][0]["ip"]

        _live_change_seen_by_the_guests(inventory, guests, env, key, tmp_path)

        conn = libvirt.open(URI)
        try:
            name, spec = sorted(guests.items())[0]
            dom = conn.lookupByName(spec["name"])
            domain_type = dom.XMLDesc(0).split("type='", 1)[1].split("'", 1)[0]
            seconds = _seconds_to_ssh(dom, spec["vifs"][0]["ip"])
        finally:
            conn.close()
        print(
            f"\nlogin site: {site_seconds:.0f} s for the whole run; {name} ({domain_type}) answered SSH "
            f"{seconds:.1f} s after create()"
        )
    finally:
        _cleanup(inventory)
