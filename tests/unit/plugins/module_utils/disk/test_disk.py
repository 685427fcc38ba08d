"""Unit tests for the pure files of plugins/module_utils/disk/ (sizes, request, plan; no qemu-img, no libvirt)."""

from __future__ import annotations

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.lcfg.xen.plugins.module_utils.common.confinement import DEFAULT_STORAGE_DIRS
from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import Conflict, NotFound, ValidationError
from ansible_collections.lcfg.xen.plugins.module_utils.disk.plan import (
    BlankImage,
    Pool,
    Resize,
    TemplateCopy,
    TemplateOverlay,
    image_state,
    plan_absent,
    plan_present,
    temp_path,
)
from ansible_collections.lcfg.xen.plugins.module_utils.disk.request import DEFAULT_LCFG_FILES, build_request
from ansible_collections.lcfg.xen.plugins.module_utils.disk.sizes import GIB, format_size, parse_size
from ansible_collections.lcfg.xen.plugins.module_utils.disk.storage import normalise_info
from ansible_collections.lcfg.xen.plugins.modules.xen_disk import ARGUMENT_SPEC, MUTUALLY_EXCLUSIVE

DIRS = ["/guests"]
TEMPLATE = {"format": "raw", "virtual_size": GIB, "actual_size": 5, "backing_file": None, "backing_format": None}
ARGSPEC = ArgumentSpecValidator(ARGUMENT_SPEC, mutually_exclusive=MUTUALLY_EXCLUSIVE)


def module_params(params):
    """``params`` as AnsibleModule hands them to build_request (types, choices, defaults)."""
    result = ARGSPEC.validate(params)
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


def req(**params):
    params.setdefault("storage_dirs", DIRS)
    params.setdefault("path", "/guests/node1.img")
    return build_request(module_params(params))


def raw(size, backing=None, fmt="raw"):
    return {
        "format": fmt,
        "virtual_size": size,
        "actual_size": 0,
        "backing_file": backing,
        "backing_format": "raw" if backing else None,
    }


# ---------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    "text, expected",
    [
        ("10G", 10 * GIB),
        ("10g", 10 * GIB),
        ("10GiB", 10 * GIB),
        ("1.5G", 3 * GIB // 2),
        ("512M", 512 * 1024**2),
        ("1T", 1024**4),
        ("10GB", 10 * 1000**3),
        ("4096", 4096),
        (" 2 G ", 2 * GIB),
        (1024, 1024),
        ("1048576b", 1024**2),
    ],
)
def test_parse_size_accepts_units(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text, problem",
    [
        ("", "invalid"),
        ("ten", "invalid"),
        ("10X", "unknown unit"),
        ("0", "positive"),
        (-512, "positive"),
        ("100", "multiple of 512"),
        (True, "boolean"),
        (1.5, "unit"),
        ("1.0000001K", "whole number"),
    ],
)
def test_parse_size_rejects(text, problem):
    with pytest.raises(ValueError, match=problem):
        parse_size(text)


