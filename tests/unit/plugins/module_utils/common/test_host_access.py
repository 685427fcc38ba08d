"""plugins/module_utils/common/host_access.py: what a guest spec (an untrusted profile) may reach on
the host, and the play options that widen it. Pure: no libvirt."""

from __future__ import annotations

import os

import pytest

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import ValidationError
from ansible_collections.lcfg.xen.plugins.module_utils.common.host_access import (
    HostAccess,
    check_guest_access,
    host_access_from_params,
    profile_value_problem,
)
from ansible_collections.lcfg.xen.plugins.module_utils.domain import desired as dx

STORE = "/var/lib/libvirt/images"
DEFAULT = HostAccess(storage_dirs=(STORE,))
TRUSTED_XML = HostAccess(storage_dirs=(STORE,), trusted_extra_xml=True)
EVERYTHING = HostAccess(storage_dirs=(STORE,), allow_host_resources=True)

SHADOW_DISK = (
    "<devices><disk type='file' device='disk'><source file='/etc/shadow'/><target dev='vdz'/></disk></devices>"
)
QEMU_COMMANDLINE = (
    "<qemu:commandline xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>"
    "<qemu:arg value='-set'/><qemu:arg value='x=y'/></qemu:commandline>"
)
HOSTDEV = (
    "<devices><hostdev mode='subsystem' type='pci' managed='yes'><source>"
    "<address domain='0' bus='0' slot='2' function='0'/></source></hostdev></devices>"
)
FILE_SERIAL = "<devices><serial type='file'><source path='/etc/cron.d/evil'/><target port='1'/></serial></devices>"
PTY_SERIAL = "<devices><serial type='pty'><target port='1'/></serial></devices>"


def spec(**params):
    params.setdefault("name", "lcfgt-hatch-unit")
    return dx.validate_spec(params)


def refused(guest, access=DEFAULT, prefix=""):
    with pytest.raises(ValidationError) as info:
        check_guest_access(guest, access, prefix)
    return info.value


# --------------------------------------------------------------------------- extra.xml


