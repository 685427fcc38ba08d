"""Boot options of a guest (issue 13, "built from scratch"): boot_order, firmware, cdrom.

The schema, the inventory model (xen.bootorder_/firmware_/cdrom_ resources), validation and
completion, rendering per driver, reading back and in-place updates, and the confinement of
the CD-ROM image to the storage directories (hostile values included).
"""

from __future__ import annotations

import os

import pytest
from lxml import etree

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import ValidationError
from ansible_collections.lcfg.xen.plugins.module_utils.common.host_access import (
    HostAccess,
    check_guest_access,
    host_access_from_params,
    profile_value_problem,
)
from ansible_collections.lcfg.xen.plugins.module_utils.domain.desired import complete_spec, validate_spec
from ansible_collections.lcfg.xen.plugins.module_utils.domain.parse import diff_specs, parse_domain
from ansible_collections.lcfg.xen.plugins.module_utils.domain.render import render_domain, update_domain_xml
from ansible_collections.lcfg.xen.plugins.module_utils.spec.schema import guest_problems
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.profile import Profile, Resource
from ansible_collections.lcfg.xen.plugins.plugin_utils.model import ModelErrors, build_host

CAPS = {
    "xen": {"driver": "xen", "loader": "/usr/lib/xen/boot/hvmloader"},
    "kvm": {"driver": "qemu", "domain_type": "kvm", "arch": "x86_64"},
}
ISO = "/var/lib/libvirt/images/installer.iso"
DISK = {"path": "/var/lib/libvirt/images/i13boot.img"}
VIF = {"nettype": "nat", "network": "default"}


def spec(**params):
    params.setdefault("name", "i13boot-u")
    return validate_spec(params)


def full(driver: str, current: dict | None = None, **params) -> dict:
    caps = CAPS[driver]
    return complete_spec(spec(**params), current, caps["driver"], domain_type=caps.get("domain_type"))


# --------------------------------------------------------------------------- schema and validation


@pytest.mark.parametrize(
    "guest, parameter",
    [
        ({"boot_order": ["floppy"]}, "boot_order[0]"),
        ({"boot_order": ["network", "../../etc"]}, "boot_order[1]"),
        ({"boot_order": ["hd"]}, "boot_order[0]"),
        ({"boot_order": ["network"] * 4}, "boot_order"),
        ({"boot_order": "network"}, "boot_order"),
        ({"firmware": "coreboot"}, "firmware"),
        ({"cdrom": "installer.iso"}, "cdrom"),
        ({"cdrom": "/var/lib/libvirt/images/../../../etc/shadow"}, "cdrom"),
        ({"cdrom": "/var/lib/libvirt/images/a\nb.iso"}, "cdrom"),
    ],
)
def test_schema_refuses_hostile_boot_values(guest, parameter):
    problems = guest_problems(dict(guest, name="i13boot-u"))
    assert problems and problems[0][0] == parameter, problems


def test_schema_takes_the_boot_options():
    guest = {"name": "i13boot-u", "boot_order": ["network", "disk", "cdrom"], "firmware": "uefi", "cdrom": ISO}
    assert guest_problems(guest) == []


@pytest.mark.parametrize(
    "params, parameter, words",
    [
        ({"boot_order": ["disk", "disk"]}, "boot_order", "once"),
        ({"boot_order": ["usb"]}, "boot_order[0]", "unknown boot device"),
        ({"type": "pv", "kernel": "/var/lib/xen/images/vmlinuz", "boot_order": ["network"]}, "boot_order", "kernel"),
        ({"cdrom": "/var/lib/libvirt/images/"}, "cdrom", "not a directory"),
    ],
)
def test_validation_names_the_parameter(params, parameter, words):
    with pytest.raises(ValidationError) as info:
        spec(**params)
    assert info.value.parameter == parameter
    assert words in info.value.message


@pytest.mark.parametrize("field, value", [("boot_order", ["network"]), ("firmware", "uefi"), ("cdrom", ISO)])
@pytest.mark.parametrize("gtype", ["pv", "pvh"])
def test_xen_pv_and_pvh_guests_are_refused_boot_options(field, value, gtype):
    params = {"type": gtype, field: value}
    if field == "boot_order":
        params["vifs"] = [VIF]
    with pytest.raises(ValidationError) as info:
        full("xen", **params)
    assert info.value.parameter == field
    assert "use type hvm" in info.value.message


