"""Pure tests of plugins/module_utils/domain/desired.py, render.py and parse.py: validation, render/parse,
diff, golden XML."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import ValidationError
from ansible_collections.lcfg.xen.plugins.module_utils.domain.desired import (
    canonical_cpuset,
    check_driver,
    complete_spec,
    detect_format,
    generated_uuid,
    parse_extra_text,
    validate_spec,
)
from ansible_collections.lcfg.xen.plugins.module_utils.domain.parse import (
    diff_specs,
    parse_domain,
    present_fragments,
    reserved_targets,
)
from ansible_collections.lcfg.xen.plugins.module_utils.domain.render import render_domain, update_domain_xml

GOLDEN = Path(__file__).resolve().parents[4] / "unit" / "golden"


def golden_specs():
    """tests/unit/golden/specs.py (data module; tests/ is not a package)."""
    loader = importlib.util.spec_from_file_location("lcfg_golden_specs", GOLDEN / "specs.py")
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    return module


G = golden_specs()


def spec(**params):
    params.setdefault("name", "lcfgtest-dom-u")
    return validate_spec(params)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "params, parameter",
    [
        ({"memory": 512, "maxmem": 256}, "memory"),
        ({"vcpus": 4, "maxvcpus": 2}, "vcpus"),
        ({"uuid": "not-a-uuid"}, "uuid"),
        ({"cpus": "3-1"}, "cpus"),
        ({"cpus": "a,b"}, "cpus"),
        ({"type": "vmware"}, "type"),
        ({"type": "hvm", "kernel": "/boot/vmlinuz"}, "kernel"),
        ({"type": "hvm", "bootloader": "pygrub"}, "bootloader"),
        ({"kernel": "/boot/vmlinuz", "bootloader": "pygrub"}, "bootloader"),
        ({"kernel": "boot/vmlinuz"}, "kernel"),
        ({"memory": 0}, "memory"),
        ({"vcpus": 0}, "vcpus"),
        ({"disks": [{"path": "images/a.img"}]}, "disks[0].path"),
        ({"disks": [{"path": "/a/../b.img"}]}, "disks[0].path"),
        ({"disks": [{"tag": "root"}]}, "disks[0].path"),
        ({"disks": [{"path": "/a.img", "format": "vmdk"}]}, "disks[0].format"),
        ({"disks": [{"path": "/dev/sdb", "type": "phy", "format": "qcow2"}]}, "disks[0].format"),
        ({"disks": [{"path": "/a.img", "device": "xvd1"}]}, "disks[0].device"),
        ({"disks": [{"path": "/a.img"}, {"path": "/a.img"}]}, "disks"),
        ({"vifs": [{"mac": "01:00:00:00:00:01", "bridge": "br0"}]}, "vifs[0].mac"),
        ({"vifs": [{"mac": "zz:00:00:00:00:01", "bridge": "br0"}]}, "vifs[0].mac"),
        (
            {"vifs": [{"mac": "00:16:3e:00:00:01", "bridge": "br0"}, {"mac": "00:16:3E:00:00:01", "bridge": "br1"}]},
            "vifs",
        ),
        ({"vifs": [{"nettype": "nat", "bridge": "br0"}]}, "vifs[0].bridge"),
        ({"vifs": [{"nettype": "vde"}]}, "vifs[0].nettype"),
        ({"vifs": [{"bridge": "br0", "ip": "10.0.0.300"}]}, "vifs[0].ip"),
        ({"extra": {"on_crash": "explode"}}, "extra.on_crash"),
        ({"extra": {"memory": 5}}, "extra.memory"),
        ({"extra": {"xml": ["<features><acpi/>"]}}, "extra.xml[0]"),
        ({"extra": {"xml": ["<memory>1</memory>"]}}, "extra.xml[0]"),
        ({"name": "bad name"}, "name"),
    ],
)
def test_validation_names_the_parameter(params, parameter):
    with pytest.raises(ValidationError) as info:
        spec(**params)
    assert info.value.parameter == parameter


def test_validation_normalises_values():
    result = spec(
        type="paravm",
        uuid="0B2C4D6E-8F10-4A12-9C14-16E18A20C222",
        cpus="3,0,1,2",
        memory="256",
        vifs=[{"mac": "00-16-3E-00-00-0A", "bridge": "br0"}, {"nettype": "route"}],
    )
    assert result["type"] == "pv"
    assert result["uuid"] == "0b2c4d6e-8f10-4a12-9c14-16e18a20c222"
    assert result["cpus"] == "0-3"
    assert result["memory"] == 256
    assert result["vifs"][0]["mac"] == "00:16:3e:00:00:0a"
    assert result["vifs"][1]["network"] == "lcfg-route"
    assert result["maxmem"] is None  # left out stays None: "leave it alone"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0,1,2,3", "0-3"),
        ("2-3", "2-3"),
        ("0-7,^4", "0-3,5-7"),
        ("5,1,3", "1,3,5"),
        ("0", "0"),
    ],
)
def test_canonical_cpuset(text, expected):
    assert canonical_cpuset(text) == expected


@pytest.mark.parametrize(
    "params, parameter",
    [
        ({"type": "pvh"}, "type"),
        ({"extra": {"domain_type": "xen"}}, "extra.domain_type"),
        ({"bootloader": "pygrub"}, "bootloader"),
    ],
)
def test_xen_only_features_fail_on_qemu(params, parameter):
    with pytest.raises(ValidationError) as info:
        check_driver(spec(**params), "qemu", prefix="guests[1].")
    assert info.value.parameter == "guests[1]." + parameter
    check_driver(spec(**params), "xen")  # fine on Xen


@pytest.mark.parametrize("driver", ["vbox", "openvz", "uml"])
def test_unsupported_drivers_are_refused(driver):
    """The renderer knows Xen, QEMU/KVM, LXC and the test driver only: a VirtualBox URI would get XML it cannot use."""
    with pytest.raises(ValidationError, match=f"libvirt driver '{driver}' is not supported") as info:
        check_driver(spec(), driver)
    assert info.value.parameter == "uri"
    for known in ("xen", "qemu", "kvm", "test"):
        check_driver(spec(), known)


def test_domain_type_must_exist_on_the_driver():
    check_driver(spec(extra={"domain_type": "qemu"}), "qemu")
    with pytest.raises(ValidationError) as info:
        check_driver(spec(extra={"domain_type": "kvm"}), "xen")
    assert info.value.parameter == "extra.domain_type"


# --------------------------------------------------------------------------- completion


def test_complete_new_guest_defaults_are_stable():
    first = complete_spec(
        spec(
            vifs=[{"bridge": "br0"}, {"nettype": "nat"}],
            disks=[{"path": "/i/a.img"}, {"path": "/i/b.img", "device": "xvda"}],
        ),
        None,
        "xen",
    )
    second = complete_spec(
        spec(
            vifs=[{"bridge": "br0"}, {"nettype": "nat"}],
            disks=[{"path": "/i/a.img"}, {"path": "/i/b.img", "device": "xvda"}],
        ),
        None,
        "xen",
    )
    assert first == second
    assert first["type"] == "pv" and first["memory"] == first["maxmem"] == 512
    assert first["vcpus"] == first["maxvcpus"] == 1
    assert [d["device"] for d in first["disks"]] == ["xvdb", "xvda"]
    macs = [v["mac"] for v in first["vifs"]]
    assert all(m.startswith("00:16:3e:") for m in macs) and len(set(macs)) == 2
    assert first["uuid"] == generated_uuid("lcfgtest-dom-u")


def test_complete_memory_rules():
    assert complete_spec(spec(memory=256), None, "xen")["maxmem"] == 256
    assert complete_spec(spec(maxmem=1024), None, "xen")["memory"] == 1024
    current = complete_spec(spec(memory=256, maxmem=512, vcpus=1, maxvcpus=2), None, "xen")
    with pytest.raises(ValidationError) as info:
        complete_spec(spec(memory=1024), current, "xen")
    assert info.value.parameter == "maxmem"
    with pytest.raises(ValidationError) as info:
        complete_spec(spec(vcpus=3), current, "xen")
    assert info.value.parameter == "maxvcpus"
    lowered = complete_spec(spec(maxmem=128), current, "xen")
    assert lowered["memory"] == 128


def test_complete_keeps_generated_values_of_current():
    current = complete_spec(
        spec(
            uuid="0b2c4d6e-8f10-4a12-9c14-16e18a20c222",
            vifs=[{"mac": "52:54:00:aa:bb:cc", "bridge": "br0", "model": "virtio"}],
            disks=[{"path": "/i/a.img", "format": "qcow2", "device": "vdc"}],
        ),
        None,
        "qemu",
    )
    desired = complete_spec(spec(vifs=[{"bridge": "br1"}], disks=[{"path": "/i/a.img"}]), current, "qemu")
    assert desired["uuid"] == current["uuid"]
    assert desired["vifs"][0]["mac"] == "52:54:00:aa:bb:cc"
    assert desired["vifs"][0]["bridge"] == "br1"
    assert desired["disks"][0]["format"] == "qcow2" and desired["disks"][0]["device"] == "vdc"
    assert diff_specs(desired, current) == ["vifs"]


def test_changing_to_hvm_needs_the_kernel_removed():
    current = complete_spec(spec(kernel="/boot/vmlinuz"), None, "xen")
    with pytest.raises(ValidationError) as info:
        complete_spec(spec(type="hvm"), current, "xen")
    assert info.value.parameter == "kernel"
    assert complete_spec(spec(type="hvm", kernel=""), current, "xen")["kernel"] is None


def test_type_change_on_kvm_switches_buses_and_models():
    current = complete_spec(spec(type="hvm", disks=[{"path": "/i/a.img"}], vifs=[{"bridge": "br0"}]), None, "qemu")
    assert current["disks"][0]["device"] == "sda" and current["vifs"][0]["model"] == "e1000"
    changed = complete_spec(spec(type="pv"), current, "qemu")
    assert changed["disks"][0]["device"] == "vda" and changed["vifs"][0]["model"] == "virtio"
    assert changed["vifs"][0]["mac"] == current["vifs"][0]["mac"]
    named = complete_spec(spec(type="pv", disks=[{"path": "/i/a.img", "device": "sdb"}]), current, "qemu")
    assert named["disks"][0]["device"] == "sdb"


def test_bridge_vif_needs_a_bridge():
    with pytest.raises(ValidationError) as info:
        complete_spec(spec(vifs=[{"nettype": "bridge"}]), None, "xen", prefix="guests[0].")
    assert info.value.parameter == "guests[0].vifs[0].bridge"


def test_detect_format():
    assert detect_format(b"QFI\xfb\x00\x00\x00\x03") == "qcow2"
    assert detect_format(b"\x00" * 8) == "raw"
    assert detect_format(b"") == "raw"


# --------------------------------------------------------------------------- render / parse

CAPS = {
    "xen": {"driver": "xen", "loader": "/usr/lib/xen/boot/hvmloader"},
    "kvm": {"driver": "qemu", "domain_type": "kvm", "arch": "x86_64"},
    "qemu": {"driver": "qemu", "domain_type": "qemu"},
    "test": {"driver": "test"},
}


@pytest.mark.parametrize("driver", sorted(CAPS))
@pytest.mark.parametrize("gtype", ["pv", "hvm", "pvh"])
def test_render_parse_round_trip(driver, gtype):
    if gtype == "pvh" and driver in ("kvm", "qemu"):
        pytest.skip("pvh is Xen only")
    boot = {} if gtype == "hvm" else {"kernel": "/boot/vmlinuz", "ramdisk": "/boot/initrd", "cmdline": "ro quiet"}
    vifs = [
        {"bridge": "br0", "tag": "eth0", "ip": "192.0.2.1", "script": "vif-bridge"},
        {"nettype": "route", "tag": "eth1"},
    ]
    full = complete_spec(
        spec(
            type=gtype,
            memory=100,
            maxmem=200,
            vcpus=2,
            maxvcpus=3,
            cpus="1,2",
            disks=[{"path": "/i/a.img", "tag": "root", "name": "a"}, {"path": "/dev/sdz", "type": "phy"}],
            vifs=vifs,
            extra={"on_reboot": "destroy"},
            **boot,
        ),
        None,
        CAPS[driver]["driver"],
        domain_type=CAPS[driver].get("domain_type"),
    )
    parsed = parse_domain(render_domain(full, CAPS[driver]))
    parsed["autostart"] = full["autostart"]
    assert diff_specs(full, parsed) == []
    assert parsed == full


@pytest.mark.parametrize(
    "unit, value, mib",
    [
        (None, "262144", 256),
        ("KiB", "262144", 256),
        ("MiB", "256", 256),
        ("GiB", "2", 2048),
        ("b", str(256 * 1024 * 1024), 256),
        ("M", "64", 64),
    ],
)
def test_parse_memory_units(unit, value, mib):
    attr = f" unit='{unit}'" if unit else ""
    xml = f"<domain><name>x</name><memory{attr}>{value}</memory><os><type>hvm</type></os></domain>"
    parsed = parse_domain(xml)
    assert parsed["maxmem"] == parsed["memory"] == mib


def test_parse_treats_linux_os_type_as_pv():
    xml = render_domain(complete_spec(spec(kernel="/k"), None, "xen"), CAPS["xen"])
    root = etree.fromstring(xml.encode())
    root.find("os/type").text = "linux"
    root.remove(root.find("metadata"))
    parsed = parse_domain(etree.tostring(root, encoding="unicode"))
    assert parsed["type"] == "pv"
    assert parsed["kernel"] == "/k"


def test_parse_foreign_domain_without_metadata():
    xml = """<domain type='kvm'><name>other</name><uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid>
      <memory unit='MiB'>1024</memory><vcpu>2</vcpu><os><type>hvm</type></os>
      <cputune><vcpupin vcpu='0' cpuset='3'/><vcpupin vcpu='1' cpuset='3'/></cputune>
      <devices><disk type='file' device='cdrom'><source file='/x.iso'/><target dev='hdc'/></disk>
      <interface type='network'><mac address='52:54:00:01:02:03'/><source network='default'/></interface>
      </devices></domain>"""
    parsed = parse_domain(xml)
    assert parsed["memory"] == parsed["maxmem"] == 1024
    assert parsed["vcpus"] == parsed["maxvcpus"] == 2
    assert parsed["cpus"] == "3"
    assert parsed["disks"] == []  # the cdrom is not a disk of the spec
    assert parsed["vifs"][0]["nettype"] == "nat" and parsed["vifs"][0]["network"] == "default"


@pytest.mark.parametrize("case", sorted(p.stem for p in GOLDEN.glob("*.xml")))
def test_golden_render(case):
    assert G.canonical_xml(golden_specs().render_case(case)) == G.canonical_xml((GOLDEN / f"{case}.xml").read_text())


LIBVIRT_SCHEMA = Path("/usr/share/libvirt/schemas/domain.rng")
_SCHEMA: list = []


def libvirt_schema():
    """libvirt's domain schema, loaded once (None when not installed)."""
    if not _SCHEMA:
        _SCHEMA.append(etree.RelaxNG(etree.parse(str(LIBVIRT_SCHEMA))) if LIBVIRT_SCHEMA.exists() else None)
    return _SCHEMA[0]