@pytest.mark.parametrize(
    "fragment, names",
    [
        (SHADOW_DISK, "<disk type='file'>"),
        (QEMU_COMMANDLINE, "<qemu:commandline>"),
        (HOSTDEV, "<hostdev type='pci'>"),
        (FILE_SERIAL, "type='file'"),
        ("<devices><serial type='unix'><source mode='connect' path='/run/x.sock'/></serial></devices>", "type='unix'"),
        (
            "<devices><console type='tcp'><source mode='connect' host='10.0.0.1' service='25'/></console></devices>",
            "type='tcp'",
        ),
        (
            "<devices><filesystem type='mount'><source dir='/'/><target dir='host'/></filesystem></devices>",
            "<filesystem type='mount'>",
        ),
        ("<devices><interface type='direct'><source dev='eth0' mode='vepa'/></interface></devices>", "<interface"),
        ("<devices><interface type='ethernet'><script path='/bin/sh'/></interface></devices>", "<interface"),
        ("<devices><shmem name='x'><server path='/tmp/s'/></shmem></devices>", "<shmem>"),
        (
            "<devices><redirdev bus='usb' type='tcp'><source mode='connect' host='h' service='1'/>"
            "</redirdev></devices>",
            "<redirdev type='tcp'>",
        ),
        ("<devices><smartcard mode='host'/></devices>", "<smartcard>"),
        (
            "<devices><tpm model='tpm-tis'><backend type='passthrough'><device path='/dev/tpm0'/>"
            "</backend></tpm></devices>",
            "type='passthrough'",
        ),
        ("<devices><emulator>/bin/sh</emulator></devices>", "<emulator>"),
        ("<devices><graphics type='vnc' listen='0.0.0.0'/></devices>", "<graphics type='vnc'>"),
        ("<seclabel type='none' relabel='no'/>", "<seclabel type='none'>"),
        ("<bootloader>/bin/sh</bootloader>", "<bootloader>"),
        ("<devices><rng model='virtio'><backend model='random'>/etc/shadow</backend></rng></devices>", "/etc/shadow"),
        (
            "<devices><rng model='virtio'><backend model='egd' type='tcp'><source mode='connect' host='h' service='1'/>"
            "</backend></rng></devices>",
            "model='egd'",
        ),
        ("<devices><serial type='pty'><log file='/etc/passwd'/></serial></devices>", "<log>"),
        (
            "<devices><video><model type='virtio'><acceleration accel3d='yes' rendernode='/dev/dri/card0'/></model>"
            "</video></devices>",
            "rendernode",
        ),
        (
            "<devices><input type='passthrough' bus='virtio'><source evdev='/dev/input/event0'/></input></devices>",
            "type='passthrough'",
        ),
        ("<features><xen><passthrough state='on'/></xen></features>", "<xen>"),
        ("<memoryBacking><source type='file'/></memoryBacking>", "<memoryBacking>"),
        ("<cpu mode='host-model'><x:y xmlns:x='urn:x'/></cpu>", "namespace"),
        ("<clock offset='utc' xmlns:x='urn:x' x:a='1'/>", "namespaced attribute"),
        ("<sysinfo type='smbios'><oemStrings><entry file='/etc/shadow'/></oemStrings></sysinfo>", "host path"),
        ("<clock offset='utc'><timer name='rtc'>/dev/rtc0</timer></clock>", "host path"),
        ("<devices><controller type='usb'><x dir='/srv'/></controller></devices>", "host path"),
        (
            "<devices><channel type='unix'><source mode='bind' path='/etc/x'/>"
            "<target type='virtio' name='org.qemu.guest_agent.0'/></channel></devices>",
            "path=",
        ),
    ],
)
def test_host_reaching_extra_xml_is_refused_naming_parameter_and_element(fragment, names):
    error = refused(spec(extra={"xml": [PTY_SERIAL, fragment]}), prefix="guests[3].")
    assert error.parameter == "guests[3].extra.xml[1]"
    assert names in error.message
    assert "trusted_extra_xml" in error.message
    # the play option lets the admin have it
    check_guest_access(spec(extra={"xml": [PTY_SERIAL, fragment]}), TRUSTED_XML)
    check_guest_access(spec(extra={"xml": [PTY_SERIAL, fragment]}), EVERYTHING)


@pytest.mark.parametrize(
    "fragment",
    [
        PTY_SERIAL,
        "<devices><console type='pty'><target type='serial' port='0'/></console></devices>",
        "<devices><rng model='virtio'><backend model='random'>/dev/urandom</backend><rate bytes='1024' period='1000'/>"
        "</rng></devices>",
        "<devices><rng model='virtio'><backend model='random'>/dev/random</backend></rng></devices>",
        "<devices><watchdog model='i6300esb' action='reset'/><memballoon model='virtio'><stats period='10'/>"
        "</memballoon></devices>",
        "<devices><video><model type='virtio' heads='1' primary='yes'/></video><input type='tablet' bus='usb'/>"
        "<sound model='ich9'><codec type='micro'/></sound></devices>",
        "<devices><channel type='unix'><source mode='bind'/><target type='virtio' name='org.qemu.guest_agent.0'/>"
        "</channel></devices>",
        "<devices><controller type='usb' model='qemu-xhci'><address type='pci' bus='0x00' slot='0x05'/></controller>"
        "<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm><panic model='isa'/></devices>",
        "<features><acpi/><apic/><pae/><hyperv mode='custom'><relaxed state='on'/></hyperv></features>",
        "<clock offset='localtime'><timer name='rtc' tickpolicy='catchup'/></clock>",
        "<cpu mode='custom' match='exact'><model fallback='allow'>Haswell</model>"
        "<topology sockets='1' dies='1' cores='2' threads='1'/><feature policy='require' name='vmx'/></cpu>",
        "<on_crash>rename-restart</on_crash>",
        "<clock offset='timezone' timezone='Europe/London'/>",
        "<pm><suspend-to-mem enabled='no'/></pm>",
        "<description>web server &amp; friends</description>",
        "<!-- a comment --><features><acpi/></features>",
    ],
)
def test_guest_side_extra_xml_is_allowed_by_default(fragment):
    check_guest_access(spec(extra={"xml": [fragment]}), DEFAULT)


