"""Unit tests for network/: validation, libvirt network XML, network plans (pure and against
libvirt's test:///default driver), bridge plans against a fake iproute2, persistence files."""

from __future__ import annotations

import json

import pytest
from lxml import etree

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import Conflict, LibvirtFailure, ValidationError
from ansible_collections.lcfg.xen.plugins.module_utils.network.bridge import (
    BRIDGE_MARK,
    apply_bridge,
    check_bridge_name,
    plan_bridge,
)
from ansible_collections.lcfg.xen.plugins.module_utils.network.libvirt_network import (
    apply_network,
    check_mode_kept,
    check_subnet_free,
    list_networks,
    plan_network,
    read_network,
)
from ansible_collections.lcfg.xen.plugins.module_utils.network.persist import (
    detect_persist,
    render_persist_files,
)
from ansible_collections.lcfg.xen.plugins.module_utils.network.request import (
    check_vif_script,
    normalise_request,
    normalise_requests,
)
from ansible_collections.lcfg.xen.plugins.module_utils.network.xml import (
    parse_network_xml,
    render_network_xml,
)

libvirt = pytest.importorskip("libvirt")


def request(base=None, **params):
    return normalise_request({**(base or {}), **params})


# --------------------------------------------------------------------------- validation


def test_bridge_defaults():
    req = request(name="xenbr0", netdev="eth0")
    assert req["mode"] == "bridge" and req["bridge"] == "xenbr0" and req["netdev"] == "eth0"
    assert req["state"] == "present" and req["persist"] == "auto" and req["create_netdev"] == "none"
    assert req["migrate_address"] is False and req["autostart"] is True and req["restart"] is False
    assert req["vif_script"] == "vif-bridge"


def test_vif_script_defaults_follow_mode():
    assert request(name="lcfg-nat", mode="nat")["vif_script"] == "vif-nat"
    assert request(name="lcfg-route", mode="route")["vif_script"] == "vif-route"
    assert request(name="x", vif_script="my-vif")["vif_script"] == "my-vif"


def test_long_bridge_name_explains_the_fix():
    with pytest.raises(ValidationError) as err:
        request(name="my-network-bridge")
    assert err.value.parameter == "name"
    assert "17 characters" in str(err.value) and "bridge:" in str(err.value) and "libvirt_network" in str(err.value)
    req = request(name="my-network-bridge", bridge="mynetbr", libvirt_network=True)
    assert req["bridge"] == "mynetbr" and req["name"] == "my-network-bridge"


@pytest.mark.parametrize(
    "params, parameter",
    [
        ({"name": "x", "mode": "switch"}, "mode"),
        ({"name": "x", "state": "gone"}, "state"),
        ({"mode": "nat"}, "name"),
        ({"name": "br0", "netdev": "br0"}, "netdev"),
        ({"name": "br0", "netdev": "a/b"}, "netdev"),
        ({"name": "br0", "bridge": "x" * 16}, "bridge"),
        ({"name": "lcfg-nat", "mode": "nat", "address": "10.0.0.1"}, "address"),
        ({"name": "lcfg-nat", "mode": "nat", "address": "10.0.0.0/24"}, "address"),
        ({"name": "lcfg-nat", "mode": "nat", "address": "10.0.0.300/24"}, "address"),
        (
            {
                "name": "lcfg-nat",
                "mode": "nat",
                "address": "10.0.0.1/24",
                "dhcp_hosts": [{"mac": "00:16:3e:00:00:01", "ip": "10.0.1.5"}],
            },
            "dhcp_hosts[0].ip",
        ),
        (
            {"name": "lcfg-nat", "mode": "nat", "dhcp_hosts": [{"mac": "01:16:3e:00:00:01", "ip": "10.0.0.5"}]},
            "dhcp_hosts[0].mac",
        ),
        ({"name": "lcfg-nat", "mode": "nat", "dhcp_hosts": [{"mac": "00:16:3e:00:00:01"}]}, "dhcp_hosts[0]"),
        (
            {
                "name": "lcfg-nat",
                "mode": "nat",
                "dhcp_hosts": [
                    {"mac": "00:16:3e:00:00:01", "ip": "10.0.0.5"},
                    {"mac": "00:16:3E:00:00:01", "ip": "10.0.0.6"},
                ],
            },
            "dhcp_hosts[1].mac",
        ),
        (
            {
                "name": "lcfg-nat",
                "mode": "nat",
                "dhcp_hosts": [
                    {"mac": "00:16:3e:00:00:01", "ip": "10.0.0.5"},
                    {"mac": "00:16:3e:00:00:02", "ip": "10.0.0.5"},
                ],
            },
            "dhcp_hosts[1].ip",
        ),
        (
            {
                "name": "lcfg-nat",
                "mode": "nat",
                "dhcp_hosts": [{"mac": "00:16:3e:00:00:01", "ip": "10.0.0.5", "name": "bad name"}],
            },
            "dhcp_hosts[0].name",
        ),
        (
            {
                "name": "lcfg-nat",
                "mode": "nat",
                "address": "10.0.0.1/24",
                "dhcp_range": {"start": "10.0.0.200", "end": "10.0.0.100"},
            },
            "dhcp_range",
        ),
        (
            {
                "name": "lcfg-nat",
                "mode": "nat",
                "address": "10.0.0.1/24",
                "dhcp_range": {"start": "10.0.0.100", "end": "10.0.9.100"},
            },
            "dhcp_range.end",
        ),
        ({"name": "xenbr0", "dhcp_hosts": [{"mac": "00:16:3e:00:00:01", "ip": "10.0.0.5"}]}, "dhcp_hosts"),
        ({"name": "lcfg-nat", "mode": "nat", "netdev": "eth0", "create_netdev": "dummy"}, "create_netdev"),
        ({"name": "bad name", "mode": "nat"}, "name"),
        ({"name": "lcfg-nat\n", "mode": "nat"}, "name"),  # spec/schema.NETWORK_RE ends with \Z, not $
        ({"name": "xenbr0", "vif_script": "scripts/vif"}, "vif_script"),
    ],
)
def test_bad_input_names_the_parameter(params, parameter):
    with pytest.raises(ValidationError) as err:
        normalise_request(params)
    assert err.value.parameter == parameter


