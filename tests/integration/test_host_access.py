"""Issue 9 §4 against the real libvirtd (qemu:///system): a guest spec (an LCFG profile) cannot
reach host resources through extra.xml, bootloader, kernel, ramdisk or disks; the play options
of xen_domain / xen_guests can allow each. Every refusal names the parameter and leaves
libvirt's domain list and every definition exactly as they were. Names: ``lcfgt-hatch-``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from lxml import etree

from support import libvirt_domains, remove_domains, run_module

pytest.importorskip("libvirt")

pytestmark = pytest.mark.integration

URI = "qemu:///system"
PREFIX = "lcfgt-hatch-"
IMAGES = Path("/var/lib/libvirt/images")
IMAGE = IMAGES / f"{PREFIX}root.qcow2"

SHADOW_DISK = (
    "<devices><disk type='file' device='disk'><driver name='qemu' type='raw'/>"
    "<source file='/etc/shadow'/><target dev='vdz' bus='virtio'/></disk></devices>"
)
QEMU_COMMANDLINE = (
    "<qemu:commandline xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>"
    "<qemu:arg value='-chardev'/><qemu:arg value='file,id=x,path=/etc/lcfgt-hatch-owned'/>"
    "</qemu:commandline>"
)
HOSTDEV = (
    "<devices><hostdev mode='subsystem' type='pci' managed='yes'><source>"
    "<address domain='0x0000' bus='0x00' slot='0x1f' function='0x7'/></source></hostdev></devices>"
)
FILE_SERIAL = (
    f"<devices><serial type='file'><source path='{IMAGES}/{PREFIX}serial.log'/><target port='1'/></serial></devices>"
)
PTY_SERIAL = "<devices><serial type='pty'><target port='1'/></serial></devices>"


def our_domains() -> dict:
    """{name: definition} of this file's domains (the libvirtd is shared with other tests, whose
    guests come and go): every spec here is named lcfgt-hatch-*, so a refused spec that reached
    libvirt anyway, or a changed definition, shows here."""
    return {name: xml for name, xml in libvirt_domains(URI).items() if name.startswith(PREFIX)}


@pytest.fixture
def clean():
    remove_domains(URI, PREFIX)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(IMAGE), "64M"], check=True)
    yield
    remove_domains(URI, PREFIX)
    IMAGE.unlink(missing_ok=True)


def guest(name: str, **fields) -> dict:
    # a disk of its own: a guest never gets another guest's image (red team F3)
    disk = IMAGE if name == "bystander" else IMAGES / f"{PREFIX}{name}.qcow2"
    return {
        "name": f"{PREFIX}{name}",
        "memory": 64,
        "disks": [{"path": str(disk), "format": "qcow2"}],
        "extra": {"domain_type": "qemu"},
        **fields,
    }


def with_xml(name: str, fragment: str) -> dict:
    return guest(name, extra={"domain_type": "qemu", "xml": [PTY_SERIAL, fragment]})


ATTACKS = {
    # name: (guest spec, parameter named, words in the message, play option that allows it)
    "shadow-extra-disk": (
        with_xml("shadow", SHADOW_DISK),
        "extra.xml[1]",
        "<disk type='file'>",
        {"trusted_extra_xml": True},
    ),
    "shadow-phy-disk": (
        guest("phy", disks=[{"path": "/etc/shadow", "type": "phy"}]),
        "disks[0].path",
        "block device",
        {"allowed_block_devices": ["/etc/shadow"]},
    ),
    "qemu-commandline": (
        with_xml("qemu", QEMU_COMMANDLINE),
        "extra.xml[1]",
        "<qemu:commandline>",
        {"trusted_extra_xml": True},
    ),
    "hostdev": (with_xml("hostdev", HOSTDEV), "extra.xml[1]", "<hostdev type='pci'>", {"trusted_extra_xml": True}),
    "file-serial": (with_xml("serial", FILE_SERIAL), "extra.xml[1]", "type='file'", {"trusted_extra_xml": True}),
    "bootloader-sh": (
        guest("sh", bootloader="/bin/sh"),
        "bootloader",
        "'/bin/sh' is not a known bootloader",
        {"allowed_boot_paths": ["/bin/sh"]},
    ),
    "kernel-passwd": (
        guest("kernel", kernel="/etc/passwd"),
        "kernel",
        "/etc/passwd is outside the storage",
        {"allowed_boot_paths": ["/etc/passwd"]},
    ),
    "vif-script-sh": (
        guest("script", vifs=[{"nettype": "nat", "script": "/bin/sh"}]),
        "vifs[0].script",
        "vif script '/bin/sh' is a path",
        {"allow_host_resources": True},
    ),
    "image-elsewhere": (
        guest("elsewhere", disks=[{"path": "/root/lcfgt-hatch.img"}]),
        "disks[0].path",
        "outside the storage directories",
        {"storage_dirs": ["/root"]},
    ),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
@pytest.mark.parametrize("module", ["xen_domain", "xen_guests"])
def test_attack_is_refused_and_nothing_changes(clean, attack, module):
    spec, parameter, words, _allow = ATTACKS[attack]
    run_module("xen_domain", dict(guest("bystander"), uri=URI))  # an existing guest must stay as it is
    before = our_domains()
    assert list(before) == [f"{PREFIX}bystander"]
    for check in (True, False):
        if module == "xen_domain":
            result = run_module("xen_domain", dict(spec, uri=URI, state="running"), check=check)
            named = parameter
        else:
            result = run_module(
                "xen_guests", {"uri": URI, "guests": [guest("fine"), dict(spec, state="running")]}, check=check
            )
            named = f"guests[1].{parameter}"
        assert result.get("failed") is True, result
        assert result["msg"].startswith(f"{named}: "), result["msg"]
        assert words in result["msg"]
        assert our_domains() == before  # no guest defined, none changed (not even the valid one)


@pytest.mark.parametrize("attack", sorted(set(ATTACKS) - {"bootloader-sh"}))  # see the next test
def test_the_play_option_allows_it(clean, attack):
    """Check mode: the module accepts the spec and plans the definition (nothing is defined,
    so no host file is ever handed to a guest by this test)."""
    spec, _parameter, _words, allow = ATTACKS[attack]
    for options in (allow, {"allow_host_resources": True}):
        result = run_module("xen_guests", {"uri": URI, "guests": [spec], **options}, check=True)
        assert result.get("failed") is not True, result
        assert result["results"][0]["actions"][0] == "define"


def test_bootloader_option_passes_the_host_check(clean):
    """/bin/sh as bootloader: refused for the host without the option; with it, the next rule
    speaks (bootloaders are a Xen feature), so the allowance itself is what changed."""
    spec = guest("sh", bootloader="/bin/sh")
    result = run_module("xen_domain", dict(spec, uri=URI, allowed_boot_paths=["/bin/sh"]), check=True)
    assert result["msg"].startswith("bootloader: a bootloader (pygrub) needs Xen"), result["msg"]


def test_guest_side_extra_xml_is_defined_by_default_and_read_back(clean):
    spec = guest(
        "pty",
        extra={
            "domain_type": "qemu",
            "xml": [
                PTY_SERIAL,
                "<devices><rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>"
                "<watchdog model='i6300esb' action='reset'/></devices>",
                "<features><acpi/><apic/><pae/></features>",
            ],
        },
    )
    first = run_module("xen_domain", dict(spec, uri=URI))
    assert first["changed"] is True, first
    root = etree.fromstring(our_domains()[spec["name"]].encode())
    # the profile's serial is port 1; port 0 is the console serial the collection logs
    ports = {t.get("port"): t.getparent().find("log") is not None for t in root.findall("devices/serial/target")}
    assert ports == {"0": True, "1": False}, ports
    assert root.find("devices/rng/backend").text == "/dev/urandom"
    assert root.find("devices/watchdog").get("action") == "reset"
    assert run_module("xen_domain", dict(spec, uri=URI))["changed"] is False


def test_trusted_extra_xml_defines_a_file_serial(clean):
    """The admin's option really reaches libvirt: the file chardev is in the saved definition."""
    spec = with_xml("serial", FILE_SERIAL)
    result = run_module("xen_domain", dict(spec, uri=URI, trusted_extra_xml=True))
    assert result["changed"] is True, result
    root = etree.fromstring(our_domains()[spec["name"]].encode())
    assert root.find("devices/serial[@type='file']/source").get("path") == f"{IMAGES}/{PREFIX}serial.log"