@pytest.mark.skipif(not LIBVIRT_SCHEMA.exists(), reason="libvirt's RNG schemas are not installed")
@pytest.mark.parametrize("case", sorted(p.stem for p in GOLDEN.glob("*.xml")))
def test_golden_xml_is_valid_for_libvirt(case):
    schema = libvirt_schema()
    assert schema.validate(etree.parse(str(GOLDEN / f"{case}.xml"))), schema.error_log.last_error


def test_every_golden_case_has_a_file():
    CASES = golden_specs().CASES
    assert sorted(CASES) == sorted(p.stem for p in GOLDEN.glob("*.xml"))
    assert {"xen-pv", "xen-hvm", "xen-pvh", "kvm-pv", "qemu-pv", "test-pv"} <= set(CASES)


# --------------------------------------------------------------------------- in-place update

FOREIGN = """<domain type='kvm'>
  <name>lcfgtest-dom-u</name>
  <uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid>
  <memory unit='KiB'>524288</memory>
  <currentMemory unit='KiB'>524288</currentMemory>
  <vcpu placement='static'>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/i/a.img'/>
      <target dev='vda' bus='virtio'/><address type='pci' domain='0x0000' bus='0x00' slot='0x07' function='0x0'/></disk>
    <disk type='file' device='cdrom'><source file='/i/boot.iso'/><target dev='sda' bus='sata'/></disk>
    <interface type='bridge'><mac address='52:54:00:11:22:33'/><source bridge='br0'/><model type='virtio'/></interface>
    <video><model type='cirrus'/></video>
  </devices>
</domain>"""