def test_dhcp_hosts_are_normalised_and_sorted():
    req = request(
        name="lcfg-nat",
        mode="nat",
        address="10.0.0.254/24",
        dhcp_hosts=[
            {"mac": "00-16-2A-24-A3-7D", "ip": "10.0.0.2", "name": "node2"},
            {"mac": "00:16:2a:24:a3:7c", "ip": "10.0.0.1"},
        ],
        dhcp_range="10.0.0.100-10.0.0.200",
    )
    assert req["dhcp_hosts"] == [
        {"mac": "00:16:2a:24:a3:7c", "ip": "10.0.0.1", "name": None},
        {"mac": "00:16:2a:24:a3:7d", "ip": "10.0.0.2", "name": "node2"},
    ]
    assert req["dhcp_range"] == {"start": "10.0.0.100", "end": "10.0.0.200"}


def test_a_reservation_of_the_gateway_address_is_refused():
    # The seed's node1 is 10.0.0.1, which once was also the NAT network's own address.
    with pytest.raises(ValidationError) as err:
        request(
            name="lcfg-nat",
            mode="nat",
            address="10.0.0.1/24",
            dhcp_hosts=[
                {"mac": "00:16:2a:24:a3:7d", "ip": "10.0.0.2", "name": "node2"},
                {"mac": "00:16:2a:24:a3:7c", "ip": "10.0.0.1", "name": "node1"},
            ],
        )
    assert err.value.parameter == "dhcp_hosts[1].ip"
    assert "gateway" in err.value.message and "00:16:2a:24:a3:7c" in err.value.message
    with pytest.raises(ValidationError) as err:
        normalise_requests(
            [
                {
                    "name": "lcfg-nat",
                    "mode": "nat",
                    "address": "10.0.0.254/24",
                    "dhcp_hosts": [{"mac": "00:16:2a:24:a3:7c", "ip": "10.0.0.254"}],
                }
            ]
        )
    assert err.value.parameter == "networks[0].dhcp_hosts[0].ip"


def test_several_requests_must_not_clash():
    with pytest.raises(ValidationError) as err:
        normalise_requests([{"name": "xenbr0"}, {"name": "xenbr0"}])
    assert err.value.parameter == "networks[1].name"
    with pytest.raises(ValidationError) as err:
        normalise_requests([{"name": "xenbr0"}, {"name": "lcfg-nat", "mode": "nat", "bridge": "xenbr0"}])
    assert err.value.parameter == "networks[1].bridge"
    with pytest.raises(ValidationError) as err:
        normalise_requests([{"name": "xenbr0"}, {"name": "lcfg-nat", "mode": "nat", "address": "10.0.0.1"}])
    assert err.value.parameter == "networks[1].address"


def test_vif_script_checked_only_on_local_xen():
    req = request(name="xenbr0", vif_script="my-vif")
    seen = []

    def exists(path):
        seen.append(path)
        return False

    with pytest.raises(ValidationError) as err:
        check_vif_script(req, "xen:///system", exists)
    assert err.value.parameter == "vif_script" and seen == ["/etc/xen/scripts/my-vif"]
    assert check_vif_script(req, "xen:///system", lambda p: True) == "/etc/xen/scripts/my-vif"
    seen.clear()
    check_vif_script(req, "qemu:///system", exists)
    check_vif_script(req, "xen+ssh://root@dom0/system", exists)
    assert seen == []
    absolute = request(name="xenbr0", vif_script="/opt/xen/vif-custom")
    assert check_vif_script(absolute, "xen:///system", lambda p: p == "/opt/xen/vif-custom")


