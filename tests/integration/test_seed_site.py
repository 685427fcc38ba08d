"""The seed's use cases (inventory-seed/ and lcfg/seed/, the talk's slides) through playbooks/site.yml.

``--check`` first (must not fail, must predict changes), then for real, then again with
changed=0; the guests and networks are read back from libvirt and ``ip -j``; teardown
removes them. The site runs on a copy of inventory-seed/ and lcfg/ whose host-wide objects are
renamed (``SEED_TEST_RENAMES``: NAT network and subnet, bridges, stand-in interfaces), so a
user's own ``make site`` / ``make site-seed`` networks are never touched. The guests keep
the slides' names (node1..node8, profiledev); the test refuses to run when such a domain
exists already, and removes what it made.

Also here: the network role with an uplink that carries an address (the slide's
``bridgenetdev_eth0 eth0``), on a veth pair with its far end in a network namespace.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from support import ROOT, ansible_env, inventory_list, renamed_copy, run_playbook

pytestmark = [pytest.mark.integration, pytest.mark.slow]

libvirt = pytest.importorskip("libvirt")

URI = "qemu:///system"
TEMPLATE = "/guests/lcfg_temp.img"
GUESTS = ["profiledev"] + [f"node{n}" for n in range(1, 9)]
NAT = "lcfgss-nat"
LONG_BRIDGE = "lcfgss-network-bridge"  # 21 characters, like the slide's my-network-bridge (17)
STANDINS = ["lcfgss-eth0", "lcfgss-eth1", "lcfgss-eth2"]

# Applied to every file of the copy: the seed's host-wide names -> the test's own.
SEED_TEST_RENAMES = (
    ("my-network-bridge", LONG_BRIDGE),
    ("xenbr", "lcfgssbr"),
    ("10.0.0.", "10.78.0."),
    ("lcfg-eth", "lcfgss-eth"),
)
# The slides leave the NAT network's name and subnet at the component's defaults.
NAT_LINES = f"\n!xen.natnetwork mSET({NAT})\n!xen.natsubnet mSET(10.78.0.0/24)\n"


def sh(*argv: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=check)


def ip_link(name: str) -> dict | None:
    proc = sh("ip", "-j", "-d", "addr", "show", "dev", name, check=False)
    return json.loads(proc.stdout)[0] if proc.returncode == 0 and proc.stdout.strip() else None


def _copy(target: Path) -> Path:
    """inventory-seed/ and the profiles and headers beside it (lcfg/seed, lcfg/include) under ``target``."""
    renamed_copy(ROOT / "inventory-seed", target / "inventory-seed", SEED_TEST_RENAMES, "7e570003")
    renamed_copy(
        ROOT / "lcfg",
        target / "lcfg",
        SEED_TEST_RENAMES,
        "7e570003",
        keep=lambda rel: rel.parts[0] in ("seed", "include"),
    )
    for name in ("seed-cluster", "seed-networks"):
        profile = target / "lcfg" / "seed" / name
        profile.write_text(profile.read_text() + NAT_LINES)
    return target / "inventory-seed" / "seed.lcfg.yml"


def _recap(stdout: str) -> dict[str, dict[str, int]]:
    return {
        host: {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
        for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", stdout, re.M)
    }


def _domains() -> set[str]:
    return set(sh("virsh", "-c", URI, "list", "--all", "--name").stdout.split())


def _own_links() -> set[str]:
    """Interfaces named like the test's own (other tests may add and remove theirs meanwhile)."""
    return {link["ifname"] for link in json.loads(sh("ip", "-j", "link").stdout) if link["ifname"].startswith("lcfgss")}


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@pytest.fixture
def seed_site(tmp_path):
    """The renamed copy; afterwards every guest, network, stand-in and image it made is gone."""
    taken = set(GUESTS) & _domains()
    if taken:
        pytest.skip(f"domains {sorted(taken)} exist on this machine (a user's make site-seed?)")
    made_dirs = [d for d in ("/guests", "/data/guests", "/data") if not os.path.exists(d)]
    made_template = not os.path.exists(TEMPLATE)
    if made_template:
        os.makedirs("/guests", mode=0o700, exist_ok=True)
        # libguestfs boots an appliance (under TCG without KVM): minutes on a busy machine
        sh(sys.executable, str(ROOT / "scripts" / "make-template.py"), TEMPLATE, "--size-gb", "1", timeout=1800)
    images_before = {p for d in ("/guests", "/data/guests") if os.path.isdir(d) for p in os.listdir(d)}
    inventory = _copy(tmp_path / "site")
    yield inventory, _sha256(TEMPLATE)
    run_playbook(
        ROOT / "playbooks" / "teardown.yml",
        inventory=inventory,
        extra_vars={"teardown_shutdown_timeout": 5, "teardown_remove_networks": True, "teardown_remove_disks": True},
    )
    for name in STANDINS:
        sh("ip", "link", "del", name, check=False)
    for directory in ("/guests", "/data/guests"):
        if os.path.isdir(directory):
            for name in set(os.listdir(directory)) - images_before:
                if name != os.path.basename(TEMPLATE):
                    os.unlink(os.path.join(directory, name))
    if made_template:
        os.unlink(TEMPLATE)
    for directory in made_dirs:
        if os.path.isdir(directory) and not os.listdir(directory):
            os.rmdir(directory)