def test_update_touches_only_changed_fields():
    current = parse_domain(FOREIGN)
    current["autostart"] = False
    assert current["extra"]["on_reboot"] == "restart"  # libvirt's default when absent
    desired = complete_spec(spec(memory=256, vcpus=1, maxvcpus=2, cpus="0"), current, "qemu")
    changed = diff_specs(desired, current)
    assert changed == ["memory", "maxvcpus", "cpus"]
    new = update_domain_xml(FOREIGN, desired, changed, CAPS["kvm"])
    root = etree.fromstring(new.encode())
    assert root.find("devices/video/model").get("type") == "cirrus"  # unknown device kept
    assert root.find("devices/disk[@device='cdrom']") is not None
    assert root.find("devices/disk/address").get("slot") == "0x07"  # unchanged disk element kept
    assert root.find("os/type").get("machine") == "pc"
    reparsed = parse_domain(new)
    reparsed["autostart"] = False
    assert diff_specs(desired, reparsed) == []


def test_update_replaces_changed_devices_and_keeps_others():
    current = parse_domain(FOREIGN)
    assert reserved_targets(FOREIGN) == ["sda"]
    desired = complete_spec(
        spec(disks=[{"path": "/i/a.img"}, {"path": "/i/b.img"}], vifs=[{"bridge": "br0"}, {"nettype": "nat"}]),
        current,
        "qemu",
        reserved=reserved_targets(FOREIGN),
    )
    new = update_domain_xml(FOREIGN, desired, ["disks", "vifs"], CAPS["kvm"])
    root = etree.fromstring(new.encode())
    disks = root.findall("devices/disk[@device='disk']")
    assert [d.find("target").get("dev") for d in disks] == ["vda", "vdb"]
    assert disks[0].find("address") is not None  # kept as it was
    macs = [i.find("mac").get("address") for i in root.findall("devices/interface")]
    assert macs[0] == "52:54:00:11:22:33" and len(macs) == 2
    assert root.find("devices/video") is not None