def test_a_guest_item_cannot_grant_itself_the_options(clean):
    before = our_domains()
    spec = dict(with_xml("self", QEMU_COMMANDLINE), trusted_extra_xml=True)
    result = run_module("xen_guests", {"uri": URI, "guests": [spec]})
    assert result["msg"].startswith("guests[0].trusted_extra_xml: unknown option"), result["msg"]
    assert our_domains() == before


ROLE_PLAY = """- hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: lcfg.xen.guest
      vars:
        guest_uri: qemu:///system
        guest_manage_disks: false
"""


@pytest.mark.parametrize("trusted", [False, True])
def test_guest_role_variable_is_the_only_way_in(clean, tmp_path, trusted):
    """The guest role passes its variables to xen_guests: a profile's file serial is refused
    (nothing defined) unless the play sets guest_trusted_extra_xml."""
    run_module("xen_domain", dict(guest("bystander"), uri=URI))  # an existing guest must stay as it is
    from support import run_playbook  # noqa: PLC0415 - only this test runs a play

    play = tmp_path / "play.yml"
    play.write_text(ROLE_PLAY)
    spec = with_xml("role", FILE_SERIAL)
    before = our_domains()
    proc = run_playbook(
        play, "-i", "localhost,", extra_vars={"guest_specs": [spec], "guest_trusted_extra_xml": trusted}
    )
    after = our_domains()
    if not trusted:
        assert proc.returncode != 0
        assert "guests[0].extra.xml[1]: <serial type='file'>" in proc.stdout
        assert after == before
    else:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        root = etree.fromstring(after[spec["name"]].encode())
        assert root.find("devices/serial[@type='file']/source").get("path") == f"{IMAGES}/{PREFIX}serial.log"


def test_removing_a_guest_is_not_held_to_the_rules(clean):
    """state: absent gives the guest nothing: a full spec from a profile (here with a block
    device) removes the guest without any option."""
    run_module("xen_domain", dict(guest("gone"), uri=URI))
    spec = dict(guest("gone", disks=[{"path": "/etc/shadow", "type": "phy"}]), uri=URI, state="absent")
    result = run_module("xen_domain", spec)
    assert result.get("failed") is not True, result
    assert result["actions"] == ["undefine"] and f"{PREFIX}gone" not in our_domains()