def test_seed_use_cases_converge_check_first_then_real_then_no_change(seed_site):
    inventory, template_sum = seed_site
    links_before = _own_links()

    check = run_playbook(ROOT / "playbooks" / "site.yml", "--check", inventory=inventory)
    assert check.returncode == 0, check.stdout[-5000:] + check.stderr[-2000:]
    predicted = _recap(check.stdout)
    assert {"seed-single", "seed-cluster", "seed-networks"} <= set(predicted)
    assert all(counts["failed"] == 0 for counts in predicted.values())
    assert all(predicted[host]["changed"] > 0 for host in ("seed-single", "seed-cluster", "seed-networks"))
    # check mode touched nothing on the host
    assert not set(GUESTS) & _domains()
    assert _own_links() == links_before
    assert sh("virsh", "-c", URI, "net-info", NAT, check=False).returncode != 0

    real = run_playbook(ROOT / "playbooks" / "site.yml", inventory=inventory)
    assert real.returncode == 0, real.stdout[-5000:] + real.stderr[-2000:]
    applied = _recap(real.stdout)
    assert all(counts["failed"] == 0 for counts in applied.values())
    # the group bridges over NAT members are ignored with a warning, not an error
    assert "group bridge 'lcfgssbr0' is ignored for guest 'node1'" in real.stderr + real.stdout

    again = run_playbook(ROOT / "playbooks" / "site.yml", inventory=inventory)
    assert again.returncode == 0, again.stdout[-5000:] + again.stderr[-2000:]
    recap = _recap(again.stdout)
    assert {host: counts["changed"] for host, counts in recap.items()} == {host: 0 for host in recap}

    hostvars = inventory_list(inventory)["_meta"]["hostvars"]
    conn = libvirt.open(URI)
    try:
        for name in GUESTS:
            spec = hostvars[name]["xen_domain"]
            dom = conn.lookupByName(name)
            xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            assert f"<currentMemory unit='KiB'>{spec['memory'] * 1024}</currentMemory>" in xml, name
            assert f"<memory unit='KiB'>{spec['maxmem'] * 1024}</memory>" in xml, name
            assert re.search(rf"<vcpu[^>]*>{spec['vcpus']}</vcpu>", xml), name
            assert not dom.isActive() and not dom.autostart(), name  # boot no / no boot line
            for disk in spec["disks"]:
                assert disk["path"] in xml and os.path.exists(disk["path"]), disk
                assert os.stat(disk["path"]).st_blocks * 512 < 2 << 30, disk  # sparse
        for n in range(1, 9):
            xml = conn.lookupByName(f"node{n}").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            assert xml.count("cpuset='0-3'") + xml.count("cpuset='0,1,2,3'") >= 1, xml
            assert f"<source network='{NAT}'" in xml and "00:16:2a:24:a3:%02x" % (0x7B + n) in xml
        net_xml = conn.networkLookupByName(NAT).XMLDesc(0)
        # the gateway is away from every guest: node1 has 10.78.0.1
        assert re.search(r"<ip address='10\.78\.0\.254' (prefix='24'|netmask='255\.255\.255\.0')", net_xml)
        assert "<host mac='00:16:2a:24:a3:7c' name='node1' ip='10.78.0.1'/>" in net_xml
        assert net_xml.count("<host mac=") == 8
        long_xml = conn.networkLookupByName(LONG_BRIDGE).XMLDesc(0)
    finally:
        conn.close()

    # the long custom bridge: the libvirt network keeps its name; the device is derived
    networks = hostvars["seed-networks"]["xen_host"]
    device = networks["custom_bridge_device"]
    assert networks["custom_bridge"] == LONG_BRIDGE and len(device) <= 15 and device != LONG_BRIDGE
    assert f"<bridge name='{device}'/>" in long_xml and "<forward mode='bridge'/>" in long_xml
    assert ip_link(device)["linkinfo"]["info_kind"] == "bridge"
    for n in range(3):
        assert ip_link(f"lcfgss-eth{n}")["master"] == f"lcfgssbr{n}"
    assert ip_link("eth0") is None or ip_link("eth0").get("master") is None  # the machine's NIC untouched

    assert _sha256(TEMPLATE) == template_sum  # the template is never modified


