"""Faults an operator meets, injected on the real libvirtd: nothing lost, nothing half-done.

- libvirtd is SIGKILLed while ``xen_guests`` starts a hypervisor's guests: the run fails
  with a message (no traceback), and once libvirtd is back a re-run converges every guest
  with its running QEMU process kept.
- ansible-playbook is interrupted (SIGINT to its process group, as Ctrl-C does) while
  ``xen_disk`` injects the LCFG settings into a clone: no image under the final name, no
  appliance left running, and the re-run converges with the template unchanged.

(The module itself killed mid-clone is in test_xen_disk.py; ENOSPC and corrupt templates in
test_template_faults.py; two runs at once in test_concurrent_runs.py.) Guests and images are
named ``lcfgtest-fault-*``.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from support import ROOT, ansible_env, remove_domains, run_module, run_playbook, storage_directory

libvirt = pytest.importorskip("libvirt")

pytestmark = [pytest.mark.integration, pytest.mark.slow]

URI = "qemu:///system"
PREFIX = "lcfgtest-fault-"
GUESTS = 8


def connect():
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt.open(URI)


def guest(index: int) -> dict:
    # qemu (TCG): no OS, so it only has to start; no disks or vifs to keep it independent.
    return {
        "name": f"{PREFIX}{index}",
        "type": "hvm",
        "memory": 48,
        "maxmem": 48,
        "vcpus": 1,
        "autostart": False,
        "disks": [],
        "vifs": [],
        "extra": {"domain_type": "qemu"},
        "state": "running",
    }


def running_test_guests(conn) -> dict[str, int]:
    """name -> QEMU pid of this test's guests that libvirt reports as fully running."""
    out = {}
    for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_RUNNING):
        if dom.name().startswith(PREFIX):
            with open(f"/run/libvirt/qemu/{dom.name()}.pid", encoding="ascii") as handle:
                out[dom.name()] = int(handle.read().strip())
    return out


@pytest.fixture
def clean():
    remove_domains(URI, PREFIX)
    yield
    subprocess.run(["bash", str(ROOT / "scripts" / "libvirtd.sh"), "start"], check=True, timeout=180)
    remove_domains(URI, PREFIX)


def test_libvirtd_killed_mid_converge_then_rerun_converges(clean):
    params = {"uri": URI, "guests": [guest(i) for i in range(GUESTS)]}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": dict(params, _ansible_check_mode=False, _ansible_diff=False)}, handle)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ansible_collections.lcfg.xen.plugins.modules.xen_guests", handle.name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ansible_env(),
    )
    watcher = connect()
    try:
        deadline = time.monotonic() + 120
        while not running_test_guests(watcher) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        # Guests that were up before the kill must come through it with their QEMU process;
        # one caught half-started is libvirt's to clean up on reconnect.
        survivors = running_test_guests(watcher)
        assert proc.poll() is None, "xen_guests finished before libvirtd could be killed"
        assert survivors, "no guest started within 120 s"
        subprocess.run(["pkill", "-KILL", "-x", "libvirtd"], check=True)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        os.unlink(handle.name)
        try:
            watcher.close()
        except libvirt.libvirtError:
            pass  # its daemon is gone
    if proc.returncode != 0:
        result = json.loads(stdout)  # a module failure, as JSON: never a traceback
        assert result["failed"] and result["msg"], result
        assert "Traceback" not in stdout + stderr

    subprocess.run(["bash", str(ROOT / "scripts" / "libvirtd.sh"), "start"], check=True, timeout=180)
    rerun = run_module("xen_guests", params)
    assert rerun["rc"] == 0 and not rerun.get("failed"), rerun.get("msg")
    again = run_module("xen_guests", params)
    assert again["rc"] == 0 and again["changed"] is False, again

    conn = connect()
    try:
        for index in range(GUESTS):
            dom = conn.lookupByName(f"{PREFIX}{index}")
            assert dom.isActive(), dom.name()
            assert dom.maxMemory() == 48 * 1024
        after = running_test_guests(conn)
    finally:
        conn.close()
    for name, pid in survivors.items():
        assert after.get(name) == pid, f"{name}: the re-run restarted a guest that kept running"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(4 * 1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def _appliances_using(path: Path) -> list[int]:
    """pids of QEMU processes (libguestfs appliances) that have ``path`` on their command line."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    if str(path).encode() in handle.read():
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


@pytest.fixture
def store():
    with storage_directory("lcfgtest-fault-") as directory:
        yield directory


def test_playbook_interrupted_mid_injection_then_rerun_converges(store, tmp_path):
    template = store / "lcfgtest-fault-template.img"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make-template.py"), str(template), "--size-gb", "1"],
        check=True,
        capture_output=True,
        timeout=1800,
    )
    template_sum = _sha256(template)
    image = store / "lcfgtest-fault-clone.img"
    partial = store / ".lcfgtest-fault-clone.img.lcfg-xen-partial"
    playbook = tmp_path / "clone.yml"
    playbook.write_text(
        "- hosts: localhost\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - name: Clone the template with the LCFG settings\n"
        "      lcfg.xen.xen_disk:\n"
        f"        path: {image}\n"
        f"        template: {template}\n"
        "        profile_url: http://lcfg.example.org/profiles/example.org/\n"
        "        partition: 5\n"
        f"        storage_dirs: [{store}]\n"
    )
    env = ansible_env()
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,", "-c", "local", str(playbook)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=str(ROOT),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        # The copy is done and libguestfs has started its appliance on the partial clone.
        while not _appliances_using(partial) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, "the play ended before the injection could be interrupted"
        assert _appliances_using(partial), "no libguestfs appliance started on the clone"
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not image.exists(), "an interrupted injection left an image under the final name"
    for _attempt in range(100):  # the appliance is in the play's process group: it goes too
        if not _appliances_using(partial):
            break
        time.sleep(0.2)
    assert not _appliances_using(partial)

    rerun = run_playbook(playbook, "-c", "local", inventory="localhost,")
    assert rerun.returncode == 0 and "changed=1" in rerun.stdout, rerun.stdout[-3000:]
    assert image.exists() and not partial.exists()
    again = run_playbook(playbook, "-c", "local", inventory="localhost,")
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout[-3000:]
    assert _sha256(template) == template_sum
