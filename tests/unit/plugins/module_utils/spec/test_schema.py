"""The guest schema (plugins/module_utils/spec/schema.py): declared once, and everything derived
from it agrees: the argument specs, the ``lcfg.xen.guest`` doc fragment, the group keys, the
modules' checks and the inventory's. A profile value a module would refuse is refused when
the inventory is built, naming file:line of the resource."""

from __future__ import annotations

import json
import math
import re

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.lcfg.xen.plugins.doc_fragments.guest import ModuleDocFragment
from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import ValidationError
from ansible_collections.lcfg.xen.plugins.module_utils.common.validate import (
    DEVICE_NAME_RE,
    HOSTNAME_RE,
    HOSTNAME_UNDERSCORE_RE,
    IFNAME_RE,
    safe_name,
    valid_guest_name,
)
from ansible_collections.lcfg.xen.plugins.module_utils.disk import request as _disk
from ansible_collections.lcfg.xen.plugins.module_utils.domain import group as _group
from ansible_collections.lcfg.xen.plugins.module_utils.domain import plan as _plan
from ansible_collections.lcfg.xen.plugins.module_utils.domain.desired import complete_spec, validate_spec
from ansible_collections.lcfg.xen.plugins.module_utils.spec import schema as _schema
from ansible_collections.lcfg.xen.plugins.module_utils.spec.argspec import GUEST_ARGSPEC, guest_module_argspec
from ansible_collections.lcfg.xen.plugins.module_utils.spec.schema import check_guest_item
from ansible_collections.lcfg.xen.plugins.plugin_utils import model as _model
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.profile import Profile, Resource
from ansible_collections.lcfg.xen.plugins.plugin_utils.model import ModelErrors, build_host
from support import run_inventory

PATH = "/site/h1"
FIXED = settings(
    max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)


# ---------------------------------------------------------------- one declaration


def _documented(options: dict) -> dict:
    """The argument-spec view of documented options."""
    out = {}
    for name, doc in options.items():
        spec = {"type": doc.get("type", "str")}
        for key in ("required", "elements", "choices", "default"):
            if doc.get(key) not in (None, False):
                spec[key] = doc[key]
        if doc.get("suboptions"):
            spec["options"] = _documented(doc["suboptions"])
        out[name] = spec
    return out


def _declared(spec: dict) -> dict:
    out = {}
    for name, option in spec.items():
        entry = {key: value for key, value in option.items() if key != "options" and value not in (None, False)}
        if option.get("options"):
            entry["options"] = _declared(option["options"])
        out[name] = entry
    return out