# Red team F1, F10: values that libvirt/QEMU turn into host files or host-side work.
@pytest.mark.parametrize(
    "fragment, words",
    [
        # the unix channel's socket is <libvirt's channel dir>/<domain>/<target name>
        (
            "<devices><channel type='unix'><source mode='bind'/><target type='virtio' "
            "name='../../../../../../../../../tmp/lcfgt-fixa-sock'/></channel></devices>",
            "host path name=",
        ),
        (
            "<devices><channel type='unix'><source mode='bind'/><target type='virtio' name='..'/></channel></devices>",
            "one plain name",
        ),
        (
            "<devices><channel type='unix'><source mode='bind'/><target type='virtio' name='a..b'/>"
            "</channel></devices>",
            "one plain name",
        ),
        # QEMU's TZ: ':file' and '../' read host files as time zones
        ("<clock offset='timezone' timezone=':/etc/shadow'/>", "host path timezone="),
        ("<clock offset='timezone' timezone='../../../etc/shadow'/>", "host path timezone="),
        ("<devices><controller type='usb'><x dir='srv/../../etc'/></controller></devices>", "host path dir="),
        ("<devices><watchdog model='i6300esb' action='dump'/></devices>", "dump directory"),
        ("<on_crash>coredump-restart</on_crash>", "dump directory"),
        ("<on_poweroff>coredump-destroy</on_poweroff>", "dump directory"),
        ("<features><tcg><tb-cache unit='MiB'>4096</tb-cache></tcg></features>", "host memory"),
        # video memory is allocated by QEMU on the host (red team round 2, N7)
        ("<devices><video><model type='qxl' vram64='999999999'/></video></devices>", "vram64="),
        ("<devices><video><model type='vga' vram='16777216'/></video></devices>", "vram="),
    ],
)
def test_values_that_become_host_files_or_host_work_are_refused(fragment, words):
    error = refused(spec(extra={"xml": [fragment]}))
    assert error.parameter == "extra.xml[0]"
    assert words in error.message
    check_guest_access(spec(extra={"xml": [fragment]}), EVERYTHING)


@pytest.mark.parametrize("knob", ["on_crash", "on_reboot", "on_poweroff"])
def test_coredump_lifecycle_knobs_need_the_play(knob):
    error = refused(spec(extra={knob: "coredump-restart"}), prefix="guests[1].")
    assert error.parameter == f"guests[1].extra.{knob}"
    assert "allow_host_resources" in error.message
    check_guest_access(spec(extra={knob: "coredump-restart"}), EVERYTHING)
    check_guest_access(spec(extra={knob: "preserve"}), DEFAULT)


def test_external_entities_are_refused_before_any_file_is_read():
    doctype = "<!DOCTYPE d [<!ENTITY e SYSTEM 'file:///etc/shadow'>]><description>&e;</description>"
    with pytest.raises(ValidationError) as info:
        spec(extra={"xml": [doctype]})
    assert info.value.parameter == "extra.xml[0]"
    assert "DOCTYPE" in info.value.message


def test_extra_text_from_a_profile_is_checked_like_the_list():
    guest = spec(extra=f"{PTY_SERIAL}{SHADOW_DISK}")
    assert refused(guest).parameter == "extra.xml[1]"


# --------------------------------------------------------------------------- boot fields


@pytest.mark.parametrize(
    "bootloader", ["pygrub", "/usr/bin/pygrub", "/usr/lib/xen-4.17/bin/pygrub", "/usr/lib/xen/bin/pygrub"]
)
def test_known_bootloaders_are_allowed(bootloader):
    check_guest_access(spec(type="pv", bootloader=bootloader), DEFAULT)