# --------------------------------------------------------------------------- network XML


STATE = {
    "name": "lcfg-nat",
    "mode": "nat",
    "bridge": "lcfgnat0",
    "netdev": None,
    "address": "10.0.0.254/24",
    "dhcp_range": {"start": "10.0.0.100", "end": "10.0.0.200"},
    "dhcp_hosts": [{"mac": "00:16:2a:24:a3:7c", "ip": "10.0.0.1", "name": "node1"}],
    "tftp_root": None,
    "boot_file": None,
}


def test_render_parse_round_trip():
    xml = render_network_xml(STATE)
    root = etree.fromstring(xml)
    assert root.find("forward").get("mode") == "nat"
    assert root.find("ip").get("prefix") == "24"
    parsed = parse_network_xml(xml)
    parsed.pop("uuid")
    assert parsed == STATE


def test_parse_netmask_and_libvirt_additions():
    xml = """<network><name>default</name><uuid>1de3b0fa-f4a1-4561-ba1b-857bd1ad0fc3</uuid>
      <forward mode='nat'><nat><port start='1024' end='65535'/></nat></forward>
      <bridge name='virbr0' stp='on' delay='0'/><mac address='52:54:00:d5:3b:f8'/>
      <ip address='192.168.122.1' netmask='255.255.255.0'><dhcp>
      <range start='192.168.122.2' end='192.168.122.254'/>
      <host mac='52:54:00:AA:BB:01' name='g1' ip='192.168.122.10'/></dhcp></ip></network>"""
    parsed = parse_network_xml(xml)
    assert parsed["address"] == "192.168.122.1/24" and parsed["bridge"] == "virbr0"
    assert parsed["dhcp_hosts"] == [{"mac": "52:54:00:aa:bb:01", "ip": "192.168.122.10", "name": "g1"}]
    assert parsed["uuid"] == "1de3b0fa-f4a1-4561-ba1b-857bd1ad0fc3"


def test_render_on_base_keeps_unmanaged_parts():
    base = """<network><name>lcfg-nat</name><uuid>1de3b0fa-f4a1-4561-ba1b-857bd1ad0fc3</uuid>
      <forward mode='nat'/><bridge name='lcfgnat0'/><mac address='52:54:00:d5:3b:f8'/>
      <dns><host ip='10.0.0.7'><hostname>extra</hostname></host></dns>
      <ip address='10.0.0.254' netmask='255.255.255.0'><dhcp><range start='10.0.0.2' end='10.0.0.9'/></dhcp></ip>
      <ip family='ipv6' address='fd00::1' prefix='64'/></network>"""
    xml = render_network_xml(
        dict(STATE, address="10.0.1.254/24", dhcp_range={"start": "10.0.1.100", "end": "10.0.1.200"}, dhcp_hosts=[]),
        base,
    )
    root = etree.fromstring(xml)
    assert root.findtext("uuid") == "1de3b0fa-f4a1-4561-ba1b-857bd1ad0fc3"
    assert root.find("mac").get("address") == "52:54:00:d5:3b:f8"
    assert root.find("dns/host/hostname").text == "extra"
    ips = root.findall("ip")
    assert ips[0].get("address") == "10.0.1.254" and ips[0].get("prefix") == "24" and "netmask" not in ips[0].attrib
    assert ips[1].get("address") == "fd00::1"
    assert [r.get("start") for r in ips[0].findall("dhcp/range")] == ["10.0.1.100"]


def test_render_bridge_mode_network():
    xml = render_network_xml({"name": "my-network-bridge", "mode": "bridge", "bridge": "mynetbr"})
    root = etree.fromstring(xml)
    assert root.find("forward").get("mode") == "bridge" and root.find("bridge").get("name") == "mynetbr"
    assert root.find("ip") is None


# --------------------------------------------------------------------------- network plans (pure)


def record(config: dict, active=True, autostart=True, persistent=True, live=None) -> dict:
    config = dict(config, uuid=None)
    return {
        "config": config,
        "live": (live or config) if active else None,
        "active": active,
        "autostart": autostart,
        "persistent": persistent,
        "xml": render_network_xml(config),
    }


NAT_REQ = {
    "name": "lcfg-nat",
    "mode": "nat",
    "bridge": "lcfgnat0",
    "address": "10.0.0.254/24",
    "dhcp_range": {"start": "10.0.0.100", "end": "10.0.0.200"},
    "dhcp_hosts": [{"mac": "00:16:2a:24:a3:7c", "ip": "10.0.0.1", "name": "node1"}],
}