def test_doc_fragment_documents_exactly_the_schema():
    documented = _documented(yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"])
    assert documented == _declared(guest_module_argspec())


def test_argspec_leaves_out_hostvar_only_fields():
    assert set(GUEST_ARGSPEC) == {name for name, field in _schema.GUEST.items() if not field.hostvar_only}
    assert set(_schema.HOSTVAR_ONLY_KEYS) == {"template", "profile_url", "partition", "groups"}


def test_group_keys_come_from_the_schema():
    assert _group.GROUP_FIELDS == _schema.GROUP_KEYS
    assert _group.VIF_GROUP_FIELDS == _schema.VIF_GROUP_KEYS
    # the inventory's groups set the same fields (a group network is a module option only)
    assert set(_model.GROUP_KEYS[1:]) == set(_schema.GROUP_KEYS + _schema.VIF_GROUP_KEYS) - {"network"}
    assert _schema.LIVE_KEYS == ("memory", "vcpus", "cpus", "autostart")
    assert set(_plan.LIVE_FIELDS) < set(_schema.LIVE_KEYS)  # autostart is libvirt's flag, set apart


@FIXED
@given(st.from_regex(r"\A[A-Za-z0-9._-]{1,70}\Z"))
def test_every_guest_name_is_a_host_name_xen_disk_accepts(name):
    try:
        valid_guest_name(name)
    except ValueError:
        return
    assert HOSTNAME_UNDERSCORE_RE.match(name)  # the host name xen_disk accepts


def test_the_shared_name_patterns_keep_the_patterns_they_replaced():
    """common/validate.py and spec/schema.py are the one home of these patterns; the copies
    they replaced had exactly these."""
    label = r"[A-Za-z0-9]([A-Za-z0-9{}-]{{0,62}})"
    assert HOSTNAME_RE.pattern == rf"^{label.format('')}(\.{label.format('')})*$"
    assert HOSTNAME_UNDERSCORE_RE.pattern == rf"^{label.format('_')}(\.{label.format('_')})*$"
    assert _disk._HOSTNAME_RE is HOSTNAME_UNDERSCORE_RE  # pylint: disable=protected-access
    assert IFNAME_RE.pattern == r"^[A-Za-z0-9_.:+-]+$"
    assert DEVICE_NAME_RE.pattern == r"^[A-Za-z0-9_.+-]{1,15}$"
    assert _schema.BRIDGE_RE.pattern == r"^[A-Za-z0-9_.:-]{1,15}\Z"
    assert _schema.PROFILE_IFNAME_RE.pattern == r"^[A-Za-z0-9_][A-Za-z0-9_.:-]*$"
    assert _schema.URL_RE.pattern == r"^https?://[^\s/]+"
    assert safe_name("qemu+ssh://h/x", "_") == "qemu_ssh___h_x"
    assert not HOSTNAME_RE.match("a_b") and HOSTNAME_UNDERSCORE_RE.match("a_b")


# ---------------------------------------------------------------- the modules' structural check


@pytest.mark.parametrize(
    "params, parameter, pattern",
    [
        ({"cmdline": "quiet\x1b[2J"}, "cmdline", "control character"),
        ({"cmdline": "a\x00b"}, "cmdline", "control character"),
        ({"kernel": "/boot/\ud800"}, "kernel", "surrogate"),
        ({"extra": {"xml": 5}}, "extra.xml", "must be a list"),
        ({"extra": {"xml": ["<a/>", 5]}}, r"extra.xml\[1\]", "must be a string"),
        ({"extra": "<features>\x1b</features>"}, "extra", "control character"),
        ({"disks": [{"path": "/g/a.img", "size_gb": math.nan}]}, r"disks\[0\].size_gb", "finite"),
        ({"disks": [{"path": "/g/a.img", "size_gb": "inf"}]}, r"disks\[0\].size_gb", "finite"),
        ({"disks": [{"path": f"/g/{i}.img"} for i in range(703)]}, "disks", "at most 702"),
        ({"disks": "/g/a.img"}, "disks", "must be a list"),
        ({"memory": 10**400}, "memory", "at most 16777216"),
        ({"memory": 8}, "memory", "at least 16"),
        ({"vcpus": 5000}, "vcpus", "at most 4096"),
        ({"vcpus": "9" * 5000}, "vcpus", "must be an integer"),
        ({"vcpus": True}, "vcpus", "must be an integer"),
        ({"vifs": [{"bridge": "my-network-bridge"}]}, r"vifs\[0\].bridge", "15 characters"),
        ({"vifs": [{"nettype": "nat", "network": "-net"}]}, r"vifs\[0\].network", "network name"),
        ({"shutdown_timeout": 10**30}, "shutdown_timeout", "at most"),
        ({"vifs": [{"ip": "fe80::1%a b -oProxyCommand=x"}]}, r"vifs\[0\].ip", "zone index"),
    ],
)
def test_module_check_names_the_parameter(params, parameter, pattern):
    with pytest.raises(ValidationError) as info:
        validate_spec(dict({"name": "lcfgt-schema-a"}, **params))
    assert re.fullmatch(parameter, info.value.parameter), info.value.parameter
    assert re.search(pattern, info.value.message), info.value.message


def test_xen_guests_item_with_a_non_list_disks_fails_naming_it():
    with pytest.raises(ValidationError) as info:
        check_guest_item({"name": "lcfgt-schema-a", "disks": 3.5}, "guests[2].")
    assert info.value.parameter == "guests[2].disks"


def test_more_disks_than_device_names_fails_naming_disks():
    spec = validate_spec({"name": "lcfgt-schema-a", "disks": [{"path": f"/g/{i}.img"} for i in range(702)]})
    with pytest.raises(ValidationError) as info:  # a reserved target (a CD-ROM) takes one name
        complete_spec(spec, None, "test", reserved=["xvda"])
    assert info.value.parameter == "disks"


# ---------------------------------------------------------------- the inventory refuses the same


def make(resources: list[tuple[str, str]]) -> Profile:
    """A profile whose n-th xen resource was set at ``PATH:n`` (line 1 is profile.components)."""
    prof = Profile(name="h1", path=PATH)
    prof.resources["profile"] = {"components": Resource("client xen", f"{PATH}:1")}
    table = prof.resources.setdefault("xen", {})
    for line, (res, value) in enumerate(resources, start=2):
        table[res] = Resource(value, f"{PATH}:{line}")
    return prof


GUEST = [("virtualmachines", "vm1"), ("vifs_vm1", "eth0"), ("disks_vm1", "root")]


@pytest.mark.parametrize(
    "res, value, pattern",
    [
        ("bridge_vm1_eth0", "my-network-bridge", "15 characters"),
        ("memory_vm1", "99999999", "at most 16777216"),
        ("memory_vm1", "8", "at least 16"),
        ("vcpus_vm1", "5000", "at most 4096"),
        ("maxvcpus_vm1", "9" * 5000, "at most 4096"),
        ("partition_vm1", "9" * 5000, "at most 1024"),
        ("disksize_vm1", "9" * 5000, "whole number of GB"),
        ("disksize_vm1", "99999999999", "at most"),
        ("diskname_vm1", "root\x1b[31m", "control character"),
        ("diskpath_vm1", "/guests/\x7f", "control character"),
        ("template_vm1", "/guests/t\x00.img", "NUL|control character"),
        ("profileurl_vm1", "http://lcfg/profiles/vm1\x1b", "control character"),
        ("network_vm1_eth0", "x" * 65, "network name"),
        ("script_vm1_eth0", "vif-../x", "vif script"),
    ],
)
def test_inventory_refuses_what_a_module_would(res, value, pattern):
    resources = GUEST + [(res, value)]
    with pytest.raises(ModelErrors) as info:
        build_host(make(resources))
    errors = [e for e in info.value.errors if e.resource == f"xen.{res}"]
    assert errors, [str(e) for e in info.value.errors]
    assert (errors[0].file, errors[0].line) == (PATH, len(resources) + 1)
    assert re.search(pattern, errors[0].problem), errors[0].problem


def test_group_value_out_of_range_is_refused_at_the_group_resource():
    resources = [("virtualmachines", "vm1"), ("virtualgroup", "web"), ("members_web", "vm1"), ("groupmemory_web", "8")]
    with pytest.raises(ModelErrors) as info:
        build_host(make(resources))
    err = info.value.errors[0]
    assert (err.resource, err.line) == ("xen.groupmemory_web", 5)
    assert "at least 16" in err.problem


# Profile values a module might refuse: well-formed, near the limits, and hostile.
_VALUE = st.one_of(
    st.sampled_from(
        [
            "0",
            "1",
            "15",
            "16",
            "4096",
            "4097",
            "16777216",
            "16777217",
            "9" * 30,
            "2-3",
            "0-16383",
            "xenbr0",
            "my-network-bridge",
            "a" * 15,
            "lcfg-nat",
            "-x",
            "vif-bridge",
            "/guests",
            "/guests/x\x1b",
            "qcow2",
            "phy",
            "nat",
            "route",
            "10.0.0.2",
            "pv",
            "hvm",
            "yes",
            "on_crash=preserve",
            "<features><acpi/></features>",
            "quiet\x1b",
            "00:16:3e:00:00:01",
            "http://lcfg/p",
            "1.5",
            "",
        ]
    ),
    st.text(st.characters(codec="utf-8", max_codepoint=0x2FF), max_size=20),
)
_RESOURCES = [
    "memory_vm1",
    "maxmem_vm1",
    "vcpus_vm1",
    "maxvcpus_vm1",
    "cpus_vm1",
    "type_vm1",
    "boot_vm1",
    "bridge_vm1_eth0",
    "nettype_vm1_eth0",
    "network_vm1_eth0",
    "script_vm1_eth0",
    "ip_vm1_eth0",
    "mac_vm1_eth0",
    "disksize_vm1",
    "diskpath_vm1",
    "diskformat_vm1",
    "disktype_vm1",
    "diskname_vm1",
    "cmdline_vm1",
    "extra_vm1",
    "template_vm1",
    "profileurl_vm1",
    "partition_vm1",
    "groupmemory_g",
    "groupvcpus_g",
    "groupbridge_g",
    "groupscript_g",
]


@FIXED
@given(st.dictionaries(st.sampled_from(_RESOURCES), _VALUE, max_size=5))
def test_a_guest_the_inventory_accepts_passes_the_modules_checks(values):
    resources = GUEST + [("virtualgroup", "g"), ("members_g", "vm1")] + sorted(values.items())
    try:
        guest = build_host(make(resources)).guests["vm1"]
    except ModelErrors:
        return
    item = check_guest_item(dict(guest), "guests[0].")
    spec = validate_spec(item, prefix="guests[0].")
    if all(vif["bridge"] for vif in spec["vifs"] if vif["nettype"] == "bridge"):
        complete_spec(spec, None, "xen")


def test_ansible_inventory_refuses_the_profile_naming_file_and_line(tmp_path):
    """End to end: the bad profile is left out with its file:line, the good one still loads."""
    (tmp_path / "profiles").mkdir()
    bad = tmp_path / "profiles" / "lcfgt-schema-bad"
    bad.write_text(
        "!profile.components mADD(xen)\n"
        "!xen.virtualmachines mADD(vm1 vm3)\n"
        "!xen.vifs_vm1 mADD(eth0)\n"
        "!xen.bridge_vm1_eth0 mSET(my-network-bridge)\n"
        "!xen.vcpus_vm3 mSET(5000)\n"
    )
    (tmp_path / "profiles" / "lcfgt-schema-good").write_text(
        "!profile.components mADD(xen)\n!xen.virtualmachines mADD(vm2)\n"
    )
    config = tmp_path / "site.lcfg.yml"
    config.write_text("plugin: lcfg.xen.lcfg\nsources: [profiles]\n")
    proc = run_inventory(config)
    assert proc.returncode == 0, proc.stderr
    hosts = json.loads(proc.stdout)["_meta"]["hostvars"]
    assert "vm2" in hosts and "vm1" not in hosts and "vm3" not in hosts
    warning = " ".join(proc.stderr.split())
    assert f"{bad}:4: xen.bridge_vm1_eth0: vifs[0].bridge:" in warning, proc.stderr
    assert f"{bad}:5: xen.vcpus_vm3: vcpus must be at most 4096" in warning, proc.stderr


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "127.1.2.3", "0.0.0.0", "::", "::1", "::ffff:127.0.0.1", "fe80::1", "169.254.1.1", "224.0.0.1"],
)
def test_a_guest_address_is_never_the_host_itself_or_a_broadcast(address):
    # the inventory logs in to a guest at its profile address (ansible_host)
    with pytest.raises(ValueError, match="no guest.s address"):
        _schema.guest_ip(address)
    assert _schema.guest_ip("10.0.0.40") == "10.0.0.40" and _schema.guest_ip("2001:db8::5") == "2001:db8::5"