def test_update_boot_fields_can_be_removed():
    xml = render_domain(complete_spec(spec(kernel="/k", ramdisk="/r", cmdline="ro"), None, "xen"), CAPS["xen"])
    current = parse_domain(xml)
    current["autostart"] = False
    desired = complete_spec(spec(kernel="", ramdisk="", cmdline="", bootloader="pygrub"), current, "xen")
    changed = diff_specs(desired, current)
    assert set(changed) == {"kernel", "ramdisk", "cmdline", "bootloader"}
    parsed = parse_domain(update_domain_xml(xml, desired, changed, CAPS["xen"]))
    assert (parsed["kernel"], parsed["ramdisk"], parsed["cmdline"], parsed["bootloader"]) == (
        None,
        None,
        None,
        "pygrub",
    )


def test_extra_fragments_merge_idempotently():
    base = render_domain(complete_spec(spec(), None, "qemu"), CAPS["qemu"])
    fragments = [
        "<features><acpi/><apic/><pae/></features>",
        "<devices><rng model='virtio'><backend model='random'>/dev/urandom</backend></rng></devices>",
    ]
    current = parse_domain(base)
    current["autostart"] = False
    current["extra"]["xml"] = present_fragments(base, fragments)
    assert current["extra"]["xml"] == []
    desired = complete_spec(spec(extra={"xml": fragments}), current, "qemu")
    assert diff_specs(desired, current) == ["extra"]
    merged = update_domain_xml(base, desired, ["extra"], CAPS["qemu"])
    # libvirt adds defaults (addresses) - still counted as present
    root = etree.fromstring(merged.encode())
    etree.SubElement(root.find("devices/rng"), "address", type="pci", slot="0x09")
    merged = etree.tostring(root, encoding="unicode")
    assert present_fragments(merged, fragments) == fragments
    assert (
        len(
            etree.fromstring(update_domain_xml(merged, desired, ["extra"], CAPS["qemu"]).encode()).findall(
                "devices/rng"
            )
        )
        == 1
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", {}),
        ("on_crash=preserve, domain_type=qemu", {"on_crash": "preserve", "domain_type": "qemu"}),
        ("on_crash=preserve on_reboot=destroy", {"on_crash": "preserve", "on_reboot": "destroy"}),
        (
            '{"on_poweroff": "restart", "xml": ["<features><pae/></features>"]}',
            {"on_poweroff": "restart", "xml": ["<features><pae/></features>"]},
        ),
        (
            "<features><pae/></features>\n<devices><watchdog model='i6300esb'/></devices>",
            {"xml": ["<features><pae/></features>", '<devices><watchdog model="i6300esb"/></devices>']},
        ),
    ],
)
def test_extra_as_text(text, expected):
    assert parse_extra_text(text) == expected
    validated = spec(extra=text)["extra"]
    assert {k: v for k, v in validated.items() if v is not None} == expected


