"""xen_disk / xen_disk_info through their real entry points, on images in a tmp dir.

qemu-img only (no libguestfs, no libvirt): each run takes a fraction of a second.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from support import run_module

GIB = 1024**3


def qemu_info(path):
    return json.loads(
        subprocess.run(
            ["qemu-img", "info", "-U", "--output=json", str(path)], capture_output=True, text=True, check=True
        ).stdout
    )


@pytest.fixture
def store(tmp_path):
    directory = tmp_path / "lcfgtest-disk-store"
    directory.mkdir()
    return directory


def test_check_mode_creates_nothing_and_predicts_the_run(store):
    params = {"path": str(store / "lcfgtest-disk-a.img"), "size_gb": 1, "storage_dirs": [str(store)]}
    check = run_module("xen_disk", params, check=True, diff=True)
    assert check["rc"] == 0 and check["changed"] is True
    assert list(store.iterdir()) == []
    apply = run_module("xen_disk", params, diff=True)
    assert apply["changed"] is True
    assert apply["actions"] == check["actions"]
    assert apply["diff"] == check["diff"]
    assert apply["diff"]["before"]["exists"] is False
    assert apply["diff"]["after"] == {
        "path": params["path"],
        "exists": True,
        "format": "raw",
        "virtual_size": GIB,
        "size": "1 GiB",
        "backing_file": None,
        "backing_format": None,
        "lcfg_files": None,
    }
    assert sorted(p.name for p in store.iterdir()) == ["lcfgtest-disk-a.img"]
    assert os.stat(params["path"]).st_size == GIB
    assert os.stat(params["path"]).st_blocks * 512 < 1024 * 1024  # sparse
    again = run_module("xen_disk", params, check=True, diff=True)
    assert again["changed"] is False and again["diff"]["before"] == again["diff"]["after"]


def test_no_diff_without_diff_mode(store):
    result = run_module("xen_disk", {"path": str(store / "x.img"), "size": "1M", "storage_dirs": [str(store)]})
    assert result["changed"] is True and "diff" not in result


@pytest.mark.parametrize(
    "params, words",
    [
        ({"size_gb": 1, "format": "vmdk"}, ["format", "vmdk"]),
        ({"size": "1G", "size_gb": 1}, ["mutually exclusive", "size"]),
        ({"size": "ten gigs"}, ["size", "ten gigs"]),
        ({}, ["size_gb: is required"]),
        ({"size_gb": 1, "profile_url": "http://x/", "partition": 5}, ["profile_url", "template"]),
        ({"template": "/srv/t.img"}, ["template", "outside the storage directories"]),
    ],
)
def test_bad_input_fails_naming_the_parameter_and_changes_nothing(store, params, words):
    params = dict(params, path=str(store / "lcfgtest-disk-b.img"), storage_dirs=[str(store)])
    result = run_module("xen_disk", params)
    assert result.get("failed") is True, result
    for word in words:
        assert word in result["msg"]
    assert list(store.iterdir()) == []


def test_path_outside_storage_dirs(store, tmp_path):
    result = run_module(
        "xen_disk", {"path": str(tmp_path / "elsewhere.img"), "size_gb": 1, "storage_dirs": [str(store)]}
    )
    assert result["failed"] is True and "storage_dirs" in result["msg"]
    assert not (tmp_path / "elsewhere.img").exists()


def test_check_mode_predicts_the_missing_directory(store):
    result = run_module(
        "xen_disk", {"path": str(store / "sub" / "x.img"), "size_gb": 1, "storage_dirs": [str(store)]}, check=True
    )
    assert not result.get("failed") and result["changed"] is True, result
    assert result["actions"][0] == f"create directory {store}/sub (mode 0700, owner root:root)"
    assert list(store.iterdir()) == []


def test_existing_image_with_other_format_is_refused_and_untouched(store):
    path = store / "lcfgtest-disk-c.img"
    path.write_bytes(b"precious" * 4096)
    before = path.read_bytes()
    result = run_module("xen_disk", {"path": str(path), "size": "32K", "format": "qcow2", "storage_dirs": [str(store)]})
    assert result["failed"] is True
    assert "never overwritten" in result["msg"] and "cannot be read as qcow2" in result["msg"]
    assert path.read_bytes() == before


def test_qcow2_and_delete(store):
    params = {
        "path": str(store / "lcfgtest-disk-d.qcow2"),
        "size": "2G",
        "format": "qcow2",
        "storage_dirs": [str(store)],
    }
    assert run_module("xen_disk", params)["changed"] is True
    info = qemu_info(params["path"])
    assert info["format"] == "qcow2" and info["virtual-size"] == 2 * GIB
    absent = dict(params, state="absent")
    check = run_module("xen_disk", absent, check=True, diff=True)
    assert check["changed"] is True and os.path.exists(params["path"])
    assert check["diff"]["after"]["exists"] is False
    assert run_module("xen_disk", absent)["changed"] is True
    assert not os.path.exists(params["path"])
    assert run_module("xen_disk", absent)["changed"] is False


def test_grow(store):
    params = {"path": str(store / "lcfgtest-disk-e.img"), "size": "1M", "storage_dirs": [str(store)]}
    run_module("xen_disk", params)
    with open(params["path"], "r+b") as handle:
        handle.write(b"keep me")
    bigger = dict(params, size="4M")
    refused = run_module("xen_disk", bigger)
    assert refused["failed"] is True and "grow: true" in refused["msg"]
    assert os.stat(params["path"]).st_size == 1024 * 1024
    grown = run_module("xen_disk", dict(bigger, grow=True), diff=True)
    assert grown["changed"] is True
    assert grown["diff"]["before"]["virtual_size"] == 1024 * 1024
    assert os.stat(params["path"]).st_size == 4 * 1024 * 1024
    with open(params["path"], "rb") as handle:
        assert handle.read(7) == b"keep me"
    assert run_module("xen_disk", dict(bigger, grow=True))["changed"] is False


def test_leftover_partial_file_is_replaced(store):
    params = {"path": str(store / "lcfgtest-disk-f.img"), "size": "1M", "storage_dirs": [str(store)]}
    partial = store / ".lcfgtest-disk-f.img.lcfg-xen-partial"
    partial.write_bytes(b"half written")
    check = run_module("xen_disk", params, check=True)
    assert check["actions"][0].startswith("remove the partial image")
    result = run_module("xen_disk", params)
    assert result["changed"] is True and not partial.exists()
    assert os.stat(params["path"]).st_size == 1024 * 1024


def test_info_lists_images(store):
    run_module("xen_disk", {"path": str(store / "a.img"), "size": "1M", "storage_dirs": [str(store)]})
    run_module(
        "xen_disk", {"path": str(store / "b.qcow2"), "size": "2M", "format": "qcow2", "storage_dirs": [str(store)]}
    )
    run_module(
        "xen_disk",
        {
            "path": str(store / "c.qcow2"),
            "template": str(store / "a.img"),
            "clone": "overlay",
            "storage_dirs": [str(store)],
        },
    )
    (store / ".hidden").write_bytes(b"")
    result = run_module(
        "xen_disk_info", {"storage_dirs": [str(store), str(store / "missing")], "paths": [str(store / "nope.img")]}
    )
    assert result["changed"] is False
    by_path = {image["path"]: image for image in result["images"]}
    assert sorted(by_path) == [str(store / n) for n in ("a.img", "b.qcow2", "c.qcow2", "nope.img")]
    assert by_path[str(store / "a.img")]["format"] == "raw"
    assert by_path[str(store / "b.qcow2")]["virtual_size"] == 2 * 1024 * 1024
    assert by_path[str(store / "c.qcow2")]["backing_file"] == str(store / "a.img")
    assert by_path[str(store / "c.qcow2")]["backing_format"] == "raw"
    assert by_path[str(store / "nope.img")]["exists"] is False
    assert "used_by" not in by_path[str(store / "a.img")]


def test_a_backing_file_is_not_deleted(store):
    base = {"path": str(store / "base.img"), "size": "1M", "storage_dirs": [str(store)]}
    run_module("xen_disk", base)
    run_module(
        "xen_disk",
        {"path": str(store / "node.qcow2"), "template": base["path"], "clone": "overlay", "storage_dirs": [str(store)]},
    )
    refused = run_module("xen_disk", dict(base, state="absent"), check=True)
    assert refused.get("failed") is True
    assert "backing file of " + str(store / "node.qcow2") in refused["msg"]
    assert run_module("xen_disk", dict(base, state="absent")).get("failed") is True
    assert os.path.exists(base["path"])
    assert (
        run_module("xen_disk", {"path": str(store / "node.qcow2"), "state": "absent", "storage_dirs": [str(store)]})[
            "changed"
        ]
        is True
    )
    assert run_module("xen_disk", dict(base, state="absent"))["changed"] is True
    assert not os.path.exists(base["path"])