def test_boot_order_needs_the_devices_it_names():
    with pytest.raises(ValidationError, match="no cdrom"):
        full("kvm", boot_order=["cdrom", "disk"])
    with pytest.raises(ValidationError, match="no vif"):
        full("kvm", boot_order=["network"])


def test_the_cdrom_keeps_its_place_from_the_disks():
    with pytest.raises(ValidationError) as info:
        full("kvm", type="hvm", cdrom=ISO, disks=[dict(DISK, device="hdc")])
    assert info.value.parameter == "disks[0].device"
    disks = [{"path": f"/var/lib/xen/images/d{i}.img"} for i in range(3)]
    guest = full("xen", type="hvm", cdrom=ISO, disks=disks)
    assert [d["device"] for d in guest["disks"]] == ["xvda", "xvdb", "xvdd"]  # xvdc is hdc's Xen alias


def test_defaults_of_a_new_guest():
    guest = full("kvm", type="hvm")
    assert (guest["boot_order"], guest["firmware"], guest["cdrom"]) == (["disk"], "bios", None)
    xen_pv = full("xen", type="pv", kernel="/var/lib/xen/images/vmlinuz")
    assert (xen_pv["boot_order"], xen_pv["firmware"], xen_pv["cdrom"]) == (None, "bios", None)


# --------------------------------------------------------------------------- rendering per driver


def os_of(xml: str) -> etree._Element:
    return etree.fromstring(xml.encode()).find("os")


def test_kvm_renders_uefi_boot_order_and_cdrom():
    guest = full(
        "kvm", type="hvm", disks=[DISK], vifs=[VIF], cdrom=ISO, firmware="uefi", boot_order=["network", "cdrom", "disk"]
    )
    xml = render_domain(guest, CAPS["kvm"])
    os_el = os_of(xml)
    assert os_el.get("firmware") == "efi"
    assert [b.get("dev") for b in os_el.findall("boot")] == ["network", "cdrom", "hd"]
    cdrom = etree.fromstring(xml.encode()).find("devices/disk[@device='cdrom']")
    assert cdrom.find("source").get("file") == ISO
    assert cdrom.find("readonly") is not None
    assert cdrom.find("target").attrib == {"dev": "hdc", "bus": "ide"}
    assert diff_specs(guest, dict(parse_domain(xml), autostart=False)) == []


def test_xen_hvm_uefi_drops_hvmloader_and_bios_brings_it_back():
    guest = full("xen", type="hvm", firmware="uefi")
    xml = render_domain(guest, CAPS["xen"])
    assert os_of(xml).get("firmware") == "efi"
    assert os_of(xml).find("loader") is None
    bios = complete_spec(spec(firmware="bios"), parse_domain(xml), "xen")
    updated = update_domain_xml(xml, bios, diff_specs(bios, parse_domain(xml)), CAPS["xen"])
    assert os_of(updated).get("firmware") is None
    assert os_of(updated).findtext("loader") == "/usr/lib/xen/boot/hvmloader"


def test_uefi_read_back_from_libvirts_expanded_loader():
    """libvirt expands firmware='efi' into a pflash loader and nvram on a running QEMU guest."""
    xml = render_domain(full("kvm", type="hvm"), CAPS["kvm"])
    root = etree.fromstring(xml.encode())
    os_el = root.find("os")
    etree.SubElement(os_el, "loader", readonly="yes", type="pflash").text = "/usr/share/OVMF/OVMF_CODE_4M.fd"
    etree.SubElement(os_el, "nvram").text = "/var/lib/libvirt/qemu/nvram/i13boot-u_VARS.fd"
    parsed = parse_domain(etree.tostring(root, encoding="unicode"))
    assert parsed["firmware"] == "uefi"
    bios = complete_spec(spec(firmware="bios"), parsed, "qemu")
    updated = update_domain_xml(etree.tostring(root, encoding="unicode"), bios, ["firmware"], CAPS["kvm"])
    assert os_of(updated).find("loader") is None and os_of(updated).find("nvram") is None
    assert parse_domain(updated)["firmware"] == "bios"