@pytest.mark.parametrize("text", ["on_crash", "<features>", "{not json", "[1, 2]", "on_crash=explode"])
def test_bad_extra_text_names_extra(text):
    with pytest.raises(ValidationError) as info:
        spec(extra=text)
    assert info.value.parameter.startswith("extra")


def test_canonical_xml_ignores_formatting():
    assert G.canonical_xml("<a x='1'>\n  <b/>\n</a>") == G.canonical_xml('<a x="1"><b></b></a>')
    assert G.canonical_xml("<a><b/></a>") != G.canonical_xml("<a><c/></a>")


# --------------------------------------------------------------------------- properties

_paths = st.lists(
    st.from_regex(r"\A/[a-z]{1,8}/[a-z0-9_.-]{1,12}\Z").filter(lambda p: not p.endswith("/..")), unique=True, max_size=4
)
_vif = st.one_of(
    st.fixed_dictionaries(
        {
            "nettype": st.just("bridge"),
            "bridge": st.from_regex(r"\A[a-z][a-z0-9]{0,8}\Z"),
            "tag": st.one_of(st.none(), st.from_regex(r"\A[a-z0-9]{1,6}\Z")),
        }
    ),
    st.fixed_dictionaries(
        {"nettype": st.sampled_from(["nat", "route"]), "tag": st.one_of(st.none(), st.from_regex(r"\A[a-z0-9]{1,6}\Z"))}
    ),
)