@pytest.mark.parametrize(
    "bootloader",
    ["/bin/sh", "/usr/lib/xen-4.17/bin/../../../../bin/sh2", "/usr/lib/xen-4.17/bin/pygrub2", "/tmp/pygrub", "sh"],
)
def test_other_bootloaders_need_the_play(bootloader):
    guest = spec(type="pv", bootloader=bootloader) if ".." not in bootloader else {"bootloader": bootloader}
    error = refused(guest)
    assert error.parameter == "bootloader" and "allowed_boot_paths" in error.message
    if bootloader.startswith("/") and ".." not in bootloader:
        check_guest_access(guest, HostAccess(storage_dirs=(STORE,), allowed_boot_paths=(bootloader,)))
    check_guest_access(guest, EVERYTHING)


@pytest.mark.parametrize(
    "args, ok",
    [
        ("--entry=1 -q", True),
        ("--kernel=/boot/vmlinuz --ramdisk=/boot/initrd.img --args=console=hvc0", True),
        ("--output=/etc/cron.d/x", False),
        ("--output-directory=/root", False),
        ("/etc/shadow", False),
        ("-- /etc/shadow", False),
    ],
)
def test_bootloader_arguments_stay_inside_the_guest_disk(args, ok):
    guest = spec(type="pv", bootloader="pygrub", cmdline=args)
    if ok:
        check_guest_access(guest, DEFAULT)
    else:
        assert refused(guest).parameter == "cmdline"
        check_guest_access(guest, EVERYTHING)


@pytest.mark.parametrize("field", ["kernel", "ramdisk"])
def test_kernel_and_ramdisk_outside_the_storage_directories_need_the_play(field):
    boot = {"kernel": f"{STORE}/vmlinuz", field: "/etc/passwd"}
    error = refused(spec(type="pv", **boot), prefix="guests[0].")
    assert error.parameter == f"guests[0].{field}" and "/etc/passwd" in error.message
    check_guest_access(spec(type="pv", **boot), HostAccess(storage_dirs=(STORE,), allowed_boot_paths=("/etc",)))
    check_guest_access(spec(type="pv", **boot), EVERYTHING)
    check_guest_access(spec(type="pv", kernel=f"{STORE}/k", ramdisk=f"{STORE}/sub/i"), DEFAULT)
    check_guest_access(spec(type="pv", kernel="/usr/lib/grub-xen/grub-x86_64-xen.bin"), DEFAULT)