def acting(plan) -> list:
    """The steps of a network plan that do something, in the order apply_network runs them."""
    return [
        name
        for name, acts in (
            ("stop", plan.stop),
            ("undefine", plan.undefine),
            ("define", plan.define_xml is not None),
            ("update", bool(plan.dhcp_updates)),
            ("autostart", plan.autostart is not None),
            ("start", plan.start),
            ("restart", plan.restart),
        )
        if acts
    ]


def test_plan_new_network():
    plan = plan_network(request(**NAT_REQ), None)
    assert plan.actions == ["define libvirt network lcfg-nat", "set autostart on", "start libvirt network lcfg-nat"]
    assert acting(plan) == ["define", "autostart", "start"] and plan.autostart is True
    assert plan.before is None and plan.after["address"] == "10.0.0.254/24"
    assert plan.after["active"] is True and plan.pending_restart is False


def test_plan_unchanged_network_is_empty():
    plan = plan_network(request(**NAT_REQ), record(STATE))
    assert plan.actions == [] and acting(plan) == [] and plan.before == plan.after


def test_plan_none_means_leave_alone():
    plan = plan_network(request(name="lcfg-nat", mode="nat"), record(STATE))
    assert plan.actions == [] and plan.after["dhcp_hosts"] == STATE["dhcp_hosts"]


def test_plan_hosts_change_live_in_order():
    hosts = [
        {"mac": "00:16:2a:24:a3:7c", "ip": "10.0.0.11", "name": "node1"},
        {"mac": "00:16:2a:24:a3:7e", "ip": "10.0.0.3", "name": "node3"},
    ]
    current = dict(
        STATE, dhcp_hosts=STATE["dhcp_hosts"] + [{"mac": "00:16:2a:24:a3:7d", "ip": "10.0.0.2", "name": "node2"}]
    )
    plan = plan_network(request(NAT_REQ, dhcp_hosts=hosts), record(current))
    assert acting(plan) == ["update"]
    assert [(update.command, update.section) for update in plan.dhcp_updates] == [
        ("delete", "host"),
        ("modify", "host"),
        ("add-last", "host"),
    ]
    assert "00:16:2a:24:a3:7d" in plan.dhcp_updates[0].xml and "10.0.0.11" in plan.dhcp_updates[1].xml
    assert plan.pending_restart is False
    assert plan.after["dhcp_hosts"] == sorted(hosts, key=lambda h: h["mac"])


def test_plan_range_change_is_live():
    plan = plan_network(request(NAT_REQ, dhcp_range={"start": "10.0.0.50", "end": "10.0.0.60"}), record(STATE))
    assert [(update.command, update.section) for update in plan.dhcp_updates] == [
        ("delete", "range"),
        ("add-last", "range"),
    ]
    assert plan.pending_restart is False


def test_plan_address_change_pends_or_restarts():
    moved = {**NAT_REQ, "address": "10.0.0.1/24", "dhcp_hosts": []}
    plan = plan_network(request(moved), record(STATE))
    assert plan.actions[0] == "redefine libvirt network lcfg-nat (address)"
    assert acting(plan) == ["define"]
    assert plan.pending_restart is True and "restart: true" in plan.warnings[0]
    plan = plan_network(request(moved, restart=True), record(STATE))
    assert acting(plan) == ["define", "restart"]  # restart: stop, start, reattach the guests
    assert plan.pending_restart is False


def test_plan_reports_a_pending_definition_without_change():
    saved = dict(STATE, address="10.0.0.1/24", dhcp_hosts=[], dhcp_range={"start": "10.0.0.100", "end": "10.0.0.200"})
    rec = record(saved, live=dict(STATE, uuid=None))
    plan = plan_network(request(NAT_REQ, address="10.0.0.1/24", dhcp_hosts=[]), rec)
    assert plan.actions == [] and plan.pending_restart is True


def test_plan_inactive_network_is_started_and_autostart_set():
    plan = plan_network(request(NAT_REQ, autostart=False), record(STATE, active=False))
    assert plan.actions == ["set autostart off", "start libvirt network lcfg-nat"]


def test_plan_absent():
    plan = plan_network(request(name="lcfg-nat", mode="nat", state="absent"), record(STATE))
    assert acting(plan) == ["stop", "undefine"] and plan.after is None
    assert acting(plan_network(request(name="lcfg-nat", mode="nat", state="absent"), None)) == []


def test_plan_new_network_needs_an_address():
    with pytest.raises(ValidationError) as err:
        plan_network(request(name="lcfg-nat", mode="nat"), None, prefix="networks[2].")
    assert err.value.parameter == "networks[2].address"


# --------------------------------------------------------------------------- against test:///default


