"""Building template images (xen_disk state=template): the pure partition layout and the
request checks; the build itself runs in tests/integration/test_installed_collection.py."""

from __future__ import annotations

from itertools import pairwise

import pytest

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import ValidationError, XenError
from ansible_collections.lcfg.xen.plugins.module_utils.disk.engine import run_disk
from ansible_collections.lcfg.xen.plugins.module_utils.disk.guestfs import template_layout
from ansible_collections.lcfg.xen.plugins.module_utils.disk.request import build_request

GIB_SECTORS = 1024**3 // 512


def test_default_layout_is_the_one_make_template_always_built():
    # partition 1: 100 MiB from 1 MiB; extended 2 over the rest; logical 5 one MiB into it
    assert template_layout(1024**3, 5) == [
        ("p", 2048, 206847),
        ("e", 206848, GIB_SECTORS - 1),
        ("l", 208896, GIB_SECTORS - 1),
    ]


@pytest.mark.parametrize("partition", [2, 3, 4])
def test_primary_partition_fills_the_rest(partition):
    layout = template_layout(1024**3, partition)
    assert [part[0] for part in layout] == ["p"] * partition
    assert len(layout) == partition  # the filesystem partition is number `partition`
    assert layout[-1][2] == GIB_SECTORS - 1


@pytest.mark.parametrize("partition", [5, 6, 9])
def test_logical_partitions_are_numbered_up_to_the_filesystem(partition):
    layout = template_layout(1024**3, partition)
    kinds = [part[0] for part in layout]
    assert kinds == ["p", "e"] + ["l"] * (partition - 4)
    extended = layout[1]
    for kind, first, last in layout[2:]:
        assert extended[1] < first <= last <= extended[2], kind  # inside the extended partition
    for before, after in pairwise(layout[2:]):
        assert after[1] - before[2] - 1 >= 2048  # room for each logical partition's EBR
    assert layout[-1][2] == GIB_SECTORS - 1


def test_no_partitions_overlap_and_all_start_on_mib_boundaries():
    for partition in range(2, 20):
        layout = [part for part in template_layout(512 * 1024**2, partition) if part[0] != "e"]
        for before, after in pairwise(layout):
            assert after[1] > before[2]
        assert all(part[1] % 2048 == 0 for part in layout)


@pytest.mark.parametrize(
    ("size", "partition"),
    [(64 * 1024**2, 5), (1024**3 + 1, 5), (1024**3, 1), (1024**3, 0), (1024**3, 61), (130 * 1024**2, 40)],
)
def test_impossible_layouts_are_refused(size, partition):
    with pytest.raises(XenError):
        template_layout(size, partition)


def test_template_state_keeps_the_partition_and_refuses_clone_parameters(tmp_path):
    req = build_request(
        {"path": str(tmp_path / "t.img"), "state": "template", "partition": 3, "storage_dirs": [str(tmp_path)]}
    )
    assert (req.state, req.partition, req.template) == ("template", 3, None)
    for extra in ({"template": str(tmp_path / "other.img")}, {"profile_url": "http://x/p/"}, {"format": "qcow2"}):
        params = {"path": str(tmp_path / "t.img"), "state": "template", "storage_dirs": [str(tmp_path)], **extra}
        with pytest.raises(ValidationError) as err:
            build_request(params)
        assert err.value.parameter == next(iter(extra))


def test_template_outside_the_storage_dirs_is_refused(tmp_path):
    with pytest.raises(ValidationError):
        build_request({"path": "/tmp/lcfg-xen-elsewhere.img", "state": "template", "storage_dirs": [str(tmp_path)]})


def test_existing_file_is_never_touched_and_check_mode_builds_nothing(tmp_path):
    existing = tmp_path / "t.img"
    existing.write_bytes(b"not an image")
    params = {"path": str(existing), "state": "template", "storage_dirs": [str(tmp_path)]}
    for check in (True, False):
        result = run_disk(dict(params), check)
        assert (result["changed"], result["built"], result["actions"]) == (False, False, [])
    assert existing.read_bytes() == b"not an image"
    missing = tmp_path / "sub" / "new.img"
    result = run_disk({"path": str(missing), "state": "template", "storage_dirs": [str(tmp_path)]}, True)
    assert result["changed"] and result["built"]
    assert result["actions"][-1].startswith(f"build template image {missing} (raw, 1")
    assert any(action.startswith(f"create directory {tmp_path / 'sub'}") for action in result["actions"])
    assert not (tmp_path / "sub").exists()
