"""xen_bridge / xen_bridge_info against the real host: bridges on veth pairs whose other end
lives in a network namespace, libvirt NAT and routed networks with dnsmasq handing out the
reserved leases to a DHCP client in a namespace. Nothing touches the machine's own NICs.

Every object is named with the ``lcfgt`` prefix and removed by the fixtures' finalizers.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from support import run_module

pytestmark = pytest.mark.integration

URI = "qemu:///system"
DNSMASQ_DIR = Path("/var/lib/libvirt/dnsmasq")


def sh(*argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed: {proc.stderr}")
    return proc


def ip_json(*argv: str) -> list:
    out = sh("ip", "-j", *argv).stdout.strip()
    return json.loads(out) if out else []


def link(name: str) -> dict | None:
    proc = sh("ip", "-j", "-d", "addr", "show", "dev", name, check=False)
    return json.loads(proc.stdout)[0] if proc.returncode == 0 else None


def addresses(name: str) -> list:
    entry = link(name) or {}
    return [f"{a['local']}/{a['prefixlen']}" for a in entry.get("addr_info", []) if a.get("scope") == "global"]


def bridge_ports(bridge: str) -> list:
    out = sh("bridge", "-j", "link").stdout.strip()
    return sorted(item["ifname"] for item in json.loads(out or "[]") if item.get("master") == bridge)


def virsh(*argv: str, check: bool = True) -> str:
    return sh("virsh", "-q", "-c", URI, *argv, check=check).stdout


def net_info(name: str) -> dict:
    out = virsh("net-info", name)
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in out.splitlines() if ":" in line)}


def dnsmasq_pids(network: str) -> list:
    proc = sh("pgrep", "-f", f"dnsmasq/{network}.conf", check=False)
    return sorted(int(pid) for pid in proc.stdout.split())


def dnsmasq_hosts(network: str) -> list:
    path = DNSMASQ_DIR / f"{network}.hostsfile"
    return sorted(path.read_text().split()) if path.exists() else []


def dhcp_lease(ns: str, dev: str) -> str | None:
    """Run busybox udhcpc once inside ``ns``; return the address the server offered and acked."""
    proc = sh(
        "ip",
        "netns",
        "exec",
        ns,
        "busybox",
        "udhcpc",
        "-i",
        dev,
        "-n",
        "-q",
        "-f",
        "-t",
        "8",
        "-T",
        "1",
        "-s",
        "/bin/true",
        check=False,
        timeout=40,
    )
    match = re.search(r"lease of (\S+) obtained", proc.stdout + proc.stderr)
    return match.group(1) if match else None


def kernel_has_dummy() -> bool:
    proc = sh("ip", "link", "add", "lcfgtprobe", "type", "dummy", check=False)
    if proc.returncode == 0:
        sh("ip", "link", "del", "lcfgtprobe")
        return True
    return False


def only(result: dict) -> dict:
    """The one entry of ``results`` of a call with ``name`` (xen_bridge always returns ``results``)."""
    assert not result.get("failed"), result.get("msg")
    assert len(result["results"]) == 1, result["results"]
    return result["results"][0]


def converge(params: dict) -> tuple:
    """check -> apply -> check -> apply; the first check must predict the first apply exactly."""
    predicted = run_module("xen_bridge", params, check=True, diff=True)
    applied = run_module("xen_bridge", params, diff=True)
    assert not applied.get("failed"), applied.get("msg")
    assert predicted["changed"] == applied["changed"]
    assert predicted["actions"] == applied["actions"]
    if params.get("bridge") or params.get("mode", "bridge") == "bridge":
        assert predicted["diff"] == applied["diff"]
    again_check = run_module("xen_bridge", params, check=True, diff=True)
    again = run_module("xen_bridge", params, diff=True)
    assert again_check["changed"] is False, again_check["actions"]
    assert again["changed"] is False, again["actions"]
    assert again["actions"] == []
    assert again["diff"]["before"] == again["diff"]["after"]
    return predicted, applied


@pytest.fixture
def host():
    """Records the namespaces, links and libvirt networks a test makes; removes them all after."""
    made: dict = {"netns": [], "links": [], "networks": []}

    class Host:
        def netns(self, name: str) -> str:
            assert name.startswith("lcfgt")
            sh("ip", "netns", "add", name)
            made["netns"].append(name)
            sh("ip", "-n", name, "link", "set", "lo", "up")
            return name

        def veth(self, host_end: str, ns: str | None, ns_end: str | None = None, mac: str | None = None) -> str:
            """A veth pair: ``host_end`` stays here, the other end (``ns_end``) goes into ``ns``."""
            ns_end = ns_end or host_end + "p"
            assert host_end.startswith("lcfgt") and ns_end.startswith("lcfgt")
            sh("ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end)
            made["links"].append(host_end)
            if ns:
                sh("ip", "link", "set", ns_end, "netns", ns)
                if mac:
                    sh("ip", "-n", ns, "link", "set", ns_end, "address", mac)
                sh("ip", "-n", ns, "link", "set", ns_end, "up")
            return host_end

        def link(self, name: str) -> None:
            made["links"].append(name)

        def network(self, name: str) -> None:
            assert name.startswith("lcfgt")
            made["networks"].append(name)

    yield Host()
    for name in made["networks"]:
        virsh("net-destroy", name, check=False)
        virsh("net-undefine", name, check=False)
    for name in made["links"]:
        sh("ip", "link", "del", name, check=False)
    for name in made["netns"]:
        sh("ip", "netns", "del", name, check=False)


# --------------------------------------------------------------------------- Linux bridges


def test_bridge_enslaves_netdev_idempotently(host):
    ns = host.netns("lcfgtest-ns1")
    host.veth("lcfgtv1", ns)
    host.link("lcfgtbr0")
    params = {"name": "lcfgtbr0", "netdev": "lcfgtv1", "persist": "none"}
    predicted, applied = converge(params)
    assert only(applied)["actions"] == [
        "create bridge lcfgtbr0",
        "enslave lcfgtv1 to lcfgtbr0",
        "bring lcfgtv1 up",
        "bring lcfgtbr0 up",
    ]
    assert applied["actions"] == [f"lcfgtbr0: {action}" for action in only(applied)["actions"]]
    assert applied["pending_restart"] == [] and only(applied)["pending_restart"] == []
    assert applied["diff"]["before"] == {"lcfgtbr0": {"bridge": None}}
    assert applied["diff"]["after"]["lcfgtbr0"]["bridge"]["ports"] == ["lcfgtv1"]
    entry = link("lcfgtbr0")
    assert entry["linkinfo"]["info_kind"] == "bridge"
    assert "UP" in entry["flags"]
    assert bridge_ports("lcfgtbr0") == ["lcfgtv1"]
    assert only(applied)["vif_script"] == "vif-bridge" and only(applied)["bridge"] == "lcfgtbr0"

    info = run_module("xen_bridge_info", {"name": "lcfgtbr0", "libvirt": False})
    assert info["bridges"] == [
        {
            "name": "lcfgtbr0",
            "state": "up",
            "ports": ["lcfgtv1"],
            "addresses": [],
            "stp": False,
            "mac": entry["address"],
        }
    ]

    # a guest's vif on the bridge is left alone by later runs
    host.veth("lcfgtvif1", None, "lcfgtvif1p")
    sh("ip", "link", "set", "lcfgtvif1", "master", "lcfgtbr0")
    again = run_module("xen_bridge", params)
    assert again["changed"] is False
    assert bridge_ports("lcfgtbr0") == ["lcfgtv1", "lcfgtvif1"]

    gone = run_module("xen_bridge", dict(params, state="absent"), diff=True)
    assert gone["changed"] and only(gone)["actions"] == ["delete bridge lcfgtbr0"]
    assert link("lcfgtbr0") is None
    assert link("lcfgtv1") is not None  # the netdev stays
    assert run_module("xen_bridge", dict(params, state="absent"))["changed"] is False


def test_enslaving_an_addressed_netdev_needs_migrate_address(host):
    ns = host.netns("lcfgtest-ns2")
    host.veth("lcfgtv2", ns)
    host.link("lcfgtbr2")
    sh("ip", "address", "add", "10.213.51.1/24", "dev", "lcfgtv2")
    sh("ip", "link", "set", "lcfgtv2", "up")
    sh("ip", "-n", ns, "address", "add", "10.213.51.2/24", "dev", "lcfgtv2p")
    sh("ip", "-n", ns, "route", "add", "10.213.52.0/24", "via", "10.213.51.1")
    sh("ip", "route", "add", "10.213.53.0/24", "via", "10.213.51.2", "dev", "lcfgtv2")
    params = {"name": "lcfgtbr2", "netdev": "lcfgtv2", "persist": "none"}

    refused = run_module("xen_bridge", params)
    assert refused["failed"] and "migrate_address" in refused["msg"] and "lcfgtv2" in refused["msg"]
    assert link("lcfgtbr2") is None
    assert addresses("lcfgtv2") == ["10.213.51.1/24"]

    params["migrate_address"] = True
    _predicted, applied = converge(params)
    assert "move 10.213.51.1/24 from lcfgtv2 to lcfgtbr2" in only(applied)["actions"]
    assert addresses("lcfgtbr2") == ["10.213.51.1/24"]
    assert addresses("lcfgtv2") == []
    assert bridge_ports("lcfgtbr2") == ["lcfgtv2"]
    routes = ip_json("route", "show", "10.213.53.0/24")
    assert routes and routes[0]["dev"] == "lcfgtbr2" and routes[0]["gateway"] == "10.213.51.2"
    # the host is still reachable on its address, now through the bridge
    sh("ip", "netns", "exec", ns, "busybox", "ping", "-c", "1", "-W", "3", "10.213.51.1")

    back = run_module("xen_bridge", dict(params, state="absent"))
    assert back["changed"]
    assert link("lcfgtbr2") is None
    assert addresses("lcfgtv2") == ["10.213.51.1/24"]
    assert ip_json("route", "show", "10.213.53.0/24")[0]["dev"] == "lcfgtv2"
    sh("ip", "netns", "exec", ns, "busybox", "ping", "-c", "1", "-W", "3", "10.213.51.1")


def test_missing_netdev_fails_unless_created(host):
    host.link("lcfgtbr3")
    host.link("lcfgtmiss0")
    params = {"name": "lcfgtbr3", "netdev": "lcfgtmiss0", "persist": "none"}
    failed = run_module("xen_bridge", params)
    assert failed["failed"] and failed["msg"].startswith("netdev:") and "create_netdev" in failed["msg"]
    assert link("lcfgtbr3") is None

    kind = "dummy" if kernel_has_dummy() else "veth"
    params["create_netdev"] = kind
    _predicted, applied = converge(params)
    assert f"create {kind} interface lcfgtmiss0" in only(applied)["actions"]
    assert link("lcfgtmiss0")["linkinfo"]["info_kind"] == kind
    assert bridge_ports("lcfgtbr3") == ["lcfgtmiss0"]

    gone = run_module("xen_bridge", dict(params, state="absent"))
    assert only(gone)["actions"] == ["delete bridge lcfgtbr3", f"delete {kind} interface lcfgtmiss0"]
    assert link("lcfgtbr3") is None and link("lcfgtmiss0") is None


@pytest.mark.skipif(not kernel_has_dummy(), reason="this kernel has no dummy interface driver")
def test_create_dummy_netdev(host):
    host.link("lcfgtbr4")
    host.link("lcfgtdum0")
    converge({"name": "lcfgtbr4", "netdev": "lcfgtdum0", "create_netdev": "dummy", "persist": "none"})
    assert link("lcfgtdum0")["linkinfo"]["info_kind"] == "dummy"


@pytest.mark.parametrize("kind", ["networkd", "ifupdown"])
def test_bridge_persistence_files(host, tmp_path, kind):
    ns = host.netns(f"lcfgtest-ns{'5' if kind == 'networkd' else '6'}")
    netdev = host.veth(f"lcfgtv{'5' if kind == 'networkd' else '6'}", ns)
    bridge = f"lcfgtbrp{kind[0]}"
    host.link(bridge)
    if kind == "networkd":
        wants = tmp_path / "etc/systemd/system/multi-user.target.wants"
        wants.mkdir(parents=True)
        (wants / "systemd-networkd.service").symlink_to("/lib/systemd/system/systemd-networkd.service")
    else:
        (tmp_path / "etc/network").mkdir(parents=True)
        (tmp_path / "etc/network/interfaces").write_text("source /etc/network/interfaces.d/*\n")
    params = {"name": bridge, "netdev": netdev, "address": "10.213.54.1/24", "config_root": str(tmp_path)}
    _predicted, applied = converge(params)
    assert only(applied)["persist"] == kind
    if kind == "networkd":
        base = tmp_path / "etc/systemd/network"
        netdev_file = (base / f"20-lcfg-xen-{bridge}.netdev").read_text()
        assert f"Name={bridge}" in netdev_file and "Kind=bridge" in netdev_file
        assert "Address=10.213.54.1/24" in (base / f"20-lcfg-xen-{bridge}.network").read_text()
        port = (base / f"20-lcfg-xen-{bridge}-port.network").read_text()
        assert f"Name={netdev}" in port and f"Bridge={bridge}" in port
    else:
        text = (tmp_path / f"etc/network/interfaces.d/lcfg-xen-{bridge}").read_text()
        assert f"auto {bridge}" in text and f"iface {bridge} inet static" in text
        assert "address 10.213.54.1/24" in text and f"bridge_ports {netdev}" in text
    assert addresses(bridge) == ["10.213.54.1/24"]
    written = sorted(str(p) for p in tmp_path.rglob("*lcfg-xen-*"))
    assert applied["diff"]["after"][bridge]["bridge"]["persisted"] == written

    gone = run_module("xen_bridge", dict(params, state="absent", migrate_address=False))
    # the bridge carries an address: deleting it without migrate_address+netdev is refused
    assert gone["failed"] and "migrate_address" in gone["msg"]
    sh("ip", "address", "flush", "dev", bridge)
    gone = run_module("xen_bridge", dict(params, state="absent"))
    assert gone["changed"] and not gone.get("failed")
    assert sorted(tmp_path.rglob("*lcfg-xen-*")) == []


def test_long_custom_bridge_name_is_explained():
    failed = run_module("xen_bridge", {"name": "my-network-bridge", "persist": "none"})
    assert failed["failed"]
    assert failed["msg"].startswith("name:") and "15" in failed["msg"] and "bridge:" in failed["msg"]


def test_custom_bridge_as_libvirt_network(host):
    host.link("lcfgtcustbr")
    host.network("lcfgt-my-network-bridge")
    params = {"name": "lcfgt-my-network-bridge", "bridge": "lcfgtcustbr", "libvirt_network": True, "persist": "none"}
    _predicted, applied = converge(params)
    assert link("lcfgtcustbr")["linkinfo"]["info_kind"] == "bridge"
    xml = virsh("net-dumpxml", "lcfgt-my-network-bridge")
    assert "<forward mode='bridge'/>" in xml and "<bridge name='lcfgtcustbr'/>" in xml
    assert net_info("lcfgt-my-network-bridge")["Active"] == "yes"
    gone = run_module("xen_bridge", dict(params, state="absent"))
    assert gone["changed"]
    assert virsh("net-info", "lcfgt-my-network-bridge", check=False) == ""
    assert link("lcfgtcustbr") is None


# --------------------------------------------------------------------------- libvirt networks


NAT = {
    "name": "lcfgtest-nat",
    "mode": "nat",
    "bridge": "lcfgtbrnat",
    "address": "10.213.60.1/24",
    "dhcp_hosts": [
        {"mac": "52:54:00:13:60:0a", "ip": "10.213.60.10", "name": "lcfgt-g1"},
        {"mac": "52:54:00:13:60:0b", "ip": "10.213.60.11", "name": "lcfgt-g2"},
    ],
}


def test_nat_network_hands_out_reserved_leases_and_updates_live(host):
    host.network("lcfgtest-nat")
    _predicted, applied = converge(NAT)
    assert only(applied)["actions"] == [
        "define libvirt network lcfgtest-nat",
        "set autostart on",
        "start libvirt network lcfgtest-nat",
    ]
    assert only(applied)["bridge"] == "lcfgtbrnat" and only(applied)["vif_script"] == "vif-nat"
    info = net_info("lcfgtest-nat")
    state = (info["Active"], info["Persistent"], info["Autostart"], info["Bridge"])
    assert state == ("yes", "yes", "yes", "lcfgtbrnat")
    assert addresses("lcfgtbrnat") == ["10.213.60.1/24"]
    assert dnsmasq_hosts("lcfgtest-nat") == [
        "52:54:00:13:60:0a,10.213.60.10,lcfgt-g1",
        "52:54:00:13:60:0b,10.213.60.11,lcfgt-g2",
    ]
    nat_rules = sh("iptables", "-t", "nat", "-S").stdout
    assert re.search(r"-s 10\.213\.60\.0/24 ! -d 10\.213\.60\.0/24 .*-j MASQUERADE", nat_rules), nat_rules

    # a client with a reserved MAC gets its reserved address from the network's dnsmasq
    ns = host.netns("lcfgtest-ns7")
    host.veth("lcfgtn7", ns, "lcfgtn7p", mac="52:54:00:13:60:0b")
    sh("ip", "link", "set", "lcfgtn7", "master", "lcfgtbrnat", "up")
    assert dhcp_lease(ns, "lcfgtn7p") == "10.213.60.11"

    # reservations change in place: dnsmasq is reloaded, not restarted, and serves the new one
    pids = dnsmasq_pids("lcfgtest-nat")
    assert pids
    changed = dict(
        NAT, dhcp_hosts=[NAT["dhcp_hosts"][0], {"mac": "52:54:00:13:60:0c", "ip": "10.213.60.12", "name": "lcfgt-g3"}]
    )
    _predicted, applied = converge(changed)
    assert only(applied)["actions"] == [
        "remove DHCP reservation 52:54:00:13:60:0b 10.213.60.11 from lcfgtest-nat (live)",
        "add DHCP reservation 52:54:00:13:60:0c 10.213.60.12 to lcfgtest-nat (live)",
    ]
    assert applied["pending_restart"] == []
    assert dnsmasq_pids("lcfgtest-nat") == pids
    assert dnsmasq_hosts("lcfgtest-nat") == [
        "52:54:00:13:60:0a,10.213.60.10,lcfgt-g1",
        "52:54:00:13:60:0c,10.213.60.12,lcfgt-g3",
    ]
    assert "52:54:00:13:60:0c" in virsh("net-dumpxml", "--inactive", "lcfgtest-nat")
    ns8 = host.netns("lcfgtest-ns8")
    host.veth("lcfgtn8", ns8, "lcfgtn8p", mac="52:54:00:13:60:0c")
    sh("ip", "link", "set", "lcfgtn8", "master", "lcfgtbrnat", "up")
    assert dhcp_lease(ns8, "lcfgtn8p") == "10.213.60.12"

    # renaming a reservation modifies it in place
    renamed = dict(changed, dhcp_hosts=[dict(changed["dhcp_hosts"][0], name="lcfgt-g1b"), changed["dhcp_hosts"][1]])
    applied = run_module("xen_bridge", renamed)
    assert only(applied)["actions"] == [
        "change DHCP reservation 52:54:00:13:60:0a to 10.213.60.10 in lcfgtest-nat (live)"
    ]
    assert "52:54:00:13:60:0a,10.213.60.10,lcfgt-g1b" in dnsmasq_hosts("lcfgtest-nat")
    assert dnsmasq_pids("lcfgtest-nat") == pids

    listed = run_module("xen_bridge_info", {"name": "lcfgtest-nat"})["networks"]
    assert len(listed) == 1
    assert {k: listed[0][k] for k in ("mode", "bridge", "address", "active", "autostart", "persistent")} == {
        "mode": "nat",
        "bridge": "lcfgtbrnat",
        "address": "10.213.60.1/24",
        "active": True,
        "autostart": True,
        "persistent": True,
    }
    assert [h["mac"] for h in listed[0]["dhcp_hosts"]] == ["52:54:00:13:60:0a", "52:54:00:13:60:0c"]


def test_nat_network_readdressing_needs_restart(host):
    host.network("lcfgtest-nat2")
    params = {
        "name": "lcfgtest-nat2",
        "mode": "nat",
        "bridge": "lcfgtbrnat2",
        "address": "10.213.61.1/24",
        "dhcp_range": {"start": "10.213.61.100", "end": "10.213.61.150"},
    }
    converge(params)
    # the DHCP range changes live: libvirt restarts dnsmasq, but not the network (same bridge,
    # so guests' interfaces stay attached)
    params["dhcp_range"] = {"start": "10.213.61.100", "end": "10.213.61.160"}
    ifindex = link("lcfgtbrnat2")["ifindex"]
    _predicted, applied = converge(params)
    assert applied["pending_restart"] == []
    assert "dhcp-range=10.213.61.100,10.213.61.160" in (DNSMASQ_DIR / "lcfgtest-nat2.conf").read_text()
    assert link("lcfgtbrnat2")["ifindex"] == ifindex

    moved = dict(params, address="10.213.62.1/24", dhcp_range={"start": "10.213.62.100", "end": "10.213.62.160"})
    applied = run_module("xen_bridge", moved, diff=True)
    assert applied["changed"] and applied["pending_restart"] == ["lcfgtest-nat2"]
    assert only(applied)["pending_restart"] == ["lcfgtest-nat2"]
    assert any("restart" in str(w) for w in applied.get("warnings", []))
    assert addresses("lcfgtbrnat2") == ["10.213.61.1/24"]  # still running the old definition
    assert "10.213.62.1" in virsh("net-dumpxml", "--inactive", "lcfgtest-nat2")
    again = run_module("xen_bridge", moved)
    assert again["changed"] is False and again["pending_restart"] == ["lcfgtest-nat2"]

    restarted = run_module("xen_bridge", dict(moved, restart=True))
    assert restarted["changed"] and restarted["pending_restart"] == []
    assert addresses("lcfgtbrnat2") == ["10.213.62.1/24"]
    assert run_module("xen_bridge", dict(moved, restart=True))["changed"] is False


def test_routed_network(host):
    host.network("lcfgtest-route")
    params = {
        "name": "lcfgtest-route",
        "mode": "route",
        "bridge": "lcfgtbrrt",
        "address": "10.213.70.1/24",
        "dhcp_hosts": [{"mac": "52:54:00:13:70:0a", "ip": "10.213.70.10"}],
    }
    _predicted, applied = converge(params)
    assert only(applied)["vif_script"] == "vif-route"
    assert "<forward mode='route'/>" in virsh("net-dumpxml", "lcfgtest-route")
    routes = ip_json("route", "show", "10.213.70.0/24")
    assert routes and routes[0]["dev"] == "lcfgtbrrt"
    nat_rules = sh("iptables", "-t", "nat", "-S").stdout
    assert "10.213.70.0/24" not in nat_rules  # routed, not masqueraded
    assert "10.213.70.0/24" in sh("iptables", "-S").stdout  # forwarding allowed for the subnet
    ns = host.netns("lcfgtest-ns9")
    host.veth("lcfgtn9", ns, "lcfgtn9p", mac="52:54:00:13:70:0a")
    sh("ip", "link", "set", "lcfgtn9", "master", "lcfgtbrrt", "up")
    assert dhcp_lease(ns, "lcfgtn9p") == "10.213.70.10"


def test_several_networks_in_one_call(host):
    for name in ("lcfgtxbr0", "lcfgtxbr1", "lcfgtxeth0", "lcfgtxeth1"):
        host.link(name)
    host.network("lcfgtest-natx")
    networks = [
        {"name": "lcfgtxbr0", "netdev": "lcfgtxeth0", "create_netdev": "veth", "persist": "none"},
        {"name": "lcfgtxbr1", "netdev": "lcfgtxeth1", "create_netdev": "veth", "persist": "none"},
        {
            "name": "lcfgtest-natx",
            "mode": "nat",
            "bridge": "lcfgtbrnatx",
            "address": "10.213.63.1/24",
            "dhcp_hosts": [{"mac": "00:16:2a:24:a3:7c", "ip": "10.213.63.2", "name": "node1"}],
        },
    ]
    predicted = run_module("xen_bridge", {"networks": networks}, check=True, diff=True)
    applied = run_module("xen_bridge", {"networks": networks}, diff=True)
    assert predicted["actions"] == applied["actions"] and applied["changed"]
    assert set(applied["diff"]["after"]) == {"lcfgtxbr0", "lcfgtxbr1", "lcfgtest-natx"}
    assert [n["name"] for n in applied["results"]] == ["lcfgtxbr0", "lcfgtxbr1", "lcfgtest-natx"]
    assert [n["bridge"] for n in applied["results"]] == ["lcfgtxbr0", "lcfgtxbr1", "lcfgtbrnatx"]
    assert applied["actions"] == [f"{n['name']}: {action}" for n in applied["results"] for action in n["actions"]]
    assert bridge_ports("lcfgtxbr0") == ["lcfgtxeth0"] and bridge_ports("lcfgtxbr1") == ["lcfgtxeth1"]
    assert net_info("lcfgtest-natx")["Active"] == "yes"
    assert run_module("xen_bridge", {"networks": networks})["changed"] is False

    info = run_module("xen_bridge_info", {})
    assert {"lcfgtxbr0", "lcfgtxbr1", "lcfgtbrnatx"} <= {b["name"] for b in info["bridges"]}
    assert "lcfgtest-natx" in {n["name"] for n in info["networks"]}

    gone = run_module("xen_bridge", {"networks": [dict(n, state="absent") for n in networks]})
    assert gone["changed"]
    assert link("lcfgtxbr0") is None and link("lcfgtxeth0") is None and link("lcfgtbrnatx") is None
    assert virsh("net-info", "lcfgtest-natx", check=False) == ""


def test_bad_input_changes_nothing(host):
    host.link("lcfgtybr0")
    host.network("lcfgtest-naty")
    networks = [
        {"name": "lcfgtybr0", "persist": "none"},
        {
            "name": "lcfgtest-naty",
            "mode": "nat",
            "address": "10.213.64.1/24",
            "dhcp_hosts": [{"mac": "52:54:00:13:64:0a", "ip": "10.213.99.10"}],
        },
    ]
    failed = run_module("xen_bridge", {"networks": networks})
    assert failed["failed"] and failed["msg"].startswith("networks[1].dhcp_hosts[0].ip:")
    assert link("lcfgtybr0") is None
    # a missing address for a new network is found at planning time, still before any change
    networks[1] = {"name": "lcfgtest-naty", "mode": "nat"}
    failed = run_module("xen_bridge", {"networks": networks})
    assert failed["failed"] and failed["msg"].startswith("networks[1].address:")
    assert link("lcfgtybr0") is None
    assert virsh("net-info", "lcfgtest-naty", check=False) == ""


def test_xen_vif_script_must_exist():
    failed = run_module(
        "xen_bridge",
        {"name": "lcfgtbrxen", "uri": "xen:///system", "persist": "none", "vif_script": "lcfgt-no-such-script"},
    )
    assert failed["failed"] and failed["msg"].startswith("vif_script:")
    assert "/etc/xen/scripts/lcfgt-no-such-script" in failed["msg"]
    assert link("lcfgtbrxen") is None


GUEST_XML = """<domain type='qemu'><name>lcfgtest-netdom</name><memory unit='MiB'>32</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type><boot dev='network'/></os>
<devices><interface type='network'><source network='lcfgtest-rst'/><model type='e1000'/></interface></devices>
</domain>"""


@pytest.fixture
def running_guest():
    """A diskless transient QEMU guest (it only PXE-loops) with one NIC on lcfgtest-rst."""
    path = Path("/tmp/lcfgtest-netdom.xml")
    path.write_text(GUEST_XML)
    yield lambda: virsh("create", str(path))
    virsh("destroy", "lcfgtest-netdom", check=False)
    path.unlink()


def test_restart_reattaches_running_guests(host, running_guest):
    host.network("lcfgtest-rst")
    params = {"name": "lcfgtest-rst", "mode": "nat", "bridge": "lcfgtbrrst", "address": "10.213.90.1/24"}
    converge(params)
    running_guest()
    tap = re.search(r"<target dev='([^']+)'", virsh("dumpxml", "lcfgtest-netdom")).group(1)
    assert tap in bridge_ports("lcfgtbrrst")

    moved = dict(params, address="10.213.91.1/24", restart=True)
    predicted = run_module("xen_bridge", moved, check=True)
    applied = run_module("xen_bridge", moved)
    assert predicted["actions"] == applied["actions"]
    assert only(applied)["actions"] == [
        "redefine libvirt network lcfgtest-rst (address)",
        "restart libvirt network lcfgtest-rst and reattach running guests' interfaces",
    ]
    assert addresses("lcfgtbrrst") == ["10.213.91.1/24"]
    # libvirt's restart recreated the bridge without the guest's tap; the module put it back
    assert tap in bridge_ports("lcfgtbrrst")


def test_overlapping_subnet_is_refused_before_defining(host):
    host.network("lcfgtest-ovl1")
    host.network("lcfgtest-ovl2")
    converge({"name": "lcfgtest-ovl1", "mode": "nat", "bridge": "lcfgtbrovl1", "address": "10.213.92.1/24"})
    failed = run_module(
        "xen_bridge", {"name": "lcfgtest-ovl2", "mode": "route", "bridge": "lcfgtbrovl2", "address": "10.213.92.129/25"}
    )
    assert failed["failed"] and failed["msg"].startswith("address:") and "lcfgtest-ovl1" in failed["msg"]
    assert virsh("net-info", "lcfgtest-ovl2", check=False) == ""


def test_libvirt_network_bridge_name_must_be_free(host):
    host.link("lcfgtbrtaken")
    host.network("lcfgtest-taken")
    sh("ip", "link", "add", "lcfgtbrtaken", "type", "bridge")
    failed = run_module(
        "xen_bridge", {"name": "lcfgtest-taken", "mode": "nat", "bridge": "lcfgtbrtaken", "address": "10.213.93.1/24"}
    )
    assert failed["failed"] and failed["msg"].startswith("bridge:") and "lcfgtbrtaken" in failed["msg"]
    assert virsh("net-info", "lcfgtest-taken", check=False) == ""