def test_a_symlink_inside_a_storage_directory_cannot_lead_out(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    (store / "initrd").symlink_to("/etc/passwd")
    (store / "vmlinuz").write_text("k")
    access = HostAccess(storage_dirs=(str(store),))
    guest = spec(type="pv", kernel=str(store / "vmlinuz"), ramdisk=str(store / "initrd"))
    with pytest.raises(ValidationError) as info:
        check_guest_access(guest, access, realpath=os.path.realpath)
    assert info.value.parameter == "ramdisk" and "-> /etc/passwd" in info.value.message
    check_guest_access(guest, access)  # lexically inside: a remote host cannot be resolved here


@pytest.mark.parametrize("script", ["/bin/sh", "/tmp/evil", "../../../bin/sh", "sub/vif-x"])
def test_vif_scripts_with_a_path_need_the_play(script):
    guest = {"vifs": [{"bridge": "xenbr0", "script": "vif-bridge"}, {"bridge": "xenbr0", "script": script}]}
    error = refused(guest, prefix="guests[0].")
    assert error.parameter == "guests[0].vifs[1].script" and "Xen's scripts directory" in error.message
    check_guest_access(guest, EVERYTHING)


# --------------------------------------------------------------------------- disks


def test_block_devices_and_images_outside_the_storage_directories_need_the_play():
    shadow = spec(disks=[{"path": f"{STORE}/a.img"}, {"path": "/etc/shadow", "type": "phy"}])
    error = refused(shadow)
    assert error.parameter == "disks[1].path" and "block device" in error.message
    check_guest_access(shadow, HostAccess(storage_dirs=(STORE,), allowed_block_devices=("/etc/shadow",)))
    lvm = spec(disks=[{"path": "/dev/vg0/web", "type": "phy"}])
    check_guest_access(lvm, HostAccess(storage_dirs=(STORE,), allowed_block_devices=("/dev/vg0",)))
    assert (
        refused(lvm, HostAccess(storage_dirs=(STORE,), allowed_block_devices=("/dev/vg",))).parameter == "disks[0].path"
    )
    image = spec(disks=[{"path": "/root/.ssh/authorized_keys"}])
    assert refused(image).parameter == "disks[0].path"
    check_guest_access(image, HostAccess(storage_dirs=(STORE, "/root")))
    check_guest_access(image, EVERYTHING)


# --------------------------------------------------------------------------- options and inventory


def test_options_are_validated_and_default_to_the_collection_list():
    access = host_access_from_params({})
    assert STORE in access.storage_dirs and not access.trusted_extra_xml and not access.allow_host_resources
    assert host_access_from_params({"storage_dirs": ["/srv/vm/"]}).storage_dirs == ("/srv/vm",)
    for params, option in (
        ({"storage_dirs": []}, "storage_dirs"),
        ({"storage_dirs": ["rel"]}, "storage_dirs"),
        ({"allowed_boot_paths": ["boot"]}, "allowed_boot_paths"),
        ({"allowed_block_devices": "/dev/sda"}, "allowed_block_devices"),
    ):
        with pytest.raises(ValidationError) as info:
            host_access_from_params(params)
        assert info.value.parameter == option


@pytest.mark.parametrize(
    "field, value",
    [
        ("extra", QEMU_COMMANDLINE),
        ("extra", SHADOW_DISK),
        ("bootloader", "/bin/sh"),
        ("kernel", "/etc/passwd"),
        ("ramdisk", "/etc/shadow"),
        ("script", "/tmp/evil"),
        ("bootloader_args", "--output=/etc/cron.d/x"),
        ("extra", "{\"xml\": [\"<devices><hostdev mode='subsystem' type='pci'/></devices>\"]}"),
        ("extra", '{"xml": "<!DOCTYPE d [<!ENTITY e SYSTEM \'file:///etc/shadow\'>]><description>&e;</description>"}'),
        ("extra", "on_crash=coredump-restart"),
        ("extra", '{"on_crash": "coredump-destroy"}'),
        ("extra", "<on_crash>coredump-restart</on_crash>"),
        ("extra", "<devices><watchdog action='dump'/></devices>"),
        ("extra", "<devices><channel type='unix'><target type='virtio' name='../../tmp/x'/></channel></devices>"),
    ],
)
def test_profile_values_refused_for_the_inventory(field, value):
    with pytest.raises(ValueError):
        profile_value_problem(field, value, HostAccess(storage_dirs=(STORE,)))


@pytest.mark.parametrize(
    "field, value",
    [
        ("extra", PTY_SERIAL),
        ("extra", "on_crash=preserve"),
        ("bootloader", "pygrub"),
        ("kernel", f"{STORE}/vmlinuz"),
        ("script", "vif-nat"),
        ("bootloader_args", "--entry=0"),
        ("extra", "{{ lookup('pipe', 'id') }}"),
        ("extra", '{"on_crash": "preserve", "xml": ["<features><acpi/></features>"]}'),
        ("extra", "{not json"),
    ],
)
def test_profile_values_allowed_for_the_inventory(field, value):
    profile_value_problem(field, value, HostAccess(storage_dirs=(STORE,)))


def test_a_disk_image_symlinked_out_of_the_storage_directory_is_refused(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    (store / "web.img").symlink_to("/etc/shadow")
    access = HostAccess(storage_dirs=(str(store),))
    guest = spec(disks=[{"path": str(store / "web.img")}])
    with pytest.raises(ValidationError) as info:
        check_guest_access(guest, access, realpath=os.path.realpath)
    assert info.value.parameter == "disks[0].path" and "-> /etc/shadow" in info.value.message