def _role_play(tmp_path: Path, **role_vars) -> Path:
    play = [
        {
            "name": "Network role on a stand-in uplink",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "ansible.builtin.include_role": {"name": "lcfg.xen.network"},
                    "vars": {
                        "network_uri": URI,
                        "network_persist": "none",
                        **role_vars,
                        "network_host": {
                            "bridge_network": True,
                            "nat_network": False,
                            "route_network": False,
                            "custom_bridge": None,
                            "default_bridge": "lcfgssbrm",
                            "bridges": [
                                {
                                    "tag": "eth0",
                                    "netdev": "eth0",
                                    "bridge": "lcfgssbrm",
                                    "vifnum": 0,
                                    "device": "lcfgssbrm",
                                }
                            ],
                            "guests": [],
                            "groups": {},
                        },
                    },
                }
            ],
        }
    ]
    path = tmp_path / "play.yml"
    path.write_text(json.dumps(play))
    return path


@pytest.fixture
def uplink():
    """eth0 of a profile stands for veth lcfgss-up0 (10.79.0.1/24, default-free route via it)
    whose peer is in namespace lcfgss-ns (10.79.0.2/24)."""
    sh("ip", "netns", "add", "lcfgss-ns")
    sh("ip", "link", "add", "lcfgss-up0", "type", "veth", "peer", "name", "lcfgss-up0p")
    sh("ip", "link", "set", "lcfgss-up0p", "netns", "lcfgss-ns")
    sh("ip", "address", "add", "10.79.0.1/24", "dev", "lcfgss-up0")
    sh("ip", "link", "set", "lcfgss-up0", "up")
    sh("ip", "route", "add", "10.79.9.0/24", "via", "10.79.0.2", "dev", "lcfgss-up0")
    sh("ip", "netns", "exec", "lcfgss-ns", "ip", "address", "add", "10.79.0.2/24", "dev", "lcfgss-up0p")
    sh("ip", "netns", "exec", "lcfgss-ns", "ip", "link", "set", "lcfgss-up0p", "up")
    yield "lcfgss-up0"
    sh("ip", "link", "del", "lcfgssbrm", check=False)
    sh("ip", "link", "del", "lcfgss-up0", check=False)
    sh("ip", "netns", "del", "lcfgss-ns", check=False)


def _addresses(name: str) -> list[str]:
    return [
        f"{a['local']}/{a['prefixlen']}"
        for a in (ip_link(name) or {}).get("addr_info", [])
        if a.get("family") == "inet"
    ]


