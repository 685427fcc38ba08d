"""The hypervisor role starting libvirtd when several inventory hosts are one machine.

The demo site has four hypervisor hosts on this one machine. With libvirtd down, they used
to start it at the same moment and three of four failed ("Failed to acquire pid file").
Here libvirtd is stopped, the role runs on four local hosts at once (forks 4), and every
host must succeed with exactly one libvirtd process afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from support import ROOT, run_playbook

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LIBVIRTD = ROOT / "scripts" / "libvirtd.sh"


def _libvirtd_pids() -> list[int]:
    proc = subprocess.run(["pgrep", "-x", "libvirtd"], capture_output=True, text=True, check=False)
    return [int(pid) for pid in proc.stdout.split()]


@pytest.fixture
def libvirtd_stopped():
    subprocess.run(["bash", str(LIBVIRTD), "stop"], check=True)
    for _attempt in range(100):
        if not _libvirtd_pids():
            break
        subprocess.run(["sleep", "0.1"], check=True)
    assert not _libvirtd_pids(), "libvirtd did not stop"
    yield
    # Whatever the test did, leave a running libvirtd for the tests after this one.
    subprocess.run(["bash", str(LIBVIRTD), "start"], check=True)


def test_four_hosts_of_one_machine_start_libvirtd_once(tmp_path, libvirtd_stopped):
    hosts = {f"lcfgtest-hv{i}": {} for i in range(4)}
    inventory = tmp_path / "hosts.json"
    inventory.write_text(
        json.dumps(
            {
                "all": {
                    "hosts": hosts,
                    "vars": {
                        "ansible_connection": "local",
                        "ansible_python_interpreter": sys.executable,
                        "xen_uri": "qemu:///system",
                    },
                }
            }
        )
    )
    playbook = tmp_path / "start.yml"
    playbook.write_text(
        "- hosts: all\n"
        "  gather_facts: true\n"
        "  gather_subset: [min]\n"
        "  tasks:\n"
        "    - name: Only the libvirt daemons of the hypervisor role\n"
        "      ansible.builtin.include_role:\n"
        "        name: lcfg.xen.hypervisor\n"
        "        tasks_from: libvirtd.yml\n"
    )
    result = run_playbook(playbook, "--forks", "4", inventory=inventory)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    for host in hosts:
        assert f"{host}" in result.stdout
    assert "failed=0" in result.stdout and "failed=1" not in result.stdout
    assert len(_libvirtd_pids()) == 1, _libvirtd_pids()
    answer = subprocess.run(["virsh", "-c", "qemu:///system", "version"], capture_output=True, text=True, check=False)
    assert answer.returncode == 0, answer.stderr