@settings(max_examples=60, deadline=None)
@given(
    driver=st.sampled_from(sorted(CAPS)),
    gtype=st.sampled_from(["pv", "hvm", "pvh"]),
    memory=st.integers(16, 4096),
    extra_mem=st.integers(0, 4096),
    vcpus=st.integers(1, 8),
    extra_vcpus=st.integers(0, 8),
    cpus=st.lists(st.integers(0, 31), unique=True, max_size=6),
    paths=_paths,
    vifs=st.lists(_vif, max_size=3),
    fmt=st.sampled_from([None, "raw", "qcow2"]),
)
def test_property_parse_of_render_is_identity(
    driver, gtype, memory, extra_mem, vcpus, extra_vcpus, cpus, paths, vifs, fmt
):
    if gtype == "pvh" and driver in ("kvm", "qemu"):
        gtype = "pv"
    params = {
        "type": gtype,
        "memory": memory,
        "maxmem": memory + extra_mem,
        "vcpus": vcpus,
        "maxvcpus": vcpus + extra_vcpus,
        "cpus": ",".join(map(str, cpus)),
        "disks": [{"path": p, "format": fmt} for p in paths],
        "vifs": vifs,
    }
    if gtype != "hvm":
        params["kernel"] = "/boot/vmlinuz"
    full = complete_spec(spec(**params), None, CAPS[driver]["driver"], domain_type=CAPS[driver].get("domain_type"))
    xml = render_domain(full, CAPS[driver])
    schema = libvirt_schema()
    if schema is not None:
        assert schema.validate(etree.fromstring(xml.encode())), schema.error_log.last_error
    parsed = parse_domain(xml)
    parsed["autostart"] = full["autostart"]
    assert parsed == full
    # completing the same request against what was rendered changes nothing
    assert diff_specs(complete_spec(spec(**params), parsed, CAPS[driver]["driver"]), parsed) == []


