"""Faults around templates and clones (issue 10 §1, §5), on the real host: qemu-img, libguestfs,
libvirtd (qemu:///system), a loop filesystem.

Each test reads back what is on disk afterwards: the storage directory's listing (partial
files included), the template's checksum, the recorded origin. Files live in
/var/lib/lcfg-xen/lcfgt-tmpl-*; the libvirt domain is lcfgt-tmpl-dom. Templates are built
without libguestfs (sfdisk and mkfs.ext4 -E offset on a sparse file), so the only appliance
launch is the one test that needs a mount to fail (about 30 s under TCG).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from lxml import etree

from support import define_by_hand, run_module, storage_directory

pytestmark = pytest.mark.integration

URI = "qemu:///system"
DOMAIN = "lcfgt-tmpl-dom"
MIB = 1024 * 1024
PROFILE_URL = "http://lcfg.example.org/profiles/example.org/"
# msdos table: 1 primary (100 MiB), 2 extended over the rest, 5 logical inside it.
LAYOUT = "label: dos\nstart=2048, size=204800, type=83\nstart=206848, type=5\nstart=208896, type=83\n"


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def listing(directory) -> list[str]:
    return sorted(os.listdir(directory))


def raw_template(
    path: Path, layout: str = LAYOUT, size_mb: int = 256, ext4_on: int | None = None, data_mb: int = 0
) -> Path:
    """A sparse raw image with ``layout`` (sfdisk), ext4 on partition ``ext4_on``, and
    ``data_mb`` MiB of random bytes written at 120 MiB (inside partition 5's range)."""
    with open(path, "wb") as handle:
        handle.truncate(size_mb * MIB)
        if data_mb:
            handle.seek(120 * MIB)
            handle.write(os.urandom(data_mb * MIB))
    subprocess.run(["sfdisk", "-q", str(path)], input=layout, text=True, check=True, capture_output=True)
    if ext4_on is not None:
        table = json.loads(
            subprocess.run(["sfdisk", "-J", str(path)], capture_output=True, text=True, check=True).stdout
        )["partitiontable"]["partitions"]
        part = next(p for p in table if p["node"].endswith(str(ext4_on)))
        subprocess.run(
            [
                "mkfs.ext4",
                "-q",
                "-F",
                "-E",
                f"offset={part['start'] * 512},nodiscard",
                str(path),
                f"{part['size'] // 2}k",
            ],
            check=True,
            capture_output=True,
        )
    return path


def qcow2_of(raw: Path, path: Path) -> Path:
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(path)], check=True)
    return path