def test_uplink_with_the_hosts_address_needs_the_play_to_opt_in(tmp_path, uplink):
    refused = run_playbook(_role_play(tmp_path, network_netdevs={"eth0": uplink}))
    assert refused.returncode != 0
    assert "network_migrate_address" in refused.stdout and "10.79.0.1/24" in refused.stdout
    # nothing changed: the address stays, no bridge, the uplink has no master
    assert _addresses(uplink) == ["10.79.0.1/24"] and ip_link("lcfgssbrm") is None
    assert ip_link(uplink).get("master") is None

    moved = run_playbook(_role_play(tmp_path, network_netdevs={"eth0": uplink}, network_migrate_address=True))
    assert moved.returncode == 0, moved.stdout[-3000:]
    assert _addresses("lcfgssbrm") == ["10.79.0.1/24"] and _addresses(uplink) == []
    assert ip_link(uplink)["master"] == "lcfgssbrm"
    routes = json.loads(sh("ip", "-j", "route", "show", "10.79.9.0/24").stdout)
    assert [(r["gateway"], r["dev"]) for r in routes] == [("10.79.0.2", "lcfgssbrm")]
    sh("ip", "netns", "exec", "lcfgss-ns", "busybox", "ping", "-c", "1", "-W", "3", "10.79.0.1")

    again = run_playbook(_role_play(tmp_path, network_netdevs={"eth0": uplink}, network_migrate_address=True))
    assert again.returncode == 0 and _recap(again.stdout)["localhost"]["changed"] == 0


def test_profiles_sharing_a_nat_network_must_agree_on_its_address(tmp_path):
    """Two hypervisor profiles of one machine, one NAT network, two gateways: refused before
    anything is changed (the network would flip between the two on every run)."""

    def hypervisor(address: str) -> dict:
        return {
            "ansible_connection": "local",
            "xen_host": {
                "bridge_network": False,
                "nat_network": True,
                "route_network": False,
                "custom_bridge": None,
                "bridges": [],
                "nat_network_name": "lcfgss-nat2",
                "nat_subnet": "10.80.0.0/24",
                "nat_address": address,
                "nat_dhcp_hosts": [],
                "guests": [],
                "groups": {},
            },
        }

    inventory = tmp_path / "hosts.json"
    inventory.write_text(
        json.dumps(
            {
                "xen_hypervisors": {
                    "hosts": {"lcfgss-hv1": hypervisor("10.80.0.254/24"), "lcfgss-hv2": hypervisor("10.80.0.253/24")}
                }
            }
        )
    )
    play = tmp_path / "play.yml"
    play.write_text(
        json.dumps(
            [
                {
                    "hosts": "xen_hypervisors",
                    "gather_facts": False,
                    "roles": [{"role": "lcfg.xen.network", "network_uri": URI}],
                }
            ]
        )
    )
    result = run_playbook(play, "--check", inventory=inventory)
    assert result.returncode != 0
    assert "set the same xen.natgateway in every profile that shares it" in result.stdout
    assert "10.80.0.253/24" in result.stdout
    assert sh("virsh", "-c", URI, "net-info", "lcfgss-nat2", check=False).returncode != 0


def test_node1_uuid_as_printed_on_the_slide_is_refused_naming_file_and_line(tmp_path):
    profile = ROOT / "tests" / "fixtures" / "seed" / "cluster-uuid-as-printed"
    line = next(n for n, text in enumerate(profile.read_text().splitlines(), 1) if text.startswith("!xen.uuid_node1"))
    config = tmp_path / "uuid.lcfg.yml"
    config.write_text(
        json.dumps(
            {
                "plugin": "lcfg.xen.lcfg",
                "sources": [str(profile)],
                "strict": True,
                "include_path": [str(ROOT / "tests" / "fixtures" / "profiles" / "include")],
            }
        )
    )
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-inventory")), "-i", str(config), "--list"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=str(ROOT),
        env=ansible_env(),
    )
    assert f"{profile}:{line}: xen.uuid_node1: invalid UUID" in " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr
    assert "node1" not in json.loads(proc.stdout or "{}").get("_meta", {}).get("hostvars", {})
