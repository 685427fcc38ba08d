"""Every module's argument spec, fuzzed with hypothesis: no input may end in a traceback.

Each module's ``main()`` runs in-process with real argument parsing (AnsibleModule) against
libvirt's ``test:///default`` driver (one shared connection, as in test_xen_domain.py). The
inputs are drawn from the module's own argument spec, mixed with hostile values: control
characters, NUL, ESC, U+FFFE, nan/inf, integers of thousands of digits, hundreds of
disks, wrong container types. A run must end in ``exit_json`` or ``fail_json``; a
``fail_json`` must name a parameter. Modules that touch the host (xen_bridge, xen_disk) run in
check mode, with ``ip``/``run_command`` replaced by a reader that refuses any write, and disks
confined to a temporary storage directory.

Lone surrogates are left out: ansible-core refuses to carry them to a module (its JSON
profiles reject invalid UTF-8); the schema's own tests cover them.

Deterministic (``derandomize``, no example database) and bounded: the whole file runs in well
under a minute on two busy cores.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.lcfg.xen.plugins.module_utils.common import libvirt as _libvirt
from ansible_collections.lcfg.xen.plugins.module_utils.common import module as _module
from ansible_collections.lcfg.xen.plugins.module_utils.common.libvirt import open_connection
from ansible_collections.lcfg.xen.plugins.module_utils.spec.argspec import guest_module_argspec
from ansible_collections.lcfg.xen.plugins.modules import (
    xen_bridge,
    xen_bridge_info,
    xen_disk,
    xen_disk_info,
    xen_domain,
    xen_domain_info,
    xen_group,
    xen_guests,
    xen_snapshot,
    xen_snapshot_info,
)
from support import SharedConnection, remove_named

PREFIX = "lcfgt-schema-"
FUZZ = settings(
    max_examples=int(os.environ.get("LCFGT_FUZZ_EXAMPLES", "200")),
    deadline=None,
    derandomize=not os.environ.get("LCFGT_FUZZ_RANDOM"),
    database=None,
    suppress_health_check=list(HealthCheck),
)

HOSTILE_TEXT = [
    "",
    " ",
    "\x1b[31mred",
    "a\x00b",
    "\x00",
    "\x7f",
    "\x85",
    "tab\there",
    "new\nline",
    "\ufffe",
    "name\u202eevil",
    "..",
    "../../etc/shadow",
    "/etc/shadow",
    "/",
    "x" * 5000,
    "9" * 5000,
    "-1",
    "0",
    "nan",
    "inf",
    "-inf",
    "1e400",
    "0x10",
    "yes",
    "my-network-bridge",
    "<a/>",
    "<devices><disk/></devices>",
    "{}",
    '{"xml": 1}',
    "[]",
    "on_crash=preserve",
    "xml=<a",
    "<\x1b/>",
    "%s%n",
    "${jndi}",
    "0-9999999",
]
HUGE_INTS = [2**63, -(2**63), 10**30, int("9" * 4000)]
ODD_FLOATS = [math.nan, math.inf, -math.inf, 1e308, -0.0, 5e-324]


def hostile_text():
    return st.one_of(
        st.sampled_from(HOSTILE_TEXT),
        st.text(max_size=20),
        st.text(st.characters(codec=None, max_codepoint=0x9F), max_size=8),
    )


def any_scalar():
    return st.one_of(
        hostile_text(),
        st.integers(),
        st.sampled_from(HUGE_INTS),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from(ODD_FLOATS),
        st.booleans(),
        st.none(),
    )


def any_value():
    return st.recursive(
        any_scalar(),
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(hostile_text(), inner, max_size=3)),
        max_leaves=6,
    )


def value_for(option: dict, name: str):
    """A value for one argument-spec option: well-typed most of the time, hostile otherwise."""
    kind = option.get("type", "str")
    if option.get("choices"):
        typed = st.sampled_from(option["choices"])
    elif kind in ("str", "path"):
        typed = hostile_text()
    elif kind == "int":
        typed = st.one_of(
            st.integers(-2, 70000), st.sampled_from(HUGE_INTS), st.sampled_from(["9" * 5000, "12", "1e3", "nan"])
        )
    elif kind == "float":
        typed = st.one_of(
            st.floats(allow_nan=True, allow_infinity=True),
            st.sampled_from(ODD_FLOATS),
            st.sampled_from(HUGE_INTS),
            st.sampled_from(["nan", "inf", "9" * 5000, "1"]),
        )
    elif kind == "bool":
        typed = st.one_of(st.booleans(), st.sampled_from(["yes", "no", "maybe", "\x00"]))
    elif kind == "dict":
        typed = (
            st.one_of(options_dict(option["options"]), hostile_text())
            if option.get("options")
            else st.dictionaries(hostile_text(), any_value(), max_size=3)
        )
    elif kind == "list":
        element = (
            {"type": "dict", "options": option["options"]}
            if option.get("options")
            else {"type": option.get("elements", "str")}
        )
        typed = st.one_of(st.lists(value_for(element, name), max_size=4), hostile_text())
    else:
        typed = any_value()
    return st.one_of(typed, typed, typed, any_value())


def options_dict(spec: dict, overrides: dict | None = None):
    overrides = overrides or {}
    required = {
        key: overrides.get(key, value_for(option, key)) for key, option in spec.items() if option.get("required")
    }
    optional = {
        key: overrides.get(key, value_for(option, key)) for key, option in spec.items() if not option.get("required")
    }
    # A few options per example, so that one hostile value gets past the others' checks.
    if not optional:
        return st.fixed_dictionaries(required)
    return st.lists(st.sampled_from(sorted(optional)), max_size=4, unique=True).flatmap(
        lambda keys: st.fixed_dictionaries(dict(required, **{key: optional[key] for key in keys}))
    )


class ReadOnlyHost:
    """run_command stand-in: ``ip -j`` reads see an empty host; any other command is a write."""

    def __init__(self):
        self.writes = []

    def __call__(self, argv, **_kwargs):
        argv = [str(arg) for arg in argv]
        if argv[:1] == ["ip"] and "-j" in argv:
            return 0, "[]", ""
        self.writes.append(argv)
        return 1, "", "refused by the fuzz test"


@pytest.fixture(scope="module")
def hypervisor():
    conn = open_connection("test:///default")
    shared = SharedConnection(conn)
    patch = pytest.MonkeyPatch()
    for target in (_module, _libvirt, xen_bridge, xen_bridge_info):
        if hasattr(target, "open_connection"):  # a module that opens it through common.module has none
            patch.setattr(target, "open_connection", lambda uri: shared)
    host = ReadOnlyHost()
    patch.setattr(AnsibleModule, "run_command", lambda _self, argv, **kwargs: host(argv, **kwargs))
    yield conn, host
    patch.undo()
    remove_named([dom for dom in conn.listAllDomains(0) if dom.name() != "test"], "")  # with snapshots too
    conn.close()


def run_main(module, args: dict, check: bool) -> dict:
    """Run ``module.main()``; return its JSON result. Any exception other than the module's
    own exit is the failure this file looks for."""
    out = io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        patch_module_args(dict(args, _ansible_check_mode=check, _ansible_diff=True)),
        pytest.raises(SystemExit),
    ):
        module.main()
    text = out.getvalue()
    return json.loads(text) if text else {}


def assert_clean(result: dict, names: list[str]) -> None:
    if result.get("failed"):
        msg = result.get("msg", "")
        assert "Traceback" not in msg, msg
        assert "exception" not in result or "Traceback" not in str(result.get("exception")), result
        if msg not in CORE_MESSAGES_WITHOUT_NAME:
            assert any(name in msg for name in names), f"error names no parameter: {msg}"


#: ansible-core's own argument-parsing messages that name no parameter (not ours to word)
CORE_MESSAGES_WITHOUT_NAME = {
    "dictionary requested, could not parse JSON or key=value",
    "unable to evaluate string as dictionary",
    'unable to evaluate string in the "key=value" format as dictionary',
}

GUEST_SPEC = guest_module_argspec()
DOMAIN_NAMES = st.one_of(st.sampled_from([f"{PREFIX}a", f"{PREFIX}b"]), hostile_text())
#: hundreds of disks, each in the test driver's reach
MANY_DISKS = st.integers(600, 760).map(
    lambda n: [{"path": f"/var/lib/lcfg-xen/guests/{PREFIX}{i}.img"} for i in range(n)]
)


def guest_dict():
    return options_dict(
        GUEST_SPEC,
        {
            "name": DOMAIN_NAMES,
            "disks": st.one_of(value_for(GUEST_SPEC["disks"], "disks"), MANY_DISKS),
            "shutdown_timeout": st.integers(0, 1),
        },
    )


def parameter_names(spec: dict) -> list[str]:
    names = []
    for key, option in spec.items():
        names.append(key)
        names.extend(parameter_names(option.get("options") or {}))
    return names


GUEST_NAMES = parameter_names(GUEST_SPEC) + ["guests", "parallel", "default_bridge"]


@FUZZ
@given(params=guest_dict())
def test_xen_domain(hypervisor, params):
    assert_clean(run_main(xen_domain, dict(params, uri="test:///default"), check=False), GUEST_NAMES)


@FUZZ
@given(
    guests=st.one_of(st.lists(guest_dict(), max_size=3), any_value()),
    default_bridge=st.one_of(st.none(), hostile_text()),
)
def test_xen_guests(hypervisor, guests, default_bridge):
    args = {"guests": guests, "uri": "test:///default", "parallel": 2}
    if default_bridge is not None:
        args["default_bridge"] = default_bridge
    assert_clean(run_main(xen_guests, args, check=False), GUEST_NAMES)


@settings(FUZZ, max_examples=20)
@given(name=st.one_of(st.none(), hostile_text()))
def test_xen_domain_info(hypervisor, name):
    args = {"uri": "test:///default"}
    if name is not None:
        args["name"] = name
    assert_clean(run_main(xen_domain_info, args, check=False), ["name"])


GROUP_SPEC = xen_group.ARGUMENT_SPEC
MEMBER = st.one_of(
    st.sampled_from(["test", f"{PREFIX}a"]),
    hostile_text(),
    options_dict(
        {key: GROUP_SPEC[key] for key in ("memory", "maxmem", "vcpus", "maxvcpus", "cpus")}
        | {
            "name": {"type": "str", "required": True},
            "vifs": {
                "type": "list",
                "elements": "dict",
                "options": {key: GROUP_SPEC[key] for key in ("nettype", "bridge", "network", "script")}
                | {"mac": {"type": "str"}, "tag": {"type": "str"}},
            },
        },
        {"name": st.sampled_from(["test", f"{PREFIX}a"])},
    ),
    any_value(),
)


@FUZZ
@given(
    params=options_dict(
        {k: v for k, v in GROUP_SPEC.items() if k != "uri"},
        {"members": st.one_of(st.lists(MEMBER, max_size=3), any_value())},
    )
)
def test_xen_group(hypervisor, params):
    names = parameter_names(GROUP_SPEC) + ["members", "name", "vifs", "mac", "tag"]
    assert_clean(run_main(xen_group, dict(params, uri="test:///default"), check=False), names)


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    return tmp_path_factory.mktemp(PREFIX + "storage")


DISK_SPEC = {k: v for k, v in xen_disk.ARGUMENT_SPEC.items() if k not in ("uri", "storage_dirs")}


@FUZZ
@given(
    params=options_dict(
        DISK_SPEC,
        {
            "path": st.one_of(
                st.sampled_from(["disk.img", "a/b.qcow2", "../escape.img", "x" * 300 + ".img"]), hostile_text()
            )
        },
    )
)
def test_xen_disk(hypervisor, storage, params):
    args = dict(params, storage_dirs=[str(storage)])
    if isinstance(params["path"], str) and not params["path"].startswith("/") and "\x00" not in params["path"]:
        args["path"] = f"{storage}/{params['path']}"
    before = sorted(p.name for p in storage.rglob("*"))
    result = run_main(xen_disk, args, check=True)
    assert_clean(result, parameter_names(xen_disk.ARGUMENT_SPEC) + ["size"])
    assert sorted(p.name for p in storage.rglob("*")) == before  # check mode wrote nothing


@settings(FUZZ, max_examples=30)
@given(params=options_dict({k: v for k, v in xen_disk_info.ARGUMENT_SPEC.items() if k != "uri"}))
def test_xen_disk_info(hypervisor, params):
    assert_clean(run_main(xen_disk_info, params, check=False), parameter_names(xen_disk_info.ARGUMENT_SPEC))


SNAPSHOT_GUEST = f"{PREFIX}snap"
SNAPSHOT_UUID = "5a0b7c4e-1111-5222-8333-0000000000aa"
SNAPSHOT_NAMES = {
    "name": st.one_of(st.sampled_from(["test", SNAPSHOT_GUEST]), hostile_text()),
    "snapshot": st.one_of(st.sampled_from(["s1", "s2"]), hostile_text()),
}


@settings(FUZZ, max_examples=60)
@given(params=options_dict({k: v for k, v in xen_snapshot.ARGUMENT_SPEC.items() if k != "uri"}, SNAPSHOT_NAMES))
def test_xen_snapshot(hypervisor, params):
    conn, _host = hypervisor
    conn.defineXML(  # a guest that can have snapshots (test's own disk is raw)
        f"<domain type='test'><name>{SNAPSHOT_GUEST}</name><uuid>{SNAPSHOT_UUID}</uuid><memory>131072</memory>"
        "<os><type>hvm</type></os>"
        "<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
        "<source file='/guests/snap.qcow2'/><target dev='vda'/></disk></devices></domain>"
    )
    result = run_main(xen_snapshot, dict(params, uri="test:///default"), check=False)
    assert_clean(result, parameter_names(xen_snapshot.ARGUMENT_SPEC))


@settings(FUZZ, max_examples=30)
@given(params=options_dict({k: v for k, v in xen_snapshot_info.ARGUMENT_SPEC.items() if k != "uri"}, SNAPSHOT_NAMES))
def test_xen_snapshot_info(hypervisor, params):
    result = run_main(xen_snapshot_info, dict(params, uri="test:///default"), check=False)
    assert_clean(result, parameter_names(xen_snapshot_info.ARGUMENT_SPEC))


BRIDGE_SPEC = xen_bridge._network_options(name_required=False)  # pylint: disable=protected-access


@FUZZ
@given(
    params=st.one_of(
        options_dict(BRIDGE_SPEC, {"name": st.one_of(st.sampled_from([PREFIX + "br"]), hostile_text())}),
        st.fixed_dictionaries(
            {
                "networks": st.one_of(
                    st.lists(options_dict(xen_bridge._network_options(name_required=True)), max_size=3),  # pylint: disable=protected-access
                    any_value(),
                )
            }
        ),
    )
)
def test_xen_bridge(hypervisor, tmp_path_factory, params):
    root = tmp_path_factory.mktemp(PREFIX + "root")
    conn, host = hypervisor
    networks_before = sorted(conn.listNetworks() + conn.listDefinedNetworks())
    result = run_main(xen_bridge, dict(params, uri="test:///default", config_root=str(root)), check=True)
    assert_clean(result, parameter_names(BRIDGE_SPEC) + ["networks", "start", "end"])
    assert host.writes == []
    assert sorted(conn.listNetworks() + conn.listDefinedNetworks()) == networks_before
    assert not any(root.rglob("*"))


@settings(FUZZ, max_examples=20)
@given(name=st.one_of(st.none(), hostile_text()), libvirt=st.booleans())
def test_xen_bridge_info(hypervisor, name, libvirt):
    args = {"uri": "test:///default", "libvirt": libvirt}
    if name is not None:
        args["name"] = name
    assert_clean(run_main(xen_bridge_info, args, check=False), ["name"])


# Each input below ended in a traceback before the schema (found by the fuzzing above, or
# named in issue 9); each must now fail naming the parameter, with nothing defined.
KNOWN = [
    (xen_domain, {"name": f"{PREFIX}k", "cmdline": "quiet\x1b[2J"}, "cmdline"),  # lxml ValueError
    (xen_domain, {"name": f"{PREFIX}k", "kernel": "/boot/vmlinuz\x00"}, "kernel"),  # lxml ValueError
    (xen_domain, {"name": f"{PREFIX}k", "extra": {"xml": 5}}, "extra.xml"),  # enumerate(int)
    (xen_guests, {"guests": [{"name": f"{PREFIX}k", "extra": '{"xml": 5}'}]}, "guests[0].extra.xml"),
    (xen_guests, {"guests": [{"name": f"{PREFIX}k", "extra": "{" * 3000 + "}" * 3000}]}, "guests[0].extra"),
    (xen_guests, {"guests": [{"name": f"{PREFIX}k", "disks": 3.5}]}, "guests[0].disks"),  # iterating a float
    (
        xen_domain,
        {"name": f"{PREFIX}k", "disks": [{"path": f"/g/{PREFIX}{i}.img"} for i in range(703)]},
        "disks",
    ),  # device name xvdaaa: AttributeError
    (xen_domain, {"name": f"{PREFIX}k", "memory": math.inf}, "memory"),  # OverflowError in ansible-core
    (xen_domain, {"name": f"{PREFIX}k", "memory": "9" * 5000}, "memory"),  # ValueError in ansible-core
    (xen_domain, {"name": f"{PREFIX}k", "extra": 1.5}, "extra"),  # TypeError in ansible-core
    (xen_domain, {"name": f"{PREFIX}k", "shutdown_timeout": 10**30}, "shutdown_timeout"),
    (xen_domain_info, {"name": "a\x00b"}, "name"),  # libvirt ValueError: embedded null character
    (xen_disk, {"path": "/var/lib/lcfg-xen/guests/k.img", "size_gb": math.nan}, "size_gb"),  # int(nan)
    (xen_disk, {"path": "/var/lib/lcfg-xen/guests/k.img", "size": "9" * 400 + "G"}, "size"),  # int(inf)
    (
        xen_disk,
        {
            "path": "/var/lib/lcfg-xen/guests/k.img",
            "size_gb": 1,
            "partition": "9" * 5000,
            "profile_url": "http://lcfg/p",
            "template": "/var/lib/lcfg-xen/guests/t.img",
        },
        "partition",
    ),
    (xen_disk, {"path": "/var/lib/lcfg-xen/guests/k\x00.img", "size_gb": 1}, "path"),  # embedded null byte
    (xen_group, {"name": "g", "members": ["test"], "maxmem": [2**63]}, "maxmem"),  # OverflowError in core
    (xen_bridge, {"networks": [{"name": f"{PREFIX}n", "dhcp_range": 0}]}, "networks[0].dhcp_range"),
]


@pytest.mark.parametrize(
    "module, params, parameter", KNOWN, ids=[f"{m.__name__.rsplit('.', 1)[-1]}-{p}" for m, _a, p in KNOWN]
)
def test_known_tracebacks_fail_naming_the_parameter(hypervisor, module, params, parameter):
    conn, host = hypervisor
    before = sorted(dom.name() for dom in conn.listAllDomains(0))
    result = run_main(module, dict(params, uri="test:///default"), check=module is xen_bridge)
    assert result.get("failed"), result
    assert parameter in result["msg"], result["msg"]
    assert "Traceback" not in result["msg"]
    assert sorted(dom.name() for dom in conn.listAllDomains(0)) == before
    assert host.writes == []