def truncated(path: Path, keep: int | None = None) -> Path:
    """Cut ``path`` to ``keep`` bytes (default: a quarter of it), as a failed copy leaves it."""
    os.truncate(path, keep if keep is not None else os.stat(path).st_size // 4)
    return path


@pytest.fixture(scope="module")
def store():
    with storage_directory("lcfgt-tmpl-") as directory:
        yield directory


@pytest.fixture(scope="module")
def good_raw(store):
    """A raw template with data (partitions 1, 2, 5; ext4 on 5), shared by the tests."""
    return raw_template(store / "lcfgt-tmpl-good.img", ext4_on=5, data_mb=8)


def disk(store, name, **extra):
    return dict({"path": str(store / name), "storage_dirs": [str(store)]}, **extra)


def warnings_of(result) -> str:
    return json.dumps(result.get("warnings", []))


# ---------------------------------------------------------------- a template unfit to clone


@pytest.mark.parametrize(
    "extra",
    [{"clone": "copy"}, {"clone": "overlay"}, {"clone": "copy", "profile_url": PROFILE_URL, "partition": 5}],
    ids=["copy", "overlay", "copy-with-injection"],
)
def test_truncated_qcow2_template_is_refused_with_nothing_created(store, good_raw, extra):
    """Issue 10 §1: a truncated qcow2 template gave rc 0, changed, and a clone that does not mount."""
    template = store / f"lcfgt-tmpl-trunc-{extra['clone']}-{len(extra)}.qcow2"
    truncated(qcow2_of(good_raw, template))
    before, checksum = listing(store), sha256(template)
    params = disk(
        store,
        f"lcfgt-tmpl-clone-{extra['clone']}-{len(extra)}.qcow2",
        template=str(template),
        template_format="qcow2",
        **extra,
    )
    check = run_module("xen_disk", params, check=True)
    result = run_module("xen_disk", params)
    for outcome in (check, result):  # check mode predicts the refusal
        assert outcome.get("failed") is True, outcome
        assert f"template {template}" in outcome["msg"] and "corruption" in outcome["msg"], outcome["msg"]
        assert "truncated" in outcome["msg"] and "Nothing was created" in outcome["msg"]
        assert "partition" not in outcome["msg"]  # the partition number is not blamed
    assert listing(store) == before  # no image, no partial file
    assert sha256(template) == checksum


def test_template_without_the_partition_is_refused_before_any_copy(store):
    template = raw_template(store / "lcfgt-tmpl-onepart.img", "label: dos\nstart=2048, type=83\n", size_mb=64)
    before, checksum = listing(store), sha256(template)
    params = disk(store, "lcfgt-tmpl-nopart.img", template=str(template), profile_url=PROFILE_URL, partition=5)
    as_qcow2 = qcow2_of(template, store / "lcfgt-tmpl-onepart.qcow2")  # read through qemu-io
    before.append(as_qcow2.name)
    for check in (True, False):
        for source, extra in ((template, {}), (as_qcow2, {"template_format": "qcow2"})):
            result = run_module("xen_disk", dict(params, template=str(source), **extra), check=check)
            assert result.get("failed") is True, result
            assert f"template {source}" in result["msg"], result["msg"]
            assert "no partition 5 (partitions: 1)" in result["msg"] and "'partition'" in result["msg"]
    # A raw template cut short inside partition 5 is named truncated, not short of a partition.
    cut = raw_template(store / "lcfgt-tmpl-cut.img", ext4_on=5)
    truncated(cut, 150 * MIB)
    result = run_module(
        "xen_disk", disk(store, "lcfgt-tmpl-fromcut.img", template=str(cut), profile_url=PROFILE_URL, partition=5)
    )
    assert result.get("failed") is True and "past the end of the image" in result["msg"], result
    assert "truncated" in result["msg"]
    assert listing(store) == sorted(before + [cut.name])
    assert sha256(template) == checksum


def test_mount_failure_says_what_is_wrong_with_the_image(store):
    """Issue 10 §5: the mount failure blamed 'partition' when the image held no filesystem.
    Partition 5 exists (the pre-check passes) but nothing on the image is a filesystem."""
    template = raw_template(store / "lcfgt-tmpl-nofs.img", size_mb=160)
    before, checksum = listing(store), sha256(template)
    params = disk(store, "lcfgt-tmpl-nofs-clone.img", template=str(template), profile_url=PROFILE_URL, partition=5)
    result = run_module("xen_disk", params)
    assert result.get("failed") is True, result
    message = result["msg"]
    assert f"clone of {template}" in message and "no filesystem" in message, message
    assert "empty or damaged, not the partition number" in message
    assert "set 'partition'" not in message.lower()
    assert listing(store) == before
    assert sha256(template) == checksum


# ---------------------------------------------------------------- clones and their template later


def test_clone_records_its_origin_and_reports_a_changed_template(store, good_raw):
    template = store / "lcfgt-tmpl-changing.img"
    shutil.copyfile(good_raw, template)
    copy = disk(store, "lcfgt-tmpl-copy.img", template=str(template))
    overlay = disk(store, "lcfgt-tmpl-ov.qcow2", template=str(template), clone="overlay")
    for params in (copy, overlay):
        made = run_module("xen_disk", params)
        assert made["changed"] is True and made["template_state"] == "unchanged", made
        origin = json.loads(os.getxattr(params["path"], "trusted.lcfg-xen.origin"))
        assert origin["template"] == str(template) and origin["size"] == template.stat().st_size
        assert origin == made["origin"]
        again = run_module("xen_disk", params)
        assert again["changed"] is False and again["template_changed"] is False, again
        assert again["template_state"] == "unchanged"
    # The template is "repaired": rewritten in place with other content.
    with open(template, "r+b") as handle:
        handle.write(os.urandom(4096))
    checksums = {p["path"]: sha256(p["path"]) for p in (copy, overlay)}
    for params, consequence in ((copy, "the copy is independent"), (overlay, "mix of old and new data")):
        result = run_module("xen_disk", params)
        assert not result.get("failed") and result["changed"] is False, result
        assert result["template_changed"] is True and result["template_state"] == "changed"
        assert "cloned from" in warnings_of(result) and consequence in warnings_of(result)
        assert "content of its first/last MiB" in warnings_of(result)
        assert sha256(params["path"]) == checksums[params["path"]]  # reported, never redone
    info = run_module("xen_disk_info", {"storage_dirs": [str(store)]})
    entries = {e["path"]: e for e in info["images"]}
    assert entries[copy["path"]]["origin"]["template"] == str(template)
    assert entries[copy["path"]]["template_state"] == "changed"
    assert entries[str(template)]["origin"] is None and entries[str(template)]["template_state"] is None
    other = run_module("xen_disk", dict(copy, template=str(good_raw)))  # asked for another template
    assert other["changed"] is False and other["template_state"] == "other", other
    assert f"cloned from {template}, not from {good_raw}" in warnings_of(other)


def test_template_broken_after_cloning_is_reported(store, good_raw):
    template = qcow2_of(good_raw, store / "lcfgt-tmpl-later.qcow2")
    copy = disk(store, "lcfgt-tmpl-later-copy.qcow2", template=str(template), template_format="qcow2")
    overlay = disk(store, "lcfgt-tmpl-later-ov.qcow2", template=str(template), template_format="qcow2", clone="overlay")
    for params in (copy, overlay):
        assert run_module("xen_disk", params)["changed"] is True
    truncated(template)
    checksums = {p["path"]: sha256(p["path"]) for p in (copy, overlay)}
    result = run_module("xen_disk", copy)
    assert not result.get("failed") and result["changed"] is False, result
    assert result["template_state"] == "broken" and result["template_changed"] is True
    assert "now damaged" in warnings_of(result)
    result = run_module("xen_disk", overlay)  # the overlay reads through it: its disk is broken
    assert result.get("failed") is True, result
    assert "now damaged" in result["msg"] and "state: absent" in result["msg"]
    assert {p["path"]: sha256(p["path"]) for p in (copy, overlay)} == checksums


def test_damaged_clone_from_an_earlier_run_is_not_kept_as_ok(store, good_raw):
    """Issue 10 §1: after the template was repaired, the next run kept the broken clone as 'ok'.
    Now the image itself is checked: refused with the fix, never overwritten."""
    params = disk(store, "lcfgt-tmpl-damaged.qcow2", template=str(good_raw), format="qcow2")
    assert run_module("xen_disk", params)["changed"] is True
    truncated(Path(params["path"]))
    damaged = sha256(params["path"])
    for check in (True, False):
        result = run_module("xen_disk", params, check=check)
        assert result.get("failed") is True, result
        assert "is damaged" in result["msg"] and "state: absent" in result["msg"], result["msg"]
    assert sha256(params["path"]) == damaged
    assert run_module("xen_disk", dict(params, state="absent"))["changed"] is True
    redone = run_module("xen_disk", params)
    assert redone["changed"] is True and not redone.get("failed"), redone
    subprocess.run(["qemu-img", "check", "-q", "-f", "qcow2", params["path"]], check=True)


# ---------------------------------------------------------------- a full filesystem


@pytest.fixture
def small_fs(store):
    """A 16 MiB ext4 filesystem on a loop device, mounted at store/small."""
    backing = store / "lcfgt-tmpl-small.fs"
    with open(backing, "wb") as handle:
        handle.truncate(16 * MIB)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(backing)], check=True, capture_output=True)
    device = subprocess.run(
        ["losetup", "-f", "--show", str(backing)], capture_output=True, text=True, check=True
    ).stdout.strip()
    mountpoint = store / "small"
    mountpoint.mkdir()
    try:
        subprocess.run(["mount", device, str(mountpoint)], check=True, capture_output=True)
        try:
            yield mountpoint
        finally:
            subprocess.run(["umount", str(mountpoint)], check=False)
    finally:
        subprocess.run(["losetup", "-d", device], check=False)
        mountpoint.rmdir()
        backing.unlink()


