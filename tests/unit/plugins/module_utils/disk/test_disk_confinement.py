"""Confinement of xen_disk to the storage directories (issue 9 §3), on real files in a tmp dir.

Each test reproduces an attack and reads back that nothing outside changed: modes,
owners, contents and directory listings.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time

import pytest

from ansible_collections.lcfg.xen.plugins.module_utils.common.confinement import (
    DIR_MODE,
    GROUP_DIR_MODE,
    missing_directories,
    narrow_storage_dirs,
    real_inside,
)
from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import Conflict, ValidationError, XenError
from ansible_collections.lcfg.xen.plugins.module_utils.common.lock import lock_directory
from ansible_collections.lcfg.xen.plugins.module_utils.disk.engine import image_lock
from ansible_collections.lcfg.xen.plugins.module_utils.disk.plan import plan_present
from ansible_collections.lcfg.xen.plugins.module_utils.disk.request import DiskRequest, build_request
from ansible_collections.lcfg.xen.plugins.module_utils.disk.storage import LocalStorage, recorded_format
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.profile import Profile, Resource
from ansible_collections.lcfg.xen.plugins.plugin_utils.model import ModelErrors, build_host
from support import tree_snapshot


@pytest.fixture
def site(tmp_path):
    """store/ (the storage directory) and outside/ (a stand-in for /root/.ssh), 0700 with a key."""
    store = tmp_path / "store"
    store.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    os.chmod(outside, 0o700)
    (outside / "authorized_keys").write_text("ssh-ed25519 AAAA victim\n")
    (store / "link").symlink_to(outside)
    return store, outside


# ---------------------------------------------------------------- resolved paths


def test_symlinked_directory_cannot_lead_out(site):
    store, outside = site
    before = tree_snapshot(outside)
    with pytest.raises(ValidationError) as info:
        build_request({"path": str(store / "link" / "x.img"), "size_gb": 1, "storage_dirs": [str(store)]})
    assert info.value.parameter == "path" and "symbolic link" in info.value.message
    with pytest.raises(ValidationError, match="template"):
        build_request(
            {
                "path": str(store / "x.img"),
                "template": str(store / "link" / "authorized_keys"),
                "storage_dirs": [str(store)],
            }
        )
    assert tree_snapshot(outside) == before


def test_image_path_that_is_a_link_is_refused(site):
    store, outside = site
    (store / "disk.img").symlink_to(outside / "authorized_keys")
    with pytest.raises(ValidationError, match="symbolic link"):
        build_request({"path": str(store / "disk.img"), "state": "absent", "storage_dirs": [str(store)]})


def test_real_inside(site):
    store, outside = site
    assert real_inside(str(store / "a" / "b.img"), [str(store)]) == str(store / "a" / "b.img")
    assert real_inside(str(store / "link" / "x"), [str(store)]) is None
    assert real_inside(str(store) + "x/y", [str(store)]) is None  # a sibling with the same prefix


def test_missing_directories_only_inside(site):
    store, _outside = site
    fresh = store / "new" / "deeper"
    assert missing_directories(str(fresh), [str(store)]) == [(str(store / "new"), DIR_MODE), (str(fresh), DIR_MODE)]
    (store / "file").write_text("x")
    with pytest.raises(Conflict, match="not a directory"):
        missing_directories(str(store / "file" / "sub"), [str(store)])


def test_missing_storage_directory_and_its_parent(tmp_path):
    top = tmp_path / "data"
    store = top / "guests"
    assert missing_directories(str(store / "vm"), [str(store)]) == [
        (str(top), 0o755),
        (str(store), DIR_MODE),
        (str(store / "vm"), DIR_MODE),
    ]


# ---------------------------------------------------------------- the profile only narrows


def test_profile_may_narrow_the_play_list(site):
    store, _outside = site
    assert narrow_storage_dirs([str(store)], None) == [str(store)]
    assert narrow_storage_dirs([str(store)], [str(store / "vms")]) == [str(store / "vms")]
    assert narrow_storage_dirs([str(store)], f"{store}/a {store}/b") == [f"{store}/a", f"{store}/b"]


@pytest.mark.parametrize("widen", ["/root/.ssh", "/", "relative", "{store}/link"])
def test_profile_can_never_widen_the_play_list(site, widen):
    store, outside = site
    before = tree_snapshot(outside)
    with pytest.raises(ValidationError) as info:
        build_request(
            {
                "path": "/root/.ssh/x.img",
                "size_gb": 1,
                "storage_dirs": [str(store)],
                "profile_storage_dirs": [widen.format(store=store)],
            }
        )
    assert info.value.parameter == "profile_storage_dirs"
    assert tree_snapshot(outside) == before


def test_path_outside_the_narrowed_list_is_refused(site):
    store, _outside = site
    with pytest.raises(ValidationError, match="outside the storage directories"):
        build_request(
            {
                "path": str(store / "other" / "x.img"),
                "size_gb": 1,
                "storage_dirs": [str(store)],
                "profile_storage_dirs": [str(store / "vms")],
            }
        )


def test_unknown_storage_group_is_refused(site):
    store, _outside = site
    with pytest.raises(ValidationError) as info:
        build_request(
            {
                "path": str(store / "x.img"),
                "size_gb": 1,
                "storage_dirs": [str(store)],
                "storage_group": "lcfgt-disk-no-such-group",
            }
        )
    assert info.value.parameter == "storage_group"


# ---------------------------------------------------------------- directories and images


def test_directories_made_private_existing_ones_left_alone(site):
    store, _outside = site
    existing = store / "admins-dir"
    existing.mkdir()
    os.chmod(existing, 0o755)
    before = os.lstat(existing)
    request = build_request(
        {
            "path": str(store / "admins-dir" / "new" / "x.img"),
            "size_gb": 1,
            "storage_dirs": [str(store)],
            "storage_group": "root",
        }
    )
    storage = LocalStorage()
    directories = storage.missing_directories(request)
    assert [(d.path, d.mode) for d in directories] == [(str(existing / "new"), GROUP_DIR_MODE)]
    for directory in directories:
        storage.make_directory(directory.path, directory.mode, directory.gid)
    assert os.lstat(existing / "new").st_mode & 0o7777 == GROUP_DIR_MODE
    after = os.lstat(existing)
    assert (after.st_mode, after.st_uid, after.st_gid) == (before.st_mode, before.st_uid, before.st_gid)
    plain = build_request({"path": str(store / "p" / "x.img"), "size_gb": 1, "storage_dirs": [str(store)]})
    (directory,) = storage.missing_directories(plain)
    assert directory.mode == DIR_MODE and directory.gid is None


def test_finished_image_is_0600_with_its_format_recorded(site):
    store, _outside = site
    temp = store / ".x.img.lcfg-xen-partial"
    temp.write_bytes(b"\0" * 512)
    os.chmod(temp, 0o644)
    warning = LocalStorage().rename(str(temp), str(store / "x.img"), "qcow2")
    assert os.stat(store / "x.img").st_mode & 0o777 == 0o600
    if warning is None:  # trusted.* xattrs need root and a filesystem that keeps them
        assert recorded_format(str(store / "x.img")) == "qcow2"
    else:
        assert "declares format: qcow2" in warning


def test_recorded_format_ignores_what_is_not_a_format(site):
    store, _outside = site
    image = store / "y.img"
    image.write_bytes(b"QFI\xfb" + b"\0" * 508)  # a qcow2 magic written by the guest means nothing
    assert recorded_format(str(image)) is None
    try:
        os.setxattr(image, "trusted.lcfg-xen.format", b"vmdk")
    except OSError:
        pytest.skip("no trusted xattrs here")
    assert recorded_format(str(image)) is None


@pytest.mark.parametrize("what", ["image", "template"])
def test_backing_file_outside_the_storage_directories_is_refused(site, what):
    store, outside = site
    request = DiskRequest(
        path=str(store / "x.qcow2"),
        storage_dirs=[str(store)],
        size=1 << 30,
        template=str(store / "t.qcow2") if what == "template" else None,
    )
    evil = {
        "format": "qcow2",
        "virtual_size": 1 << 30,
        "actual_size": 0,
        "backing_file": str(outside / "authorized_keys"),
        "backing_format": "raw",
    }
    current, template = (evil, None) if what == "image" else (None, evil)
    with pytest.raises(Conflict, match="outside the storage directories"):
        plan_present(request, current, template, temp_exists=False)


# ---------------------------------------------------------------- the clone lock


def _lock_file(directory, image):
    return os.path.join(directory, f"disk-{hashlib.sha256(image.encode()).hexdigest()[:24]}.lock")


def test_lock_waits_a_bounded_time_with_a_clear_error(tmp_path):
    locks = tmp_path / "locks"
    lock_directory(str(locks))
    assert os.lstat(locks).st_mode & 0o777 == 0o700
    fd = os.open(_lock_file(str(locks), "/guests/a.img"), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        started = time.monotonic()
        lock = image_lock("/guests/a.img", 0.5, str(locks))
        with pytest.raises(Conflict, match="more than 0.5 s.*lock_timeout"), lock:
            pass
        assert 0.5 <= time.monotonic() - started < 3
    finally:
        os.close(fd)
    with image_lock("/guests/a.img", 0.5, str(locks)):
        pass  # free again


def test_lock_file_planted_as_a_symlink_is_not_followed(tmp_path):
    locks = tmp_path / "locks"
    lock_directory(str(locks))
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.chmod(victim, 0o640)
    os.symlink(victim, _lock_file(str(locks), "/guests/b.img"))
    with pytest.raises(XenError, match="symbolic link"), image_lock("/guests/b.img", 1, str(locks)):
        pass
    assert victim.read_text() == "precious\n" and os.stat(victim).st_mode & 0o777 == 0o640


@pytest.mark.parametrize("kind", ["open", "link"])
def test_lock_directory_must_be_private(tmp_path, kind):
    locks = tmp_path / "locks"
    if kind == "open":
        locks.mkdir()
        os.chmod(locks, 0o1777)
    else:
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        locks.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(XenError, match="not a private directory"):
        lock_directory(str(locks))
    assert list((tmp_path / "elsewhere").iterdir() if kind == "link" else locks.iterdir()) == []


# ---------------------------------------------------------------- the hypervisor profile's resource


def _hypervisor(storagedirs: str):
    prof = Profile(name="hv", path="/site/hv")
    prof.resources["profile"] = {"components": Resource("client xen", "/site/hv:1")}
    prof.resources["xen"] = {"storagedirs": Resource(storagedirs, "/site/hv:2")}
    return prof


def test_storagedirs_resource_becomes_xen_host_storage_dirs():
    host = build_host(_hypervisor("/guests  /data/guests/")).xen_host
    assert host["storage_dirs"] == ["/guests", "/data/guests"]
    assert narrow_storage_dirs(["/guests", "/data"], host["storage_dirs"]) == ["/guests", "/data/guests"]


@pytest.mark.parametrize("value", ["guests", "/guests/../root"])
def test_storagedirs_resource_errors_name_file_and_line(value):
    with pytest.raises(ModelErrors) as info:
        build_host(_hypervisor(value))
    (error,) = info.value.errors
    assert (error.file, error.line, error.resource) == ("/site/hv", 2, "xen.storagedirs")
