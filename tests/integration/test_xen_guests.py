"""xen_guests against the real libvirtd (qemu:///system): all guests of a host in one call."""

from __future__ import annotations

import pytest
from lxml import etree

from support import four_steps as four_steps_of
from support import remove_domains, run_module

libvirt = pytest.importorskip("libvirt")

pytestmark = pytest.mark.integration

URI = "qemu:///system"
PREFIX = "lcfgtest-dom-g"


def connect():
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt.open(URI)


def remove_test_guests() -> None:
    remove_domains(URI, PREFIX)


@pytest.fixture
def conn():
    remove_test_guests()
    connection = connect()
    yield connection
    connection.close()
    remove_test_guests()


def four_steps(params: dict) -> dict:
    return four_steps_of("xen_guests", params, URI)


def hostvar(index: int) -> dict:
    """A guest as the lcfg inventory's xen_domain hostvar gives it (every key present)."""
    return {
        "name": f"{PREFIX}{index}",
        "uuid": None,
        "type": "hvm",
        "memory": 64,
        "maxmem": 64,
        "vcpus": 1,
        "maxvcpus": 1,
        "cpus": None,
        "autostart": index % 2 == 0,
        "disks": [],
        "vifs": [
            {
                "tag": "eth0",
                "mac": None,
                "ip": f"192.0.2.{10 + index}",
                "nettype": "nat",
                "bridge": None,
                "script": None,
            }
        ],
        "template": None,
        "profile_url": None,
        "partition": None,
        "groups": ["lcfgtest"],
    }


def test_define_then_start_then_change_some(conn):
    guests = [hostvar(i) for i in range(3)]
    defined = four_steps({"guests": guests})
    assert [r["actions"] for r in defined["results"]] == [
        ["define", "set_autostart"],
        ["define"],
        ["define", "set_autostart"],
    ]
    for guest in guests:
        dom = conn.lookupByName(guest["name"])
        assert bool(dom.autostart()) is guest["autostart"] and not dom.isActive()
        root = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE).encode())
        assert root.find("devices/interface/source").get("network") == "lcfg-nat"

    # start them (one network-less guest more, to show guests can be added)
    started = [dict(g, state="running", vifs=[]) for g in guests] + [dict(hostvar(3), vifs=[], state="running")]
    result = four_steps({"guests": started})
    assert [r["actions"] for r in result["results"]] == [["redefine", "start"]] * 3 + [["define", "start"]]
    assert all(conn.lookupByName(g["name"]).isActive() for g in started)

    # change one guest live, one at the next restart; the others are untouched
    changed = [dict(g) for g in started]
    changed[0]["cpus"] = "0"
    changed[1]["maxmem"] = 96
    result = four_steps({"guests": changed})
    by_name = {r["name"]: r for r in result["results"]}
    assert by_name[f"{PREFIX}0"]["actions"] == ["redefine", "set_cpus_live"]
    assert by_name[f"{PREFIX}1"]["pending_restart_fields"] == ["maxmem"]
    assert result["pending_restart"] == [f"{PREFIX}1"]
    assert by_name[f"{PREFIX}2"]["changed"] is False
    pins = conn.lookupByName(f"{PREFIX}0").vcpus()[1]
    assert all(pin[0] and not any(pin[1:]) for pin in pins)


def test_bad_guest_fails_before_any_change(conn):
    guests = [hostvar(i) for i in range(3)]
    guests[2]["memory"] = 128  # larger than its maxmem 64
    result = run_module("xen_guests", {"uri": URI, "guests": guests})
    assert result["rc"] == 1 and result["msg"].startswith("guests[2].memory:")
    assert not [d for d in conn.listAllDomains(0) if d.name().startswith(PREFIX)]


def test_removing_all(conn):
    four_steps({"guests": [dict(hostvar(i), vifs=[], state="running") for i in range(2)]})
    result = four_steps(
        {
            "guests": [
                {"name": f"{PREFIX}{i}", "state": "absent", "force_stop": True, "shutdown_timeout": 2} for i in range(2)
            ]
        }
    )
    assert all(r["actions"] == ["stop", "undefine"] for r in result["results"])
    assert not [d for d in conn.listAllDomains(0) if d.name().startswith(PREFIX)]
