"""Unit tests for _iproute: interface names and parsing of ``ip -j`` output."""

from __future__ import annotations

import json

import pytest

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import ValidationError
from ansible_collections.lcfg.xen.plugins.module_utils.network import iproute as ipr

# Captured from iproute2 6.1 (``ip -j -d addr show``), trimmed.
LINKS = [
    {
        "ifindex": 8,
        "ifname": "xenbr0",
        "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
        "address": "ce:c2:91:09:67:bf",
        "linkinfo": {"info_kind": "bridge", "info_data": {"forward_delay": 0, "stp_state": 1}},
        "addr_info": [
            {"family": "inet", "local": "10.213.99.1", "prefixlen": 24, "scope": "global"},
            {"family": "inet6", "local": "fe80::ccc2:91ff:fe09:67bf", "prefixlen": 64, "scope": "link"},
            {"family": "inet6", "local": "fd00::5", "prefixlen": 64, "scope": "global"},
        ],
    },
    {"ifindex": 14, "ifname": "eth0", "flags": ["BROADCAST", "UP"], "master": "xenbr0", "addr_info": []},
    {"ifindex": 15, "ifname": "vif1.0", "flags": ["BROADCAST"], "master": "xenbr0", "addr_info": []},
    {"ifindex": 16, "ifname": "eth1", "flags": ["BROADCAST"], "addr_info": []},
    {"ifindex": 17, "ifname": "xenbr1", "flags": ["BROADCAST"], "linkinfo": {"info_kind": "bridge"}},
]


def runner(answers):
    def run(argv):
        return answers[tuple(argv)]

    return run


@pytest.mark.parametrize("name", ["eth0", "xenbr0", "my-bridge.10", "a" * 15])
def test_valid_ifnames(name):
    assert ipr.valid_ifname(name, "netdev") == name


@pytest.mark.parametrize(
    "name, problem",
    [
        ("", "empty"),
        ("a" * 16, "at most 15"),
        ("eth 0", "invalid"),
        ("eth/0", "invalid"),
        ("eth:0", "invalid"),
        ("..", "invalid"),
        (None, "empty"),
    ],
)
def test_invalid_ifnames(name, problem):
    with pytest.raises(ValidationError) as err:
        ipr.valid_ifname(name, "bridge")
    assert err.value.parameter == "bridge" and problem in str(err.value)


def test_veth_peer_name_fits():
    assert ipr.veth_peer_name("eth0") == "eth0-p"
    assert len(ipr.veth_peer_name("a" * 15)) == 15


def test_list_bridges_normalises():
    run = runner({("ip", "-j", "-d", "addr", "show"): (0, json.dumps(LINKS), "")})
    assert ipr.list_bridges(run) == [
        {
            "name": "xenbr0",
            "state": "up",
            "ports": ["eth0", "vif1.0"],
            "addresses": ["10.213.99.1/24", "fd00::5/64"],
            "stp": True,
            "mac": "ce:c2:91:09:67:bf",
        },
        {"name": "xenbr1", "state": "down", "ports": [], "addresses": [], "stp": False, "mac": None},
    ]


def test_read_link_missing_and_failing():
    run = runner(
        {
            ("ip", "-j", "-d", "addr", "show", "dev", "nope"): (1, "", 'Device "nope" does not exist.\n'),
            ("ip", "-j", "-d", "addr", "show", "dev", "eth0"): (0, json.dumps([LINKS[1]]), ""),
            ("ip", "-j", "-d", "addr", "show", "dev", "odd"): (2, "", "RTNETLINK answers: busy"),
        }
    )
    assert ipr.read_link(run, "nope") is None
    assert ipr.read_link(run, "eth0")["master"] == "xenbr0"
    with pytest.raises(ipr.IpCommandError) as err:
        ipr.read_link(run, "odd")
    assert "busy" in str(err.value)


def test_ip_json_errors():
    with pytest.raises(ipr.IpCommandError):
        ipr.ip_json(runner({("ip", "-j", "x"): (0, "not json", "")}), ["ip", "-j", "x"])
    assert ipr.ip_json(runner({("ip", "-j", "x"): (0, "", "")}), ["ip", "-j", "x"]) == []


def test_routes_via_skips_kernel_and_optionally_dynamic():
    v4 = [
        {"dst": "default", "gateway": "192.168.1.1", "protocol": "dhcp", "metric": 100},
        {"dst": "10.5.0.0/16", "gateway": "192.168.1.254"},
        {"dst": "192.168.1.0/24", "protocol": "kernel", "scope": "link"},
    ]
    v6 = [{"dst": "fe80::/64", "protocol": "kernel"}, {"dst": "fd01::/64", "gateway": "fd00::1", "protocol": "static"}]
    run = runner(
        {
            ("ip", "-j", "-4", "route", "show", "dev", "eth0"): (0, json.dumps(v4), ""),
            ("ip", "-j", "-6", "route", "show", "dev", "eth0"): (0, json.dumps(v6), ""),
        }
    )
    assert ipr.routes_via(run, "eth0") == [
        ["-4", "default", "via", "192.168.1.1", "metric", "100"],
        ["-4", "10.5.0.0/16", "via", "192.168.1.254"],
        ["-6", "fd01::/64", "via", "fd00::1"],
    ]
    assert ipr.routes_via(run, "eth0", include_dynamic=False)[0] == ["-4", "10.5.0.0/16", "via", "192.168.1.254"]