@pytest.fixture
def conn():
    connection = libvirt.open("test:///default")
    yield connection
    connection.close()


def converge_net(conn, req):
    plan = plan_network(req, read_network(conn, req["name"]))
    apply_network(conn, plan)
    return plan


def test_network_lifecycle_on_test_driver(conn):
    req = request(NAT_REQ, name="lcfgt-nat")
    plan = converge_net(conn, req)
    assert plan.actions[0] == "define libvirt network lcfgt-nat"
    rec = read_network(conn, "lcfgt-nat")
    assert rec["active"] and rec["autostart"] and rec["persistent"]
    assert rec["config"]["dhcp_hosts"] == req["dhcp_hosts"]
    assert converge_net(conn, req).actions == []

    hosts = req["dhcp_hosts"] + [{"mac": "00:16:2a:24:a3:7d", "ip": "10.0.0.2", "name": "node2"}]
    req2 = request(NAT_REQ, name="lcfgt-nat", dhcp_hosts=hosts)
    plan = converge_net(conn, req2)
    assert plan.actions == ["add DHCP reservation 00:16:2a:24:a3:7d 10.0.0.2 to lcfgt-nat (live)"]
    rec = read_network(conn, "lcfgt-nat")
    assert [h["mac"] for h in rec["config"]["dhcp_hosts"]] == ["00:16:2a:24:a3:7c", "00:16:2a:24:a3:7d"]
    assert [h["mac"] for h in rec["live"]["dhcp_hosts"]] == ["00:16:2a:24:a3:7c", "00:16:2a:24:a3:7d"]
    assert converge_net(conn, req2).actions == []

    listed = [n for n in list_networks(conn) if n["name"] == "lcfgt-nat"]
    assert listed[0]["mode"] == "nat" and listed[0]["active"] and listed[0]["vif_script"] == "vif-nat"

    gone = request(name="lcfgt-nat", mode="nat", state="absent")
    converge_net(conn, gone)
    assert read_network(conn, "lcfgt-nat") is None


def test_check_mode_walks_the_steps_and_changes_nothing(conn):
    req = request(NAT_REQ, name="lcfgt-nat-check")
    plan = plan_network(req, None)
    assert apply_network(None, plan, check_mode=True) == []  # no connection needed, nothing done
    assert read_network(conn, "lcfgt-nat-check") is None


# --------------------------------------------------------------------------- bridges with a fake iproute2


def addr(local, prefix, scope="global", family="inet", **extra):
    return dict({"family": family, "local": local, "prefixlen": prefix, "scope": scope}, **extra)


def entry(name, kind=None, up=True, master=None, addrs=(), **extra):
    item = {
        "ifname": name,
        "flags": ["BROADCAST", "MULTICAST"] + (["UP"] if up else []),
        "address": "52:54:00:00:00:01",
        "addr_info": list(addrs),
    }
    if kind:
        item["linkinfo"] = {"info_kind": kind, "info_data": {"stp_state": 0}}
    if master:
        item["master"] = master
    item.update(extra)
    return item


class FakeIp:
    """Answers the read-only ``ip -j`` calls from a list of links; records everything else."""

    def __init__(self, links, routes=None):
        self.links = {item["ifname"]: item for item in links}
        self.routes = routes or {}
        self.calls = []

    def __call__(self, argv):
        if argv[:5] == ["ip", "-j", "-d", "addr", "show"] and len(argv) == 5:
            return 0, json.dumps(list(self.links.values())), ""
        if argv[:3] == ["ip", "-j", "-4"] or argv[:3] == ["ip", "-j", "-6"]:
            return 0, json.dumps(self.routes.get((argv[2], argv[-1]), [])), ""
        self.calls.append(argv)
        return 0, "", ""


def test_plan_new_bridge_commands():
    fake = FakeIp([entry("lo"), entry("eth1", up=False)])
    plan = plan_bridge(request(name="xenbr1", netdev="eth1", persist="none"), fake)
    assert plan.commands == [
        ["ip", "link", "add", "name", "xenbr1", "type", "bridge", "stp_state", "0", "forward_delay", "0"],
        ["ip", "link", "set", "dev", "xenbr1", "alias", "lcfg.xen bridge"],
        ["ip", "link", "set", "dev", "eth1", "master", "xenbr1"],
        ["ip", "link", "set", "dev", "eth1", "up"],
        ["ip", "link", "set", "dev", "xenbr1", "up"],
    ]
    assert plan.before is None
    assert plan.after["ports"] == ["eth1"] and plan.after["state"] == "up"
    assert fake.calls == []  # planning only reads
    # check mode walks the same steps, runs nothing and ends where the real run would
    assert apply_bridge(plan, fake, check_mode=True) == (True, dict(plan.after, persisted=[]))
    assert fake.calls == []