_guest_params = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["pv", "hvm"]),
        "memory": st.integers(16, 2048),
        "vcpus": st.integers(1, 4),
        "cpus": st.one_of(
            st.just(""),
            st.lists(st.integers(0, 15), min_size=1, unique=True, max_size=4).map(lambda c: ",".join(map(str, c))),
        ),
        "disks": _paths.map(lambda paths: [{"path": p} for p in paths]),
        "vifs": st.lists(_vif, max_size=3),
        "boot": st.booleans(),
        "on_crash": st.sampled_from([None, "destroy", "preserve", "restart"]),
    }
)


def _as_params(drawn: dict) -> dict:
    params = {k: v for k, v in drawn.items() if k not in ("boot", "on_crash")}
    params["maxmem"] = params["memory"]
    params["maxvcpus"] = params["vcpus"]
    if drawn["type"] != "hvm":
        params["kernel"] = "/boot/vmlinuz" if drawn["boot"] else ""
    else:
        params["kernel"] = ""
    params["extra"] = {"on_crash": drawn["on_crash"]}
    return params


@settings(max_examples=60, deadline=None)
@given(
    driver=st.sampled_from(sorted(CAPS)),
    first=_guest_params,
    second=_guest_params,
    leave_out=st.sets(st.sampled_from(["memory", "vcpus", "cpus", "disks", "vifs", "type", "extra"])),
)
def test_property_update_in_place_reaches_the_target(driver, first, second, leave_out):
    caps = CAPS[driver]
    current = complete_spec(spec(**_as_params(first)), None, caps["driver"], domain_type=caps.get("domain_type"))
    xml = render_domain(current, caps)
    parsed = parse_domain(xml)
    parsed["autostart"] = False
    wanted = _as_params(second)
    for key in leave_out:  # left out = leave alone
        wanted.pop(key, None)
    if "memory" in leave_out:
        wanted.pop("maxmem")
    if "vcpus" in leave_out:
        wanted.pop("maxvcpus")
    if wanted.get("type", parsed["type"]) == "hvm":
        wanted["kernel"] = ""
    target = complete_spec(spec(**wanted), parsed, caps["driver"])
    changed = diff_specs(target, parsed)
    updated = update_domain_xml(xml, target, changed, caps)
    schema = libvirt_schema()
    if schema is not None:
        assert schema.validate(etree.fromstring(updated.encode())), schema.error_log.last_error
    reparsed = parse_domain(updated)
    reparsed["autostart"] = False
    reparsed["extra"]["xml"] = []
    assert diff_specs(target, reparsed) == []
    for key in leave_out - {"type"}:
        if key in ("memory", "vcpus", "cpus", "disks"):
            assert reparsed[key] == parsed[key] or "type" in changed


@pytest.mark.parametrize("from_extra", [False, True])
def test_one_guest_agent_channel_whether_or_not_extra_xml_brings_one(from_extra):
    fragment = (
        "<devices><channel type='unix'><source mode='bind'/>"
        "<target type='virtio' name='org.qemu.guest_agent.0'/></channel></devices>"
    )
    extra = {"xml": [fragment]} if from_extra else {}
    full = complete_spec(spec(extra=extra), None, "kvm", domain_type="kvm")
    root = etree.fromstring(render_domain(full, CAPS["kvm"]).encode())
    channels = root.findall("devices/channel")
    assert [c.find("target").get("name") for c in channels] == ["org.qemu.guest_agent.0"]
    assert (channels[0].find("source") is not None) is from_extra  # the fragment's own, when it has one
    xen = etree.fromstring(render_domain(complete_spec(spec(), None, "xen"), CAPS["xen"]).encode())
    assert xen.findall("devices/channel") == []  # libxl: no virtio-serial agent port
