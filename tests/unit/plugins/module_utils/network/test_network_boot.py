"""Network boot on a libvirt NAT network (issue 13): xen_bridge's tftp_root and boot_file,
rendered as ``<tftp root>`` and ``<dhcp><bootp file>``, read back, planned as a restart."""

from __future__ import annotations

import pytest
from lxml import etree

from ansible_collections.lcfg.xen.plugins.filter.network import network_items
from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import ValidationError
from ansible_collections.lcfg.xen.plugins.module_utils.network.libvirt_network import plan_network
from ansible_collections.lcfg.xen.plugins.module_utils.network.request import normalise_request
from ansible_collections.lcfg.xen.plugins.module_utils.network.xml import parse_network_xml, render_network_xml

NAT = {
    "name": "i13boot-nat",
    "mode": "nat",
    "address": "10.13.0.1/24",
    "dhcp_range": {"start": "10.13.0.10", "end": "10.13.0.20"},
}


def record(xml: str) -> dict:
    config = parse_network_xml(xml)
    return {"config": config, "live": config, "active": True, "autostart": True, "persistent": True, "xml": xml}


def test_tftp_root_and_boot_file_render_and_read_back():
    request = normalise_request(dict(NAT, tftp_root="/srv/tftp/", boot_file="pxelinux.0"))
    plan = plan_network(request, None)
    root = etree.fromstring(plan.define_xml)
    assert root.find("ip/tftp").get("root") == "/srv/tftp"
    assert root.find("ip/dhcp/bootp").get("file") == "pxelinux.0"
    assert root.find("ip/dhcp/range") is not None  # DHCP kept beside the boot file
    state = parse_network_xml(plan.define_xml)
    assert (state["tftp_root"], state["boot_file"]) == ("/srv/tftp", "pxelinux.0")
    assert plan_network(request, record(plan.define_xml)).actions == []  # idempotent


def test_a_change_redefines_and_restarts_and_empty_removes():
    xml = render_network_xml(dict(parse_network_xml(render_network_xml(dict(NAT, dhcp_hosts=[]))), name=NAT["name"]))
    with_boot = normalise_request(dict(NAT, tftp_root="/srv/tftp", boot_file="pxelinux.0", restart=True))
    plan = plan_network(with_boot, record(xml))
    assert plan.restart and any("tftp_root" in action and "boot_file" in action for action in plan.actions)
    booted = plan.define_xml
    kept = plan_network(normalise_request(dict(NAT)), record(booted))  # unset: left alone
    assert kept.actions == []
    removed = plan_network(normalise_request(dict(NAT, tftp_root="", boot_file="")), record(booted))
    root = etree.fromstring(removed.define_xml)
    assert root.find("ip/tftp") is None and root.find("ip/dhcp/bootp") is None
    assert removed.pending_restart


@pytest.mark.parametrize(
    "params, parameter",
    [
        ({"tftp_root": "srv/tftp"}, "tftp_root"),
        ({"tftp_root": "/srv/../etc"}, "tftp_root"),
        ({"tftp_root": "/"}, "tftp_root"),
        ({"boot_file": "/etc/shadow"}, "boot_file"),
        ({"boot_file": "../../etc/shadow"}, "boot_file"),
        ({"boot_file": "pxe linux.0"}, "boot_file"),
        ({"mode": "bridge", "bridge": "i13bootbr0", "dhcp_range": None, "tftp_root": "/srv/tftp"}, "tftp_root"),
    ],
)
def test_hostile_or_misplaced_values_are_refused(params, parameter):
    with pytest.raises(ValidationError) as info:
        normalise_request(dict(NAT, **params))
    assert info.value.parameter == parameter


def test_boot_file_needs_a_tftp_root():
    with pytest.raises(ValidationError) as info:
        plan_network(normalise_request(dict(NAT, boot_file="pxelinux.0")), None)
    assert info.value.parameter == "boot_file" and "tftp_root" in info.value.message


def test_network_items_give_the_play_settings_to_the_nat_network_only():
    host = {
        "nat_network": True,
        "nat_network_name": "i13boot-nat",
        "nat_address": "10.13.0.1/24",
        "bridge_network": False,
        "bridges": [],
    }
    items = network_items(host, tftp_root="/srv/tftp", boot_file="pxelinux.0")
    nat = [item for item in items if item.get("mode") == "nat"]
    assert nat and (nat[0]["tftp_root"], nat[0]["boot_file"]) == ("/srv/tftp", "pxelinux.0")
    assert "tftp_root" not in network_items(host)[0]
