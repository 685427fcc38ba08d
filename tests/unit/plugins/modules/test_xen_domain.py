"""xen_domain, xen_domain_info and xen_guests run in-process against libvirt's test driver.

The modules' ``main()`` runs with real argument parsing; ``open_connection`` (called by their
shared helper ``_module.with_libvirt``) is patched to hand out one shared ``test:///default``
connection (that driver keeps its state per connection), so a sequence of module runs sees
the same hypervisor. Subprocess runs
(``run_module``) cover the real entry point with a driver XML file, and ``ansible-doc``
renders the documentation.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.lcfg.xen.plugins.module_utils.common import module as _module
from ansible_collections.lcfg.xen.plugins.module_utils.common.libvirt import libvirt, open_connection
from ansible_collections.lcfg.xen.plugins.modules import xen_domain, xen_domain_info, xen_guests
from support import ROOT, SharedConnection, inventory_list, remove_named, run_module

NAME = "lcfgtest-dom-mod"
MODULES = {"xen_domain": xen_domain, "xen_domain_info": xen_domain_info, "xen_guests": xen_guests}


@pytest.fixture
def hypervisor(monkeypatch):
    conn = open_connection("test:///default")
    shared = SharedConnection(conn)
    monkeypatch.setattr(_module, "open_connection", lambda uri: shared)
    yield conn
    remove_named(conn.listAllDomains(0), "lcfgtest-dom-")  # the guests of this file
    conn.close()


def run(name, params, check=False, diff=True):
    args = dict(params, _ansible_check_mode=check, _ansible_diff=diff)
    args.setdefault("uri", "test:///default")
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        MODULES[name].main()
    return exit_info.value.code


def result_of(capsys, name, params, check=False, diff=True):
    code = run(name, params, check=check, diff=diff)
    out = json.loads(capsys.readouterr().out)
    out["rc"] = code
    return out


def four_steps(capsys, name, params):
    results = [result_of(capsys, name, params, check=check) for check in (True, False, True, False)]
    for result in results:
        assert result["rc"] == 0, result.get("msg")
    first_check, first, second_check, second = results
    assert first_check["changed"] == first["changed"]
    assert first_check["diff"] == first["diff"]
    assert second_check["changed"] is False and second["changed"] is False
    return first


def test_xen_domain_four_steps_with_diff(hypervisor, capsys):
    params = {
        "name": NAME,
        "memory": 96,
        "maxmem": 128,
        "vcpus": 1,
        "maxvcpus": 2,
        "state": "running",
        "disks": [{"path": "/var/lib/libvirt/images/lcfgtest-dom/m.img", "size_gb": 4}],
        "vifs": [{"bridge": "br0", "mac": "52:54:00:00:aa:01"}],
    }
    first = four_steps(capsys, "xen_domain", params)
    assert first["changed"] is True
    assert first["diff"]["before"] == {"name": NAME, "state": "absent"}
    assert first["diff"]["after"]["memory"] == 96 and first["diff"]["after"]["state"] == "running"
    assert "size_gb" not in first["diff"]["after"]["disks"][0]
    dom = hypervisor.lookupByName(NAME)
    assert dom.isActive()
    assert dom.info()[2] == 96 * 1024

    changed = four_steps(capsys, "xen_domain", dict(params, maxmem=256, vcpus=2))
    assert changed["pending_restart_fields"] == ["maxmem"]
    assert changed["actions"] == ["redefine", "set_vcpus_live"]
    assert dom.info()[3] == 2


def test_xen_domain_without_diff_returns_no_diff(hypervisor, capsys):
    result = result_of(capsys, "xen_domain", {"name": NAME, "memory": 64}, diff=False)
    assert result["changed"] is True and "diff" not in result


@pytest.mark.parametrize(
    "params, fragment",
    [
        ({"memory": 256, "maxmem": 128}, "memory"),
        ({"cpus": "9-1"}, "cpus"),
        ({"disks": [{"path": "relative.img"}]}, "disks[0].path"),
        ({"vifs": [{"mac": "nonsense", "bridge": "br0"}]}, "vifs[0].mac"),
        ({"type": "hvm", "kernel": "/boot/vmlinuz"}, "kernel"),
        ({"uuid": "1234"}, "uuid"),
    ],
)
def test_xen_domain_bad_parameters_change_nothing(hypervisor, capsys, params, fragment):
    result = result_of(capsys, "xen_domain", dict(params, name=NAME))
    assert result["rc"] == 1 and result["failed"] is True
    assert result["msg"].startswith(fragment + ":")
    assert NAME not in [d.name() for d in hypervisor.listAllDomains(0)]


def test_xen_domain_rejects_hostvar_only_keys(hypervisor, capsys):
    result = result_of(capsys, "xen_domain", {"name": NAME, "template": "/t.img"})
    assert result["rc"] == 1 and "template" in result["msg"]


def test_xen_domain_absent(hypervisor, capsys):
    four_steps(capsys, "xen_domain", {"name": NAME, "memory": 64, "state": "running"})
    removed = four_steps(capsys, "xen_domain", {"name": NAME, "state": "absent"})
    assert removed["actions"] == ["stop", "undefine"]
    assert removed["diff"]["after"] == {"name": NAME, "state": "absent"}
    with pytest.raises(libvirt.libvirtError):
        hypervisor.lookupByName(NAME)


def test_xen_domain_info(hypervisor, capsys):
    four_steps(capsys, "xen_domain", {"name": NAME, "memory": 64, "autostart": True})
    result = result_of(capsys, "xen_domain_info", {"name": NAME})
    assert result["changed"] is False
    (guest,) = result["guests"]
    assert guest["state"] == "stopped" and guest["autostart"] is True and guest["live"] is None
    # the reported config is valid input for xen_domain, and changes nothing
    assert result_of(capsys, "xen_domain", guest["config"])["changed"] is False
    everything = result_of(capsys, "xen_domain_info", {})
    assert NAME in [g["name"] for g in everything["guests"]]


def test_xen_guests_four_steps(hypervisor, capsys):
    guests = [{"name": f"{NAME}{i}", "memory": 64, "autostart": i == 0} for i in range(3)]
    first = four_steps(capsys, "xen_guests", {"guests": guests})
    assert [r["actions"] for r in first["results"]] == [["define", "set_autostart"], ["define"], ["define"]]
    assert set(first["diff"]["after"]) == {g["name"] for g in guests}
    started = four_steps(capsys, "xen_guests", {"guests": [dict(g, state="running") for g in guests]})
    assert all(r["actions"] == ["start"] for r in started["results"])
    assert all(hypervisor.lookupByName(g["name"]).isActive() for g in guests)


def test_xen_guests_bad_entry_changes_nothing(hypervisor, capsys):
    guests = [{"name": f"{NAME}{i}", "memory": 64} for i in range(3)]
    guests[1]["vifs"] = [{"nettype": "nat", "bridge": "br0"}]
    result = result_of(capsys, "xen_guests", {"guests": guests})
    assert result["rc"] == 1 and result["msg"].startswith("guests[1].vifs[0].bridge:")
    assert not [d for d in hypervisor.listAllDomains(0) if d.name().startswith(NAME)]


def test_entry_point_in_a_subprocess(tmp_path):
    """The real entry point (python -m ...) with a driver file; state does not persist there."""
    node = tmp_path / "node.xml"
    node.write_text(
        "<node><cpu><nodes>1</nodes><sockets>1</sockets><cores>2</cores><threads>1</threads>"
        "<active>2</active><mhz>1000</mhz></cpu><memory>1048576</memory></node>"
    )
    result = run_module("xen_domain", {"uri": f"test://{node}", "name": NAME, "memory": 64}, check=True, diff=True)
    assert result["rc"] == 0 and result["changed"] is True
    assert result["actions"] == ["define"]
    result = run_module("xen_guests", {"uri": f"test://{node}", "guests": [{"name": NAME, "size": 1}]})
    assert result["rc"] == 1 and "guests[0].size" in result["msg"]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_ansible_doc_renders(module):
    env_python = Path(sys.executable)
    proc = subprocess.run(
        [str(env_python.with_name("ansible-doc")), "--json", f"lcfg.xen.{module}"],
        capture_output=True,
        text=True,
        check=False,
        cwd=str(ROOT),
        env={"ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"), "PATH": "/usr/bin:/bin", "HOME": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)[f"lcfg.xen.{module}"]["doc"]
    assert doc["module"] == module
    if module != "xen_domain_info":
        assert "name" in doc["options"] or "guests" in doc["options"]


def examples(module):
    import yaml  # noqa: PLC0415 - only this test needs it

    return yaml.safe_load(MODULES[module].EXAMPLES)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_examples_match_the_argument_spec(module):
    """Every example task of the module passes the module's own argument validation."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator  # noqa: PLC0415

    from ansible_collections.lcfg.xen.plugins.module_utils.common.argspec import with_connection  # noqa: PLC0415
    from ansible_collections.lcfg.xen.plugins.module_utils.domain.engine import validate_guest  # noqa: PLC0415
    from ansible_collections.lcfg.xen.plugins.module_utils.spec.argspec import guest_module_argspec  # noqa: PLC0415
    from ansible_collections.lcfg.xen.plugins.module_utils.spec.schema import check_guest_item  # noqa: PLC0415

    specs = {
        "xen_domain": with_connection(guest_module_argspec()),
        "xen_domain_info": xen_domain_info.ARGUMENT_SPEC,
        "xen_guests": with_connection(
            {
                "guests": {"type": "list", "elements": "dict", "required": True},
                "default_bridge": {"type": "str"},
                "parallel": {"type": "int", "default": 8},
                "prune": {"type": "bool", "default": False},
                "prune_timeout": {"type": "float", "default": 120},
                "prune_force": {"type": "bool", "default": False},
                "prune_disks": {"type": "bool", "default": False},
                "owner": {"type": "str"},
            }
        ),
    }
    tasks = [t for t in examples(module) if f"lcfg.xen.{module}" in t]
    assert tasks
    for task in tasks:
        args = {k: v for k, v in task[f"lcfg.xen.{module}"].items() if not (isinstance(v, str) and "{{" in v)}
        if module == "xen_guests" and "guests" not in args:
            args["guests"] = []
        result = ArgumentSpecValidator(specs[module]).validate(args)
        assert not result.error_messages, (task["name"], result.error_messages)
        for index, guest in enumerate(args.get("guests") or []):
            validate_guest(check_guest_item(guest, f"guests[{index}]."))