def test_plan_existing_bridge_is_a_no_op_and_keeps_vifs():
    fake = FakeIp(
        [
            entry("xenbr0", "bridge", ifalias=BRIDGE_MARK),
            entry("eth0", master="xenbr0"),
            entry("vif3.0", master="xenbr0"),
        ]
    )
    plan = plan_bridge(request(name="xenbr0", netdev="eth0", persist="none"), fake)
    assert plan.commands == [] and plan.actions == []
    assert plan.before["ports"] == ["eth0", "vif3.0"] == plan.after["ports"]


def test_plan_refuses_to_cut_an_addressed_netdev():
    fake = FakeIp([entry("eth0", addrs=[addr("192.168.1.10", 24), addr("fe80::1", 64, "link", "inet6")])])
    with pytest.raises(Conflict) as err:
        plan_bridge(request(name="xenbr0", netdev="eth0", persist="none"), fake)
    assert "192.168.1.10/24" in str(err.value) and "migrate_address: true" in str(err.value)


def test_plan_migrates_address_and_routes():
    fake = FakeIp(
        [entry("eth0", addrs=[addr("192.168.1.10", 24)])],
        routes={
            ("-4", "eth0"): [
                {"dst": "default", "gateway": "192.168.1.1", "protocol": "static"},
                {"dst": "192.168.1.0/24", "protocol": "kernel", "scope": "link"},
            ]
        },
    )
    plan = plan_bridge(request(name="xenbr0", netdev="eth0", migrate_address=True, persist="none"), fake)
    assert ["ip", "address", "del", "192.168.1.10/24", "dev", "eth0"] in plan.commands
    assert ["ip", "address", "add", "192.168.1.10/24", "dev", "xenbr0"] in plan.commands
    assert plan.commands[-1] == ["ip", "-4", "route", "replace", "default", "via", "192.168.1.1", "dev", "xenbr0"]
    assert plan.commands.index(["ip", "link", "set", "dev", "xenbr0", "up"]) < len(plan.commands) - 1
    assert plan.after["addresses"] == ["192.168.1.10/24"]


@pytest.mark.parametrize(
    "links, problem",
    [
        ([entry("xenbr0"), entry("eth0")], "not a bridge"),
        ([entry("br9", "bridge"), entry("eth0", master="br9")], "already a port of bridge br9"),
        ([entry("eth0", "bridge")], "itself a bridge"),
    ],
)
def test_plan_bridge_conflicts(links, problem):
    with pytest.raises(Conflict) as err:
        plan_bridge(request(name="xenbr0", netdev="eth0", persist="none"), FakeIp(links))
    assert problem in str(err.value)


def test_plan_missing_netdev():
    with pytest.raises(ValidationError) as err:
        plan_bridge(request(name="xenbr0", netdev="eth7", persist="none"), FakeIp([]))
    assert err.value.parameter == "netdev" and "create_netdev" in str(err.value)
    plan = plan_bridge(request(name="xenbr0", netdev="eth7", create_netdev="dummy", persist="none"), FakeIp([]))
    assert plan.commands[0] == ["ip", "link", "add", "eth7", "type", "dummy"]
    plan = plan_bridge(request(name="xenbr0", netdev="eth7", create_netdev="veth", persist="none"), FakeIp([]))
    assert plan.commands[0] == ["ip", "link", "add", "eth7", "type", "veth", "peer", "name", "eth7-p"]


def test_plan_absent_bridge_refuses_to_drop_addresses():
    links = [
        entry("xenbr0", "bridge", addrs=[addr("10.1.1.1", 24)], ifalias=BRIDGE_MARK),
        entry("eth0", master="xenbr0"),
    ]
    with pytest.raises(Conflict):
        plan_bridge(request(name="xenbr0", netdev="eth0", state="absent", persist="none"), FakeIp(links))
    plan = plan_bridge(
        request(name="xenbr0", netdev="eth0", state="absent", migrate_address=True, persist="none"), FakeIp(links)
    )
    assert plan.commands == [
        ["ip", "address", "del", "10.1.1.1/24", "dev", "xenbr0"],
        ["ip", "address", "add", "10.1.1.1/24", "dev", "eth0"],
        ["ip", "link", "del", "dev", "xenbr0"],
    ]