def test_enospc_during_a_clone_fails_clearly_and_leaves_no_partial_file(store, small_fs):
    template = raw_template(store / "lcfgt-tmpl-big.img", ext4_on=5, data_mb=32)
    before, checksum = listing(small_fs), sha256(template)
    params = {
        "path": str(small_fs / "lcfgt-tmpl-full.img"),
        "template": str(template),
        "storage_dirs": [str(store), str(small_fs)],
    }
    result = run_module("xen_disk", params)
    assert result.get("failed") is True, result
    assert "No space left on device" in result["msg"] and str(template) in result["msg"], result["msg"]
    assert listing(small_fs) == before  # neither the image nor its partial file
    assert sha256(template) == checksum


# ---------------------------------------------------------------- teardown messages


def test_teardown_names_a_directory_given_as_a_disk(store):
    """Issue 10 §5: a disk path that is a directory was reported 'was not found' at teardown."""
    directory = store / "lcfgt-tmpl-dir.img"
    directory.mkdir()
    (directory / "keep").write_text("x")
    root = etree.Element("domain", type="qemu")
    etree.SubElement(root, "name").text = DOMAIN
    etree.SubElement(root, "memory", unit="MiB").text = "64"
    etree.SubElement(etree.SubElement(root, "os"), "type").text = "hvm"
    element = etree.SubElement(etree.SubElement(root, "devices"), "disk", type="file", device="disk")
    etree.SubElement(element, "driver", name="qemu", type="raw")
    etree.SubElement(element, "source", file=str(directory))
    etree.SubElement(element, "target", dev="vda", bus="virtio")
    define_by_hand(URI, etree.tostring(root).decode())
    # defined by hand, so the play adopts it (docs/domains.md)
    params = {
        "name": DOMAIN,
        "state": "absent",
        "remove_disks": True,
        "uri": URI,
        "storage_dirs": [str(store)],
        "adopt": True,
    }
    try:
        check = run_module("xen_domain", params, check=True)
        result = run_module("xen_domain", params)
    finally:
        subprocess.run(["virsh", "-c", URI, "undefine", DOMAIN], capture_output=True, check=False)
    for outcome in (check, result):
        assert not outcome.get("failed"), outcome
        assert f"{directory} kept: it is a directory, not an image file" in warnings_of(outcome), outcome
        assert "was not found" not in warnings_of(outcome)
    assert result["changed"] is True
    assert (directory / "keep").read_text() == "x"
