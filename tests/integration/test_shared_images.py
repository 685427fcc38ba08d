"""Red-team round 1 (F1, F2, F3, F8, F10, F12) against the real libvirtd (qemu:///system): a
guest spec cannot reach another guest's image or a template, remove_disks never deletes one,
extra.xml cannot place a socket on the host or have the host write memory dumps, xen_group
holds vif scripts to the host-access rules. Every refusal leaves libvirt's definitions and the
files as they were. Names: ``lcfgt-fixa-``."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from support import libvirt_domains, remove_domains, run_module, storage_directory

pytest.importorskip("libvirt")

pytestmark = pytest.mark.integration

URI = "qemu:///system"
PREFIX = "lcfgt-fixa-"
SOCKET = Path(f"/tmp/{PREFIX}sock")


def ours() -> dict:
    return {name: xml for name, xml in libvirt_domains(URI).items() if name.startswith(PREFIX)}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def store():
    """A storage directory with a template, a clone xen_disk made of it (origin recorded), and
    a guest (victim) running on nothing but defined with the clone."""
    remove_domains(URI, PREFIX)
    SOCKET.unlink(missing_ok=True)
    with storage_directory(PREFIX) as directory:
        template = directory / "tmpl.img"
        subprocess.run(["truncate", "-s", "1M", str(template)], check=True)
        template.write_bytes(b"template" + bytes(1024 * 1024 - 8))
        clone = directory / "clone.img"
        result = run_module(
            "xen_disk", {"path": str(clone), "template": str(template), "format": "raw", "template_format": "raw"}
        )
        assert result.get("failed") is not True, result
        result = run_module("xen_domain", guest("victim", clone))
        assert result.get("failed") is not True, result
        yield directory, template, clone
        remove_domains(URI, PREFIX)
    SOCKET.unlink(missing_ok=True)


def guest(name: str, disk: Path | None = None, **fields) -> dict:
    spec = {
        "uri": URI,
        "name": f"{PREFIX}{name}",
        "memory": 64,
        "vcpus": 1,
        "type": "hvm",
        "extra": {"domain_type": "qemu"},
        **fields,
    }
    if disk is not None:
        spec["disks"] = [{"path": str(disk), "format": "raw"}]
    return spec


def refused(params: dict, module: str = "xen_domain") -> str:
    before = ours()
    for check in (True, False):
        result = run_module(module, params, check=check)
        assert result.get("failed") is True, result
        assert ours() == before  # nothing defined, nothing redefined
    return result["msg"]


# --------------------------------------------------------------------------- F2 remove_disks


def test_remove_disks_keeps_the_template_and_another_guests_image(store):
    directory, template, clone = store
    kept = {path: digest(path) for path in (template, clone)}
    own = directory / "own.img"
    own.write_bytes(b"own")
    # defined as the attack had it (before the refusal below existed: the play's own option)
    for name, disk in (("evil-t", template), ("evil-c", clone)):
        spec = guest(name, disk, allow_host_resources=True)
        spec["disks"].append({"path": str(own), "format": "raw"})
        assert run_module("xen_domain", spec).get("failed") is not True
        assert run_module("xen_domain", guest(name, state="absent", remove_disks=True), check=True)["actions"] == [
            "undefine"
        ] + ([f"remove_disk {own}"] if name == "evil-t" else [])
        result = run_module("xen_domain", guest(name, state="absent", remove_disks=True))
        assert result.get("failed") is not True, result
        warnings = json.dumps(result.get("warnings", []))  # strings, or dicts in newer ansible-core
        if disk == template:
            assert f"{template} kept: it is the template of {clone}" in warnings
            assert result["actions"] == ["undefine", f"remove_disk {own}"]  # its own image does go
        else:
            # own.img is now used by nobody but it was removed with evil-t; the clone stays
            assert f"{clone} kept: guest(s) {PREFIX}victim (disk) use it" in warnings
        assert f"{PREFIX}{name}" not in ours()
    assert {path: digest(path) for path in (template, clone)} == kept
    assert f"{PREFIX}victim" in ours()


# --------------------------------------------------------------------------- F3 attaching


@pytest.mark.parametrize("field", ["disk", "kernel", "ramdisk"])
@pytest.mark.parametrize("target", ["clone", "template"])
def test_a_guest_cannot_open_another_guests_image_or_a_template(store, field, target):
    _directory, template, clone = store
    path = clone if target == "clone" else template
    spec = guest("evil", path) if field == "disk" else guest("evil", type="pv", **{field: str(path)})
    msg = refused(spec)
    parameter = "disks[0].path" if field == "disk" else field
    assert msg.startswith(f"{parameter}: {path} is "), msg
    assert (f"guest(s) {PREFIX}victim (disk)" if target == "clone" else f"the template of {clone}") in msg
    msg = refused({"uri": URI, "guests": [{k: v for k, v in spec.items() if k != "uri"}]}, "xen_guests")
    assert msg.startswith(f"guests[0].{parameter}: "), msg
    # the play can share it
    result = run_module("xen_domain", dict(spec, allow_host_resources=True), check=True)
    assert result.get("failed") is not True and result["actions"][0] == "define", result


def test_two_guests_of_one_call_cannot_share_a_disk_but_may_share_a_kernel(store):
    directory, _template, _clone = store
    image, kernel = directory / "new.img", directory / "vmlinuz"
    kernel.write_bytes(b"kernel")
    items = [
        {k: v for k, v in guest(n, image, type="pv", kernel=str(kernel)).items() if k != "uri"} for n in ("a", "b")
    ]
    msg = refused({"uri": URI, "guests": items}, "xen_guests")
    assert msg.startswith(f"guests[1].disks[0].path: {image} is also guests[0].disks[0].path"), msg
    items[1]["disks"][0]["path"] = str(directory / "other.img")
    result = run_module("xen_guests", {"uri": URI, "guests": items}, check=True)
    assert result.get("failed") is not True, result


def test_a_guests_own_template_cannot_be_its_disk(store):
    directory, template, _clone = store
    item = {k: v for k, v in guest("evil", directory / "new.img", type="pv").items() if k != "uri"}
    item.update(template=str(template), kernel=str(template))
    msg = refused({"uri": URI, "guests": [item]}, "xen_guests")
    assert msg.startswith("guests[0].kernel: ") and "template" in msg, msg


def test_xen_disk_refuses_another_guests_image_as_template(store):
    directory, template, clone = store
    new = directory / "stolen.img"
    for params in (
        {"path": str(new), "template": str(clone), "format": "raw"},  # recorded clone
        {"path": str(new), "template": str(clone), "format": "raw", "uri": URI},
    ):
        for check in (True, False):
            result = run_module("xen_disk", params, check=check)
            assert result.get("failed") is True, result
            assert result["msg"].startswith(f"template: {clone} is a "), result["msg"]
            assert not new.exists()
    # a disk of a running or defined guest that xen_disk did not clone: known through libvirt
    plain = directory / "plain.img"
    plain.write_bytes(b"data")
    assert run_module("xen_domain", dict(guest("plain", plain), allow_host_resources=True)).get("failed") is not True
    result = run_module("xen_disk", {"path": str(new), "template": str(plain), "format": "raw", "uri": URI})
    assert result["msg"].startswith(f"template: {plain} is a disk of domain(s) {PREFIX}plain"), result["msg"]
    assert not new.exists()
    assert digest(template)  # still readable, untouched by the refusals


# --------------------------------------------------------------------------- F12


def test_a_directory_is_not_a_disk_image(store):
    directory, _template, _clone = store
    for path in (f"{directory}/", str(directory), f"{directory}/sub"):
        os.makedirs(f"{directory}/sub", exist_ok=True)
        spec = guest("dir")
        spec["disks"] = [{"path": path, "format": "raw"}]
        assert "must name an image file, not a directory" in refused(spec)


# --------------------------------------------------------------------------- F1, F10 extra


def test_a_unix_channel_cannot_place_its_socket_on_the_host(store):
    fragment = (
        "<devices><channel type='unix'><source mode='bind'/><target type='virtio' "
        f"name='../../../../../../../../..{SOCKET}'/></channel></devices>"
    )
    spec = guest("ch", extra={"domain_type": "qemu", "xml": [fragment]}, state="running")
    assert refused(spec).startswith("extra.xml[0]: <target type='virtio'> in <channel type='unix'>")
    assert not SOCKET.exists()
    agent = fragment.replace(f"../../../../../../../../..{SOCKET}", "org.qemu.guest_agent.0")
    result = run_module("xen_domain", guest("ch", extra={"domain_type": "qemu", "xml": [agent]}), check=True)
    assert result.get("failed") is not True, result


@pytest.mark.parametrize(
    "extra, parameter",
    [
        ({"on_crash": "coredump-restart"}, "extra.on_crash"),
        ({"xml": ["<on_crash>coredump-destroy</on_crash>"]}, "extra.xml[0]"),
        ({"xml": ["<devices><watchdog model='i6300esb' action='dump'/></devices>"]}, "extra.xml[0]"),
        ({"xml": ["<features><tcg><tb-cache unit='MiB'>2048</tb-cache></tcg></features>"]}, "extra.xml[0]"),
    ],
)
def test_host_dumps_and_host_memory_need_the_play(store, extra, parameter):
    spec = guest("dump", extra=dict(extra, domain_type="qemu"))
    assert refused(spec).startswith(f"{parameter}: ")
    item = {k: v for k, v in spec.items() if k != "uri"}
    assert refused({"uri": URI, "guests": [item]}, "xen_guests").startswith(f"guests[0].{parameter}: ")
    result = run_module("xen_domain", dict(spec, allow_host_resources=True), check=True)
    assert result.get("failed") is not True, result


# --------------------------------------------------------------------------- F8 xen_group


def test_xen_group_refuses_a_vif_script_path(store):
    spec = guest("g1", vifs=[{"mac": "52:54:00:fa:0a:01", "nettype": "nat"}])
    assert run_module("xen_domain", spec).get("failed") is not True
    member_with_a_script_path = {"name": f"{PREFIX}g1", "vifs": [{"mac": "52:54:00:fa:0a:01", "script": "/tmp/evil"}]}
    for params, parameter in (
        ({"script": "/bin/sh"}, "script"),
        ({"members": [member_with_a_script_path]}, "members[0].vifs[0].script"),
    ):
        msg = refused({"uri": URI, "name": "cl", "members": [f"{PREFIX}g1"], **params}, "xen_group")
        assert msg.startswith(f"{parameter}: vif script "), msg
        result = run_module(
            "xen_group",
            {"uri": URI, "name": "cl", "members": [f"{PREFIX}g1"], "allow_host_resources": True, **params},
            check=True,
        )
        assert result.get("failed") is not True, result
    result = run_module(
        "xen_group", {"uri": URI, "name": "cl", "members": [f"{PREFIX}g1"], "script": "vif-nat"}, check=True
    )
    assert result.get("failed") is not True, result