def test_an_unmarked_existing_bridge_is_not_changed_or_deleted_unless_adopted():
    admin = [entry("xenbr1", "bridge", up=False), entry("adm0", "veth", master="xenbr1")]
    # converging: a stand-in would be enslaved and the downed bridge brought up
    standin = dict(name="xenbr1", netdev="lcfg-eth1", create_netdev="veth", persist="none")
    with pytest.raises(Conflict) as err:
        plan_bridge(request(**standin), FakeIp(admin))
    assert "not created by lcfg.xen" in str(err.value) and "enslave lcfg-eth1 to xenbr1" in str(err.value)
    assert "network_adopt: [xenbr1]" in str(err.value)
    # teardown: never deleted
    with pytest.raises(Conflict) as err:
        plan_bridge(request(name="xenbr1", state="absent", persist="none"), FakeIp(admin))
    assert "delete bridge xenbr1" in str(err.value)
    # nothing to change: nothing refused
    up = [entry("xenbr1", "bridge"), entry("adm0", "veth", master="xenbr1")]
    assert plan_bridge(request(name="xenbr1", persist="none"), FakeIp(up)).actions == []
    # adopted: marked first, then converged; marked bridges need no adopt again
    plan = plan_bridge(request(adopt=True, **standin), FakeIp(admin))
    assert plan.commands[0] == ["ip", "link", "set", "dev", "xenbr1", "alias", BRIDGE_MARK]
    assert plan.actions[0] == "adopt bridge xenbr1 (mark it lcfg.xen's)"
    plan = plan_bridge(request(name="xenbr1", adopt=True, persist="none"), FakeIp(up))
    assert plan.actions == ["adopt bridge xenbr1 (mark it lcfg.xen's)"]
    marked = [entry("xenbr1", "bridge", ifalias=BRIDGE_MARK)]
    assert plan_bridge(request(name="xenbr1", state="absent", persist="none"), FakeIp(marked)).actions == [
        "delete bridge xenbr1"
    ]


@pytest.mark.parametrize("name", ["virbr0", "virbr7", "docker0", "docker_gwbridge", "lo"])
def test_host_bridge_names_are_refused_unless_adopted(name):
    with pytest.raises(Conflict) as err:
        check_bridge_name(request(name="xenbr0", bridge=name, libvirt_network=True), [], {})
    assert err.value.args[0].startswith("bridge:") and name in str(err.value)
    check_bridge_name(request(name="xenbr0", bridge=name, libvirt_network=True, adopt=True), [], {})


def test_a_foreign_libvirt_networks_bridge_name_is_refused():
    networks = [
        {"name": "default", "uuid": "u1", "bridge": "xenbr5"},
        {"name": "lcfg-nat", "uuid": "u2", "bridge": "xenbr6"},
    ]
    with pytest.raises(Conflict) as err:
        check_bridge_name(request(name="xenbr5"), networks, {"u2": "lcfg-nat"})
    assert "libvirt network default" in str(err.value) and err.value.args[0].startswith("name:")
    check_bridge_name(request(name="xenbr6"), networks, {"u2": "lcfg-nat"})  # lcfg.xen's own network
    check_bridge_name(request(name="xenbr5", adopt=True), networks, {})
    # a request's own libvirt network (bridge mode, derived device) is not foreign to it
    check_bridge_name(request(name="default", bridge="xenbr5", libvirt_network=True), networks, {})


def test_a_networks_mode_is_never_changed_in_place():
    current = {"config": {"mode": "nat"}}
    with pytest.raises(Conflict) as err:
        check_mode_kept(request(name="lcfg-nat", mode="route", address="10.0.0.1/24"), current)
    message = str(err.value)
    assert message.startswith("mode:") and "lcfg-nat is a nat network" in message and "state: absent" in message
    with pytest.raises(Conflict):
        check_mode_kept(request(name="lcfg-nat", mode="route", address="10.0.0.1/24", adopt=True), current)
    check_mode_kept(request(name="lcfg-nat", mode="nat", address="10.0.0.1/24"), current)
    check_mode_kept(request(name="lcfg-nat", mode="route", state="absent"), current)
    check_mode_kept(request(name="lcfg-nat", mode="route", address="10.0.0.1/24"), None)


# --------------------------------------------------------------------------- persistence


def test_detect_persist(tmp_path):
    assert detect_persist(str(tmp_path))[0] == "none"
    (tmp_path / "etc/network").mkdir(parents=True)
    (tmp_path / "etc/network/interfaces").write_text("")
    assert detect_persist(str(tmp_path)) == ("ifupdown", None)
    wants = tmp_path / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True)
    (wants / "systemd-networkd.service").write_text("")
    assert detect_persist(str(tmp_path)) == ("networkd", None)


def test_render_networkd_files():
    req = request(name="xenbr0", netdev="eth0", create_netdev="veth")
    files = render_persist_files(
        "networkd", req, ["192.168.1.10/24"], [["-4", "default", "via", "192.168.1.1"]], False, "/r"
    )
    assert sorted(files) == [
        "/r/etc/systemd/network/20-lcfg-xen-xenbr0-port.netdev",
        "/r/etc/systemd/network/20-lcfg-xen-xenbr0-port.network",
        "/r/etc/systemd/network/20-lcfg-xen-xenbr0.netdev",
        "/r/etc/systemd/network/20-lcfg-xen-xenbr0.network",
    ]
    network = files["/r/etc/systemd/network/20-lcfg-xen-xenbr0.network"]
    assert "Address=192.168.1.10/24" in network and "Destination=0.0.0.0/0" in network
    assert "Gateway=192.168.1.1" in network
    assert "Kind=veth" in files["/r/etc/systemd/network/20-lcfg-xen-xenbr0-port.netdev"]
    assert "Bridge=xenbr0" in files["/r/etc/systemd/network/20-lcfg-xen-xenbr0-port.network"]


