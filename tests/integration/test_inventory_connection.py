"""The guests' connection variables (inventory option guest_connection), for real.

``ansible-inventory --list`` over the fixture site tests/fixtures/connection; then a real ssh
jump: two network namespaces (prefix ``i13conn-``), an sshd in the "hypervisor" namespace that
this machine reaches, and one in the "guest" namespace that only the hypervisor namespace
reaches; ``ansible -m ping`` reaches the guest through the ProxyJump the inventory generated.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import ROOT, ansible_env, inventory_list, wait_for

pytestmark = pytest.mark.integration

FIXTURE = ROOT / "tests" / "fixtures" / "connection"
PREFIX = "i13conn-"
HV_NS, GUEST_NS = f"{PREFIX}hv", f"{PREFIX}gu"
HOST_IF, HV_IF, HV_GUEST_IF, GUEST_IF = (f"{PREFIX}{n}" for n in ("h0", "h1", "g0", "g1"))
HOST_ADDR, HV_ADDR = "198.18.13.1", "198.18.13.7"  # this machine <-> hypervisor
HV_GUEST_ADDR, GUEST_ADDR = "198.18.14.1", "198.18.14.31"  # hypervisor <-> guest only
SSHD = "/usr/sbin/sshd"


def connection_vars(hostvars: dict, host: str) -> dict:
    return {k: v for k, v in hostvars[host].items() if k.startswith("ansible_")}


def test_list_gives_each_guest_its_connection_variables():
    hv = inventory_list(FIXTURE / "inventory")["_meta"]["hostvars"]
    key = str(FIXTURE / "inventory" / "keys" / "guests")
    common = {"ansible_user": "ansible", "ansible_ssh_private_key_file": key}
    # local hypervisor: the address only, no jump
    assert connection_vars(hv, "conn-lnat") == {"ansible_host": "10.0.0.21", **common}
    # remote hypervisor: its NAT guest through it, its bridged guest directly
    assert connection_vars(hv, "conn-rnat") == {
        "ansible_host": "10.0.0.31",
        "ansible_ssh_common_args": "-o ProxyJump=admin@198.51.100.7",
        **common,
    }
    assert connection_vars(hv, "conn-rbr") == {"ansible_host": "192.0.2.32", **common}
    # what the user set in host_vars wins; the rest is filled in
    assert connection_vars(hv, "conn-rmine") == {
        "ansible_host": "203.0.113.33",
        "ansible_user": "operator",
        "ansible_ssh_private_key_file": key,
        "ansible_ssh_common_args": "-o ProxyJump=admin@198.51.100.7",
    }
    # the hypervisors keep exactly what the user gave them
    assert connection_vars(hv, "conn-local") == {"ansible_connection": "local"}
    assert connection_vars(hv, "conn-remote") == {"ansible_host": "198.51.100.7", "ansible_user": "admin"}


# -- a real jump through network namespaces --------------------------------------------------


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def _teardown_network() -> None:
    for ns in (HV_NS, GUEST_NS):
        _ip("netns", "del", ns, check=False)
    _ip("link", "del", HOST_IF, check=False)


def _sshd_config(tmp: Path, name: str, address: str) -> Path:
    config = tmp / f"sshd-{name}.conf"
    config.write_text(
        "\n".join(
            [
                f"ListenAddress {address}",
                "Port 22",
                f"HostKey {tmp / 'hostkey'}",
                f"PidFile {tmp / f'sshd-{name}.pid'}",
                f"AuthorizedKeysFile {tmp / 'authorized_keys'}",
                "PermitRootLogin prohibit-password",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",
                "LogLevel VERBOSE",
                "",
            ]
        )
    )
    return config


@pytest.fixture
def namespaces(tmp_path: Path) -> Iterator[Path]:
    """The two namespaces with an sshd each; yields the directory with the client's key
    (``id``) and ssh configuration (``ssh_config``); everything is removed afterwards."""
    if os.geteuid() != 0 or shutil.which("ip") is None or not os.path.exists(SSHD):
        pytest.skip("needs root, ip(8) and openssh-server (apt-get install openssh-server)")
    _teardown_network()
    servers: list[subprocess.Popen] = []
    try:
        for ns in (HV_NS, GUEST_NS):
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("link", "add", HOST_IF, "type", "veth", "peer", "name", HV_IF, "netns", HV_NS)
        _ip("addr", "add", f"{HOST_ADDR}/24", "dev", HOST_IF)
        _ip("link", "set", HOST_IF, "up")
        _ip("-n", HV_NS, "addr", "add", f"{HV_ADDR}/24", "dev", HV_IF)
        _ip("-n", HV_NS, "link", "set", HV_IF, "up")
        _ip("-n", HV_NS, "link", "add", HV_GUEST_IF, "type", "veth", "peer", "name", GUEST_IF, "netns", GUEST_NS)
        _ip("-n", HV_NS, "addr", "add", f"{HV_GUEST_ADDR}/24", "dev", HV_GUEST_IF)
        _ip("-n", HV_NS, "link", "set", HV_GUEST_IF, "up")
        _ip("-n", GUEST_NS, "addr", "add", f"{GUEST_ADDR}/24", "dev", GUEST_IF)
        _ip("-n", GUEST_NS, "link", "set", GUEST_IF, "up")
        keygen = ["ssh-keygen", "-q", "-t", "ed25519", "-N", ""]
        subprocess.run([*keygen, "-f", str(tmp_path / "hostkey")], check=True, timeout=30)
        subprocess.run([*keygen, "-f", str(tmp_path / "id")], check=True, timeout=30)
        shutil.copy(tmp_path / "id.pub", tmp_path / "authorized_keys")
        (tmp_path / "ssh_config").write_text(
            "Host *\n  UserKnownHostsFile /dev/null\n  StrictHostKeyChecking no\n"
            f"  IdentityFile {tmp_path / 'id'}\n  IdentitiesOnly yes\n  BatchMode yes\n  LogLevel ERROR\n"
        )
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        for ns, name, address in ((HV_NS, "hv", HV_ADDR), (GUEST_NS, "guest", GUEST_ADDR)):
            config = _sshd_config(tmp_path, name, address)
            log = open(tmp_path / f"sshd-{name}.log", "w")  # noqa: SIM115 (closed with the process)
            servers.append(
                subprocess.Popen(
                    ["ip", "netns", "exec", ns, SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=log
                )
            )
            log.close()
        for name in ("hv", "guest"):
            wait_for(
                lambda name=name: "Server listening" in (tmp_path / f"sshd-{name}.log").read_text(),
                timeout=20,
                what=f"the {name} sshd",
            )
        yield tmp_path
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)
        _teardown_network()


def _site(tmp: Path, jump: str = "auto") -> Path:
    """The fixture site, its remote hypervisor and NAT guest moved to the namespaces."""
    site = tmp / "site"
    shutil.copytree(FIXTURE, site)
    profile = site / "lcfg" / "conn-remote"
    text = profile.read_text().replace("10.0.0.31", GUEST_ADDR).replace("10.0.0.0/24", "198.18.14.0/24")
    profile.write_text(text.replace("10.0.0.33", "198.18.14.33"))
    inventory = site / "inventory"
    (inventory / "host_vars" / "conn-remote.yml").write_text(f"ansible_host: {HV_ADDR}\nansible_user: root\n")
    # the jump's ssh takes -F from the main ssh: the hop finds its key and known_hosts there
    (inventory / "group_vars").mkdir()
    (inventory / "group_vars" / "xen_guests.yml").write_text(f"ansible_ssh_extra_args: -F {tmp / 'ssh_config'}\n")
    config = inventory / "site.lcfg.yml"
    config.write_text(
        json.dumps(
            {
                "plugin": "lcfg.xen.lcfg",
                "sources": ["../lcfg"],
                "strict_profiles": True,
                "guest_connection": {"user": "root", "private_key_file": str(tmp / "id"), "jump": jump},
            }
        )
    )
    return inventory


def _ping(inventory: Path, host: str) -> subprocess.CompletedProcess:
    env = ansible_env()
    env["ANSIBLE_SSH_ARGS"] = "-o ControlMaster=no -o ConnectTimeout=5"  # no master left behind
    env["ANSIBLE_HOST_KEY_CHECKING"] = "false"
    env["ANSIBLE_PIPELINING"] = "true"  # one ssh connection per task
    return subprocess.run(
        [str(Path(sys.executable).with_name("ansible")), host, "-i", str(inventory), "-m", "ansible.builtin.ping"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.mark.slow
def test_ansible_reaches_a_nat_guest_through_the_generated_proxyjump(namespaces: Path):
    tmp = namespaces
    inventory = _site(tmp)
    hv = inventory_list(inventory)["_meta"]["hostvars"]
    assert connection_vars(hv, "conn-rnat") == {
        "ansible_host": GUEST_ADDR,
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(tmp / "id"),
        "ansible_ssh_common_args": f"-o ProxyJump=root@{HV_ADDR}",
        "ansible_ssh_extra_args": f"-F {tmp / 'ssh_config'}",
    }
    # the guest is not reachable from this machine without the jump
    direct = subprocess.run(
        ["ssh", "-F", str(tmp / "ssh_config"), "-o", "ConnectTimeout=3", f"root@{GUEST_ADDR}", "true"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert direct.returncode == 255, direct.stderr
    started = time.monotonic()
    proc = _ping(inventory, "conn-rnat")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"ping": "pong"' in proc.stdout
    print(f"ansible -m ping through the jump: {time.monotonic() - started:.1f} s")
    # the guest's sshd saw the hypervisor's address; the hypervisor's sshd saw this machine
    assert f"Accepted publickey for root from {HV_GUEST_ADDR}" in (tmp / "sshd-guest.log").read_text()
    assert f"Accepted publickey for root from {HOST_ADDR}" in (tmp / "sshd-hv.log").read_text()


@pytest.mark.slow
def test_jump_never_leaves_the_nat_guest_unreachable(namespaces: Path):
    inventory = _site(namespaces, jump="never")
    hv = inventory_list(inventory)["_meta"]["hostvars"]
    assert "ansible_ssh_common_args" not in hv["conn-rnat"]
    proc = _ping(inventory, "conn-rnat")
    assert proc.returncode != 0 and "UNREACHABLE" in proc.stdout, proc.stdout + proc.stderr