def test_format_size():
    assert format_size(10 * GIB) == "10 GiB"
    assert format_size(3 * GIB // 2) == "1.5 GiB"
    assert format_size(512 * 1024**2) == "512 MiB"
    assert format_size(100) == "100 B"
    assert format_size(None) is None


def test_temp_path_is_hidden_in_the_same_directory():
    assert temp_path("/guests/node1.img") == "/guests/.node1.img.lcfg-xen-partial"


# ---------------------------------------------------------------- validation


def test_defaults():
    request = build_request(module_params({"path": "/guests/profiledev.img"}))
    assert request.storage_dirs == DEFAULT_STORAGE_DIRS
    assert "/var/lib/libvirt/images" in request.storage_dirs
    assert request.hostname == "profiledev"
    assert request.lcfg_files == DEFAULT_LCFG_FILES
    assert request.state == "present" and request.format is None and request.size is None


@pytest.mark.parametrize(
    "params, parameter",
    [
        ({"path": "/etc/passwd"}, "path"),
        ({"path": "/guests/../etc/x.img"}, "path"),
        ({"path": "relative.img"}, "path"),
        ({"path": "/guests"}, "path"),
        ({"path": "/guests/.hidden.img"}, "path"),
        ({"path": "/guestsX/a.img"}, "path"),
        ({"storage_dirs": []}, "storage_dirs"),
        ({"storage_dirs": ["relative"]}, "storage_dirs"),
        ({"size_gb": 0}, "size_gb"),
        ({"size_gb": -1}, "size_gb"),
        ({"size_gb": "inf"}, "size_gb"),
        ({"size": "10X"}, "size"),
        ({"template": "/etc/base.img"}, "template"),
        ({"template": "/guests/node1.img"}, "template"),
        ({"template": "/guests/t.img", "clone": "overlay", "format": "raw"}, "format"),
        ({"template": "/guests/t.img", "profile_url": "http://x/"}, "partition"),
        ({"profile_url": "http://x/", "partition": 5}, "profile_url"),
        ({"template": "/guests/t.img", "profile_url": "not a url", "partition": 5}, "profile_url"),
        ({"template": "/guests/t.img", "profile_url": "http://x/", "partition": 0}, "partition"),
        ({"template": "/guests/t.img", "profile_url": "http://x/", "partition": True}, "partition"),
        ({"template": "/guests/t.img", "profile_url": "http://x/", "partition": 5, "hostname": "bad name"}, "hostname"),
        (
            {"path": "/guests/-x.img", "template": "/guests/t.img", "profile_url": "http://x/", "partition": 5},
            "hostname",
        ),
        ({"lcfg_files": {"hostname": "etc/hostname"}}, "lcfg_files"),
        ({"lcfg_files": {"hostname": "/etc/../hostname"}}, "lcfg_files"),
    ],
)
def test_bad_input_names_the_parameter(params, parameter):
    with pytest.raises(ValidationError) as info:
        req(**params)
    assert info.value.parameter == parameter
    assert str(info.value).startswith(f"{parameter}: ")


@pytest.mark.parametrize(
    "params, parameter",
    [
        ({"format": "vmdk"}, "format"),
        ({"size_gb": "lots"}, "size_gb"),
        ({"size": "1G", "size_gb": 1}, "size"),
        ({"template": "/guests/t.img", "clone": "snap"}, "clone"),
        ({"lcfg_files": {"url": "/etc/x"}}, "lcfg_files"),
        ({"lcfg_files": "x"}, "lcfg_files"),
        ({"state": "gone"}, "state"),
    ],
)
def test_the_argument_spec_refuses_wrong_types_and_choices(params, parameter):
    """What AnsibleModule refuses, naming the parameter, before build_request is called."""
    errors = ARGSPEC.validate(dict(params, path="/guests/node1.img", storage_dirs=DIRS)).error_messages
    assert any(parameter in error for error in errors), errors


def test_path_outside_storage_dirs_names_the_fix():
    with pytest.raises(ValidationError, match="storage_dirs"):
        req(path="/srv/x.img")


def test_size_gb_fraction_and_size_units():
    assert req(size_gb=1.5).size == 3 * GIB // 2
    assert req(size="20GiB").size == 20 * GIB


def test_overlay_is_qcow2():
    assert req(template="/guests/t.img", clone="overlay").format == "qcow2"


def test_lcfg_contents_and_configurable_paths():
    request = req(
        template="/guests/t.img",
        profile_url="http://lcfg.example.org/profiles/",
        partition="5",
        lcfg_files={"profile_url": "/var/lcfg/conf/client/url"},
    )
    assert request.partition == 5
    assert request.lcfg_contents() == {
        "/etc/hostname": "node1\n",
        "/var/lcfg/conf/client/url": "http://lcfg.example.org/profiles/\n",
    }


def test_lcfg_file_can_be_skipped():
    request = req(
        template="/guests/t.img",
        profile_url="http://x/",
        partition=5,
        hostname="n1.example.org",
        lcfg_files={"hostname": ""},
    )
    assert request.lcfg_contents() == {"/etc/lcfg/profile_url": "http://x/\n"}


def test_partition_without_profile_url_warns_and_injects_nothing():
    request = req(template="/guests/t.img", partition=5)
    assert not request.lcfg_managed
    assert request.lcfg_contents() == {}
    assert any("partition 5 is ignored" in w for w in request.warnings)


def test_empty_profile_url_means_unset():
    assert not req(template="/guests/t.img", profile_url="", partition=5).lcfg_managed


# ---------------------------------------------------------------- qemu-img info


def test_normalise_info_prefers_the_full_backing_name():
    info = normalise_info(
        {
            "format": "qcow2",
            "virtual-size": 5 * GIB,
            "actual-size": 200704,
            "backing-filename": "base.img",
            "full-backing-filename": "/guests/base.img",
            "backing-filename-format": "raw",
        }
    )
    assert info == {
        "format": "qcow2",
        "virtual_size": 5 * GIB,
        "actual_size": 200704,
        "backing_file": "/guests/base.img",
        "backing_format": "raw",
    }
    assert normalise_info({"format": "raw", "virtual-size": 1})["backing_file"] is None


def test_image_state_of_a_missing_image():
    state = image_state("/guests/x.img", None)
    assert state["exists"] is False and state["format"] is None and state["lcfg_files"] is None


# ---------------------------------------------------------------- planning


def actions(plan):
    """What each step of the plan does, in order, in one word."""
    made = {BlankImage: "create", TemplateCopy: "copy", TemplateOverlay: "overlay", type(None): None}
    return (
        ["remove-partial"] * bool(plan.partial)
        + [made[type(plan.new)]] * (plan.new is not None)
        + ["grow"] * (plan.resize is not None)
        + ["inject"] * (plan.injection is not None)
        + ["rename"] * (plan.new is not None)
        + ["delete"] * plan.delete
    )


def test_plan_create_raw():
    plan = plan_present(req(size_gb=10), None, None, temp_exists=False)
    assert actions(plan) == ["create", "rename"]
    assert plan.new == BlankImage(path="/guests/.node1.img.lcfg-xen-partial", format="raw", size=10 * GIB)
    assert plan.before["exists"] is False
    assert plan.after == image_state("/guests/node1.img", raw(10 * GIB))


def test_plan_create_needs_a_size():
    with pytest.raises(ValidationError, match="size_gb: is required"):
        plan_present(req(), None, None, temp_exists=False)


def test_plan_copy_grows_and_injects_before_the_rename():
    request = req(size_gb=4, template="/guests/t.img", profile_url="http://x/", partition=5)
    plan = plan_present(request, None, TEMPLATE, temp_exists=False)
    assert actions(plan) == ["copy", "grow", "inject", "rename"]
    temp = "/guests/.node1.img.lcfg-xen-partial"
    assert plan.new.path == plan.resize.path == plan.injection.path == temp
    assert plan.injection.files == {"/etc/hostname": "node1\n", "/etc/lcfg/profile_url": "http://x/\n"}
    assert plan.after["virtual_size"] == 4 * GIB
    assert plan.after["lcfg_files"] == plan.injection.files


def test_plan_copy_keeps_template_format_and_size_by_default():
    plan = plan_present(req(template="/guests/t.img"), None, dict(TEMPLATE, format="qcow2"), temp_exists=False)
    assert actions(plan) == ["copy", "rename"]
    assert plan.new.format == "qcow2" and plan.after["virtual_size"] == GIB


def test_plan_copy_converts_format():
    plan = plan_present(req(template="/guests/t.img", format="qcow2"), None, TEMPLATE, temp_exists=False)
    assert plan.new.format == "qcow2" and plan.new.template_format == "raw"


def test_plan_overlay():
    plan = plan_present(req(template="/guests/t.img", clone="overlay", size_gb=2), None, TEMPLATE, temp_exists=False)
    assert actions(plan) == ["overlay", "rename"]
    assert plan.after["backing_file"] == "/guests/t.img" and plan.after["format"] == "qcow2"
    assert plan.new.size == 2 * GIB


def test_plan_clone_smaller_than_template_is_refused():
    with pytest.raises(ValidationError, match="smaller than the template"):
        plan_present(req(template="/guests/t.img", size="512M"), None, TEMPLATE, temp_exists=False)


def test_plan_missing_template():
    with pytest.raises(NotFound, match="template image /guests/t.img does not exist"):
        plan_present(req(template="/guests/t.img"), None, None, temp_exists=False)


def test_plan_partial_file_is_removed_first():
    plan = plan_present(req(size_gb=1), None, None, temp_exists=True)
    assert actions(plan) == ["remove-partial", "create", "rename"]


def test_plan_matching_image_is_unchanged():
    plan = plan_present(req(size_gb=1), raw(GIB), None, temp_exists=False)
    assert plan.actions == [] and plan.before == plan.after


def test_plan_existing_image_without_size_is_accepted():
    assert plan_present(req(), raw(7 * GIB), None, temp_exists=False).actions == []


def test_plan_existing_clone_is_not_reinjected():
    request = req(template="/guests/t.img", profile_url="http://x/", partition=5)
    plan = plan_present(request, raw(GIB), TEMPLATE, temp_exists=False)
    assert plan.actions == [] and plan.after["lcfg_files"] is None


def test_plan_existing_overlay_matches():
    request = req(template="/guests/t.img", clone="overlay")
    plan = plan_present(request, raw(GIB, backing="/guests/t.img", fmt="qcow2"), TEMPLATE, temp_exists=False)
    assert plan.actions == []


@pytest.mark.parametrize(
    "params, current, problem",
    [
        ({"size_gb": 1, "format": "qcow2"}, raw(GIB), "format is raw, not qcow2"),
        ({"template": "/guests/t.img", "clone": "overlay"}, raw(GIB, fmt="qcow2"), "not an overlay of /guests/t.img"),
        (
            {"template": "/guests/t.img", "clone": "overlay"},
            raw(GIB, backing="/guests/u.img", fmt="qcow2"),
            "backing file: /guests/u.img",
        ),
        ({"template": "/guests/t.img"}, raw(GIB, backing="/guests/t.img"), "not a full copy"),
        ({"template": "/guests/t.img"}, raw(GIB, fmt="qcow2"), "format is qcow2, not raw"),
    ],
)
def test_plan_existing_image_that_differs_is_never_overwritten(params, current, problem):
    with pytest.raises(Conflict) as info:
        plan_present(req(**params), current, TEMPLATE, temp_exists=False)
    assert problem in str(info.value)
    assert "never overwritten" in str(info.value) and "/guests/node1.img" in str(info.value)
    assert info.value.result["image"]["exists"] is True


def test_plan_smaller_image_needs_grow():
    with pytest.raises(Conflict, match="set grow: true"):
        plan_present(req(size_gb=2), raw(GIB), None, temp_exists=False)
    plan = plan_present(req(size_gb=2, grow=True), raw(GIB), None, temp_exists=False)
    assert actions(plan) == ["grow"] and plan.resize == Resize(path="/guests/node1.img", format="raw", size=2 * GIB)
    assert plan.before["virtual_size"] == GIB and plan.after["virtual_size"] == 2 * GIB


def test_plan_larger_image_is_never_shrunk():
    plan = plan_present(req(size_gb=1, grow=True), raw(2 * GIB), None, temp_exists=False)
    assert plan.actions == [] and plan.after["virtual_size"] == 2 * GIB
    assert any("never shrunk" in w for w in plan.warnings)


def test_plan_absent():
    assert actions(plan_absent(req(state="absent"), raw(GIB), temp_exists=True)) == ["remove-partial", "delete"]
    plan = plan_absent(req(state="absent"), None, temp_exists=False)
    assert plan.actions == [] and plan.after["exists"] is False


def test_describe_every_step():
    request = req(size_gb=4, template="/guests/t.img", profile_url="http://x/", partition=5)
    plan = plan_present(request, None, TEMPLATE, temp_exists=True)
    lines = plan.actions
    assert lines[0].startswith("remove the partial image /guests/.node1.img.lcfg-xen-partial")
    assert lines[1] == "copy template /guests/t.img (raw) to raw image /guests/.node1.img.lcfg-xen-partial"
    assert lines[2] == "grow /guests/.node1.img.lcfg-xen-partial to 4 GiB"
    assert "partition 5" in lines[3] and "/etc/lcfg/profile_url" in lines[3]
    assert lines[4].endswith("to /guests/node1.img (mode 0600, format raw recorded)")
    assert Pool(name="p", directory="/guests").describe().startswith("define and start libvirt storage pool p")


# ---------------------------------------------------------------- properties


@given(st.integers(min_value=1, max_value=2**40), st.sampled_from(["K", "M", "G", "KiB", "MiB", "GiB"]))
def test_parse_size_binary_units_scale_exactly(amount, unit):
    scale = {"K": 1024, "M": 1024**2, "G": 1024**3}[unit[0]]
    assert parse_size(f"{amount}{unit}") == amount * scale
    assert parse_size(f"{amount}{unit.lower()}") == amount * scale


@given(st.integers(min_value=1, max_value=2**31).map(lambda n: n * 512))
def test_parse_size_of_bytes_is_identity(number):
    assert parse_size(number) == number == parse_size(str(number))


@given(st.integers(min_value=1, max_value=4096), st.sampled_from(["raw", "qcow2"]))
def test_plan_after_a_create_matches_the_existing_image(gib, fmt):
    """What a create plans as 'after' is exactly what the next run finds: no change."""
    request = req(size_gb=gib, format=fmt)
    first = plan_present(request, None, None, temp_exists=False)
    found = {
        "format": first.after["format"],
        "virtual_size": first.after["virtual_size"],
        "actual_size": 0,
        "backing_file": None,
        "backing_format": None,
    }
    second = plan_present(request, found, None, temp_exists=False)
    assert second.actions == [] and second.before == first.after