def test_render_ifupdown_file():
    req = request(name="xenbr0", netdev="eth0")
    files = render_persist_files("ifupdown", req, ["192.168.1.10/24", "10.9.9.9/8"], [], False, "/")
    text = files["/etc/network/interfaces.d/lcfg-xen-xenbr0"]
    assert text.splitlines()[1:6] == [
        "auto xenbr0",
        "iface xenbr0 inet static",
        "    address 192.168.1.10/24",
        "    bridge_ports eth0",
        "    bridge_stp off",
    ]
    assert "    up ip address add 10.9.9.9/8 dev xenbr0" in text
    dhcp = render_persist_files("ifupdown", request(name="xenbr0"), [], [], True, "/")
    assert "iface xenbr0 inet dhcp" in dhcp["/etc/network/interfaces.d/lcfg-xen-xenbr0"]
    assert "bridge_ports none" in dhcp["/etc/network/interfaces.d/lcfg-xen-xenbr0"]
    assert render_persist_files("none", req, [], [], False, "/") == {}


def test_plan_writes_then_keeps_persistence(tmp_path):
    (tmp_path / "etc/network").mkdir(parents=True)
    (tmp_path / "etc/network/interfaces").write_text("iface eth0 inet dhcp\n")
    fake = FakeIp([entry("eth0")])
    req = request(name="xenbr0", netdev="eth0")
    plan = plan_bridge(req, fake, str(tmp_path))
    assert plan.persist == "ifupdown"
    assert f"write {tmp_path}/etc/network/interfaces.d/lcfg-xen-xenbr0" in plan.actions
    assert any("also configures eth0" in warning for warning in plan.warnings)
    plan.commands = []
    apply_bridge(plan, fake)
    fake.links["xenbr0"] = entry("xenbr0", "bridge")
    fake.links["eth0"] = entry("eth0", master="xenbr0")
    again = plan_bridge(req, fake, str(tmp_path))
    assert again.actions == [] and again.files == {}


def test_subnet_must_be_free():
    others = [{"name": "lcfg-nat", "address": "10.0.0.254/24"}, {"name": "open", "address": None}]
    routes = [
        {"dst": "default", "dev": "eth0"},
        {"dst": "192.168.1.0/24", "dev": "eth0"},
        {"dst": "10.9.0.0/16", "dev": "lcfgroute"},
    ]
    check_subnet_free("lcfg-route", "10.1.0.1/24", None, others, routes)
    check_subnet_free("lcfg-nat", "10.0.0.1/24", None, others, routes)  # its own network
    check_subnet_free("lcfg-route", "10.9.1.1/24", "lcfgroute", others, routes)  # its own bridge's route
    with pytest.raises(Conflict) as err:
        check_subnet_free("lcfg-route", "10.0.0.1/25", None, others, routes, "networks[1].")
    assert str(err.value).startswith("networks[1].address:") and "lcfg-nat" in str(err.value)
    with pytest.raises(Conflict) as err:
        check_subnet_free("lcfg-route", "192.168.0.1/16", None, others, routes)
    assert "eth0" in str(err.value)
    with pytest.raises(Conflict):
        check_subnet_free("lcfg-route", "10.9.1.1/24", None, others, routes)


class FailingNet:
    """A network whose start fails, as when libvirt finds its bridge or subnet taken."""

    def __init__(self):
        self.active = False
        self.undefined = False

    def setAutostart(self, _flag):  # noqa: N802 - libvirt's name
        return 0

    def isActive(self):  # noqa: N802
        return self.active

    def create(self):
        raise libvirt.libvirtError("Network is already in use by interface eth0")

    def undefine(self):
        self.undefined = True


class FakeConn:
    def __init__(self):
        self.net = FailingNet()

    def networkLookupByName(self, _name):  # noqa: N802
        return self.net

    def networkDefineXML(self, _xml):  # noqa: N802
        return self.net


def test_a_new_network_that_cannot_start_is_removed_again():
    req = request(**NAT_REQ)
    plan = plan_network(req, None)
    conn = FakeConn()
    with pytest.raises(LibvirtFailure) as err:
        apply_network(conn, plan)
    assert "create failed" in str(err.value) and "removed again" in str(err.value)
    assert conn.net.undefined
