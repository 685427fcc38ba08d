"""Unit tests for plugins/module_utils/disk/imagecheck.py: partition tables read in Python, the
template fingerprint and its comparison, and the mount-failure diagnosis of _guestfs."""

from __future__ import annotations

import json
import os
import struct
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.lcfg.xen.plugins.module_utils.disk.guestfs import GuestfsSession
from ansible_collections.lcfg.xen.plugins.module_utils.disk.imagecheck import (
    compare_origin,
    image_problems,
    partition_problem,
    partition_table,
    template_state,
)

MIB = 1024 * 1024


def sfdisk_image(tmp_path, layout: str, size: int = 64 * MIB):
    path = tmp_path / "disk.img"
    with open(path, "wb") as handle:
        handle.truncate(size)
    subprocess.run(["sfdisk", "-q", str(path)], input=layout, text=True, check=True, capture_output=True)
    return path


def linux_view(path) -> dict[int, tuple[int, int]]:
    """sfdisk's own reading of the table (an independent parser)."""
    out = json.loads(subprocess.run(["sfdisk", "-J", str(path)], capture_output=True, text=True, check=True).stdout)[
        "partitiontable"
    ]["partitions"]
    return {int(p["node"].rsplit("img", 1)[1]): (p["start"] * 512, (p["start"] + p["size"]) * 512) for p in out}


def reader(path):
    data = path.read_bytes()
    return lambda offset, length: data[offset : offset + length]


@pytest.mark.parametrize(
    "layout",
    [
        "label: dos\nstart=2048, size=20480, type=83\n",
        "label: dos\nstart=2048, size=20480, type=83\nstart=22528, type=5\nstart=24576, size=4096, type=83\n"
        "start=30720, size=4096, type=83\nstart=36864, type=82\n",
        "label: gpt\nstart=2048, size=20480\nstart=22528, size=8192\n",
    ],
    ids=["primary", "logical-chain", "gpt"],
)
def test_partition_table_matches_sfdisk(tmp_path, layout):
    path = sfdisk_image(tmp_path, layout)
    table = partition_table(reader(path))
    expected = linux_view(path)
    if "type=5" in layout:  # sfdisk reports the extended partition's size as 1 KiB (its EBR)
        table[2], expected[2] = (table[2][0], 0), (expected[2][0], 0)
    assert table == expected


def test_partition_problem_names_what_exists_and_truncation(tmp_path):
    path = sfdisk_image(
        tmp_path, "label: dos\nstart=2048, size=20480, type=83\nstart=22528, type=5\nstart=24576, size=40000, type=83\n"
    )
    assert partition_problem(str(path), 5) is None
    assert partition_problem(str(path), 3) == "it has no partition 3 (partitions: 1, 2, 5)"
    qcow2 = tmp_path / "disk.qcow2"  # the same table, read through qemu-io
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(path), str(qcow2)], check=True)
    assert partition_problem(str(qcow2), 5, "qcow2", 64 * MIB) is None
    assert partition_problem(str(qcow2), 3, "qcow2", 64 * MIB) == "it has no partition 3 (partitions: 1, 2, 5)"
    os.truncate(path, 20 * MIB)  # partition 5 ends past the end
    assert "past the end of the image" in partition_problem(str(path), 5)
    blank = tmp_path / "blank.img"
    blank.write_bytes(bytes(MIB))
    assert partition_problem(str(blank), 1) == "it has no partition table, so no partition 1"


def test_looping_ebr_chain_ends():
    """An EBR whose next link points at itself: read once, not forever."""

    def sector(*entries):
        data = bytearray(512)
        data[510:512] = b"\x55\xaa"
        for index, entry in enumerate(entries):
            struct.pack_into("<4xB3xII", data, 446 + 16 * index, *entry)
        return bytes(data)

    images = {
        0: sector((0x05, 2048, 8192)),
        2048 * 512: sector((0x83, 64, 128), (0x05, 8, 100)),  # next EBR at 2048 + 8
        2056 * 512: sector((0x83, 64, 16), (0x05, 8, 100)),
    }  # next EBR: itself

    def read(offset, length):
        return images.get(offset, bytes(length))[:length]

    assert partition_table(read) == {
        1: (2048 * 512, 10240 * 512),
        5: (2112 * 512, 2240 * 512),
        6: (2120 * 512, 2136 * 512),
    }


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=4096))
def test_partition_table_never_raises_on_garbage(data):
    padded = bytearray(data.ljust(2048, b"\0"))
    padded[510:512] = b"\x55\xaa"
    for image in (data, bytes(padded)):
        table = partition_table(lambda offset, length, image=image: image[offset : offset + length])
        assert table is None or all(isinstance(k, int) for k in table)


def test_raw_image_problems(tmp_path):
    path = tmp_path / "t.img"
    path.write_bytes(b"")
    assert image_problems(str(path), "raw") == ["is empty"]
    path.write_bytes(bytes(1000))
    assert "not a whole number of 512-byte sectors" in image_problems(str(path), "raw")[0]
    assert image_problems(str(path), "raw", whole_sectors=False) == []
    path.write_bytes(bytes(4096))
    assert image_problems(str(path), "raw", virtual_size=8192) == ["it holds 4096 bytes, less than its size 8192"]
    assert image_problems(str(tmp_path / "missing"), "raw") == ["cannot be opened (No such file or directory)"]


def test_template_state_and_compare(tmp_path):
    path = tmp_path / "t.img"
    path.write_bytes(os.urandom(3 * MIB))
    recorded = template_state(str(path), "raw")
    assert compare_origin(recorded, template_state(str(path), "raw")) == ("unchanged", [])
    assert compare_origin(None, recorded) == ("unrecorded", [])
    assert compare_origin(recorded, None) == ("missing", [])
    assert compare_origin(dict(recorded, template="/elsewhere"), recorded)[0] == "other"
    with open(path, "r+b") as handle:  # the last MiB changes, size kept
        handle.seek(3 * MIB - 10)
        handle.write(b"x" * 10)
    os.utime(path, ns=(recorded["mtime_ns"], recorded["mtime_ns"]))  # even with its time put back
    state, differs = compare_origin(recorded, template_state(str(path), "raw"))
    assert state == "changed" and differs == ["content of its first/last MiB"]


class FakeHandle:
    def __init__(self, vfs, filesystems):
        self.vfs, self.filesystems = vfs, filesystems

    def vfs_type(self, device):
        return self.vfs.get(device, "")

    def list_filesystems(self):
        return self.filesystems


@pytest.mark.parametrize(
    "vfs, filesystems, expected, blames_partition",
    [
        ({"/dev/sda5": "ext4"}, {"/dev/sda5": "ext4"}, "filesystem or the image is damaged", False),
        ({}, {"/dev/sda1": "ext4", "/dev/sda5": "unknown"}, "partition 1: ext4", True),
        ({}, {"/dev/sda5": "unknown"}, "template is empty or damaged, not the partition number", False),
    ],
)
def test_mount_failure_blames_partition_only_when_another_holds_one(vfs, filesystems, expected, blames_partition):
    session = GuestfsSession.__new__(GuestfsSession)
    session.path, session.handle = "/img", FakeHandle(vfs, filesystems)
    message = session.mount_failure(5, "/dev/sda5", RuntimeError("mount: wrong fs type"))
    assert expected in message and "wrong fs type" in message
    assert ("set 'partition'" in message) is blames_partition