def test_update_in_place_changes_boot_order_and_swaps_the_cdrom():
    guest = full("kvm", type="hvm", disks=[DISK], vifs=[VIF])
    xml = render_domain(guest, CAPS["kvm"])
    root = etree.fromstring(xml.encode())  # a hand-made per-device boot order gives way
    etree.SubElement(root.find("devices/disk"), "boot", order="1")
    xml = etree.tostring(root, encoding="unicode")
    assert parse_domain(xml)["boot_order"] == ["disk"]
    for cdrom, order in ((ISO, ["cdrom", "network", "disk"]), ("/var/lib/libvirt/images/other.iso", ["disk"])):
        current = parse_domain(xml)
        target = complete_spec(spec(cdrom=cdrom, boot_order=order), current, "qemu")
        changed = diff_specs(target, current)
        xml = update_domain_xml(xml, target, changed, CAPS["kvm"])
        reparsed = dict(parse_domain(xml), autostart=target["autostart"])
        reparsed["extra"]["xml"] = target["extra"]["xml"]
        assert diff_specs(target, reparsed) == []
        assert len(etree.fromstring(xml.encode()).findall("devices/disk[@device='cdrom']")) == 1
        assert etree.fromstring(xml.encode()).findall("devices/*/boot") == []
    current = parse_domain(xml)
    removed = complete_spec(spec(cdrom=""), current, "qemu")
    xml = update_domain_xml(xml, removed, diff_specs(removed, current), CAPS["kvm"])
    assert parse_domain(xml)["cdrom"] is None
    assert etree.fromstring(xml.encode()).findall("devices/disk[@device='cdrom']") == []


# --------------------------------------------------------------------------- confinement


def test_cdrom_outside_the_storage_directories_is_refused():
    access = host_access_from_params({})
    with pytest.raises(ValidationError) as info:
        check_guest_access(spec(cdrom="/etc/shadow"), access, "guests[0].")
    assert info.value.parameter == "guests[0].cdrom"
    assert "outside the storage directories" in info.value.message
    with pytest.raises(ValidationError):
        check_guest_access(spec(cdrom="/var/lib/libvirt/images"), access)  # the directory itself
    check_guest_access(spec(cdrom=ISO), access)
    check_guest_access(spec(cdrom="/srv/iso/x.iso"), HostAccess(allow_host_resources=True))
    with pytest.raises(ValueError, match="outside the storage directories"):
        profile_value_problem("cdrom", "/root/x.iso", access)


def test_cdrom_symlink_escape_is_refused(tmp_path):
    storage = tmp_path / "storage"
    storage.mkdir()
    (tmp_path / "secret").write_text("host data")
    (storage / "evil.iso").symlink_to(tmp_path / "secret")
    (storage / "good.iso").write_text("iso")
    access = HostAccess(storage_dirs=(str(storage),))
    with pytest.raises(ValidationError) as info:
        check_guest_access(spec(cdrom=str(storage / "evil.iso")), access, realpath=os.path.realpath)
    assert str(tmp_path / "secret") in info.value.message  # names where the link leads
    check_guest_access(spec(cdrom=str(storage / "good.iso")), access, realpath=os.path.realpath)


# --------------------------------------------------------------------------- inventory model


def make(resources: list[tuple[str, str]]) -> Profile:
    prof = Profile(name="h1", path="/site/h1")
    prof.resources["profile"] = {"components": Resource("client xen", "/site/h1:1")}
    table = prof.resources.setdefault("xen", {})
    for line, (res, value) in enumerate(resources, start=2):
        table[res] = Resource(value, f"/site/h1:{line}")
    return prof


GUEST = [("virtualmachines", "vm1"), ("type_vm1", "hvm"), ("vifs_vm1", "eth0")]


def test_model_reads_the_boot_resources():
    res = GUEST + [("bootorder_vm1", "Network  disk cdrom"), ("firmware_vm1", "UEFI"), ("cdrom_vm1", ISO)]
    guest = build_host(make(res)).guests["vm1"]
    assert (guest["boot_order"], guest["firmware"], guest["cdrom"]) == (["network", "disk", "cdrom"], "uefi", ISO)


@pytest.mark.parametrize(
    "res, value, words",
    [
        ("bootorder_vm1", "network pxe", "unknown boot device"),
        ("bootorder_vm1", "disk disk", "twice"),
        ("firmware_vm1", "coreboot", "unknown firmware"),
        ("cdrom_vm1", "/etc/shadow", "outside the storage directories"),
        ("cdrom_vm1", "/var/lib/libvirt/images/../../../etc/shadow", "'..'"),
        ("cdrom_vm1", "images/x.iso", "absolute"),
    ],
)
def test_model_reports_hostile_boot_values_at_their_resource(res, value, words):
    resources = GUEST + [(res, value)]
    with pytest.raises(ModelErrors) as info:
        build_host(make(resources))
    errors = info.value.errors
    assert [(e.resource, e.line) for e in errors] == [(f"xen.{res}", len(resources) + 1)]
    assert words in errors[0].problem