def test_test_driver_example_runs(hypervisor, capsys):
    (task,) = [t for t in examples("xen_guests") if t.get("lcfg.xen.xen_guests", {}).get("uri") == "test:///default"]
    guests = [dict(g, name=f"{NAME}-{g['name']}") for g in task["lcfg.xen.xen_guests"]["guests"]]
    result = four_steps(capsys, "xen_guests", {"uri": "test:///default", "guests": guests})
    assert [r["actions"] for r in result["results"]] == [["define"], ["define", "start"]]


SITE = ROOT / "inventory" / "site.lcfg.yml"


@pytest.mark.skipif(not SITE.exists(), reason="the example site inventory is not there")
def test_every_hostvar_of_the_example_site_converges(hypervisor):
    """The inventory's xen_domain variables go into xen_guests unchanged (check mode). The
    virtual machines: the containers go to libvirt's LXC driver (tests/integration/test_site.py)."""
    from ansible_collections.lcfg.xen.plugins.module_utils.domain.engine import converge_guests  # noqa: PLC0415

    inventory = inventory_list(SITE)
    hostvars = inventory["_meta"]["hostvars"]
    hypervisors = inventory["xen_hypervisors"]["hosts"]
    assert hypervisors
    for host in hypervisors:
        names = [n for n in hostvars[host]["xen_host"]["guests"] if hostvars[n]["xen_domain"]["type"] != "container"]
        specs = [hostvars[name]["xen_domain"] for name in names]
        result = converge_guests(
            hypervisor, specs, check_mode=True, default_bridge=hostvars[host]["xen_host"].get("default_bridge")
        )
        assert [r["name"] for r in result["results"]] == names
        assert all(r["actions"][0] == "define" for r in result["results"])
