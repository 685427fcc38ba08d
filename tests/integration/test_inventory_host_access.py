"""The inventory option ``host_access`` through the real CLI: a site's admin allows a bootloader,
block devices and another storage directory in ``site.lcfg.yml``; a profile cannot do the same,
and the guest role's defaults follow the configuration (``xen_host_access``)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from support import ansible_env, inventory_list, run_playbook, untrusted

pytestmark = pytest.mark.integration

SITE_PROFILE = """\
!profile.components mADD(xen)
!xen.virtualmachines mADD(lcfgt-access-vm)
!xen.bootloader_lcfgt-access-vm mSET(/usr/local/bin/mygrub)
!xen.disks_lcfgt-access-vm mADD(root data)
!xen.diskpath_lcfgt-access-vm_root mSET(/srv/lcfgt-access)
!xen.disktype_lcfgt-access-vm_data mSET(phy)
!xen.diskpath_lcfgt-access-vm_data mSET(/dev/vg_lcfgt)
"""
HOST_ACCESS = {
    "storage_dirs": ["/srv/lcfgt-access"],
    "allowed_boot_paths": ["/usr/local/bin/mygrub"],
    "allowed_block_devices": ["/dev/vg_lcfgt"],
}
#: what a profile might try to grant itself: a component of that name, xen resources named
#: like the options and the hostvar, and a group-level spelling
SELF_GRANT = """\
!host_access.allowed_boot_paths mSET(/usr/local/bin/mygrub)
!xen.host_access mSET(allowed_boot_paths=/usr/local/bin/mygrub)
!xen.xen_host_access mSET(/usr/local/bin/mygrub)
!xen.allowed_boot_paths mSET(/usr/local/bin/mygrub)
!xen.allowedbootpaths_lcfgt-access-vm mSET(/usr/local/bin/mygrub)
!xen.storagedirs mSET(/usr/local/bin)
"""


def write_config(tmp_path: Path, sources: list[str], name: str = "site.lcfg.yml", **extra: object) -> Path:
    config = tmp_path / name
    config.write_text(json.dumps({"plugin": "lcfg.xen.lcfg", "sources": sources, **extra}))  # JSON is YAML
    return config


def run_inventory(config: Path) -> subprocess.CompletedProcess:
    """``ansible-inventory --list`` that may fail (support.inventory_list asserts success)."""
    env = dict(ansible_env(), ANSIBLE_INVENTORY_UNPARSED_FAILED="true")
    return subprocess.run(
        [str(Path(sys.executable).with_name("ansible-inventory")), "-i", str(config), "--list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def hosts_of(data: dict, group: str) -> list[str]:
    return data.get(group, {}).get("hosts", [])


def site(tmp_path: Path, profile: str = SITE_PROFILE) -> Path:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "lcfgt-access-hv").write_text(profile.replace("lcfgt-access-vm", "vm1"))
    return profiles


def left_out(tmp_path, profiles) -> tuple[dict, str]:
    """ansible-inventory over ``profiles`` without host_access: it succeeds, the hypervisor
    profile is left out; returns the inventory and the warnings on one line."""
    proc = run_inventory(write_config(tmp_path, [str(profiles)]))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    data = untrusted(json.loads(proc.stdout))
    assert hosts_of(data, "xen_hypervisors") == [] and "vm1" not in data["_meta"]["hostvars"]
    return data, " ".join(proc.stderr.split())


def test_profile_needing_more_is_refused_by_default_at_its_line(tmp_path):
    profiles = site(tmp_path)
    _data, stderr = left_out(tmp_path, profiles)
    assert f"{profiles / 'lcfgt-access-hv'}:3: xen.bootloader_vm1:" in stderr


def test_host_access_in_the_configuration_lets_the_site_in(tmp_path):
    data = inventory_list(write_config(tmp_path, [str(site(tmp_path))], host_access=HOST_ACCESS))
    hv = data["_meta"]["hostvars"]
    assert hosts_of(data, "xen_guests") == ["vm1"]
    dom = hv["vm1"]["xen_domain"]
    assert dom["bootloader"] == "/usr/local/bin/mygrub"
    assert [(d["type"], d["path"]) for d in dom["disks"]] == [
        ("image", "/srv/lcfgt-access/vm1.img"),
        ("phy", "/dev/vg_lcfgt/vm1-data"),
    ]
    assert hv["lcfgt-access-hv"]["xen_host_access"] == dict(
        HOST_ACCESS, allow_host_resources=False, allow_containers=False, trusted_extra_xml=False
    )
    assert "xen_host_access" not in hv["vm1"]


def test_a_bad_option_fails_the_source_naming_it(tmp_path):
    proc = run_inventory(
        write_config(tmp_path, [str(site(tmp_path))], host_access={"allowed_boot_paths": ["usr/local/bin/mygrub"]})
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "option host_access.allowed_boot_paths: 'usr/local/bin/mygrub' is not an absolute path" in " ".join(
        proc.stderr.split()
    )


def test_a_profile_cannot_grant_itself_host_access(tmp_path):
    """Resources named like the option or the hostvar are plain data of lcfg_resources (or an
    error): the bootloader is still refused and no host gets xen_host_access."""
    profiles = site(
        tmp_path,
        SITE_PROFILE.replace("!profile.components mADD(xen)\n", "!profile.components mADD(xen host_access)\n")
        + SELF_GRANT,
    )
    data, stderr = left_out(tmp_path, profiles)
    # xen.storagedirs may only narrow the storage directories, the bootloader stays refused
    assert f"{profiles / 'lcfgt-access-hv'}:13: xen.storagedirs: /usr/local/bin is not inside" in stderr
    assert f"{profiles / 'lcfgt-access-hv'}:3: xen.bootloader_vm1:" in stderr
    assert not any("xen_host_access" in str(v) for v in data["_meta"]["hostvars"].values())

    # without the bootloader the profile loads: the would-be grants are data, nothing more
    lines = [
        line
        for line in (profiles / "lcfgt-access-hv").read_text().splitlines()
        if "bootloader" not in line
        and "phy" not in line
        and "vg_lcfgt" not in line
        and "srv/lcfgt" not in line
        and "storagedirs" not in line
    ]
    (profiles / "lcfgt-access-hv").write_text("\n".join(lines) + "\n")
    data = inventory_list(write_config(tmp_path, [str(profiles)]))
    hv = data["_meta"]["hostvars"]["lcfgt-access-hv"]
    assert "xen_host_access" not in hv
    assert hv["lcfg_resources"]["host_access"] == {"allowed_boot_paths": "/usr/local/bin/mygrub"}
    assert hv["lcfg_resources"]["xen"]["xen_host_access"] == "/usr/local/bin/mygrub"


def test_guest_role_defaults_follow_the_configuration(tmp_path):
    """The guest role's guest_* defaults come from xen_host_access (its argument spec validates
    them; xen_guests, run in check mode with no guests, accepts them), and a play variable still
    overrides them."""
    config = write_config(tmp_path, [str(site(tmp_path))], host_access=HOST_ACCESS)
    playbook = tmp_path / "lcfgt-access.yml"
    playbook.write_text(
        textwrap.dedent("""\
        - hosts: xen_hypervisors
          gather_facts: false
          connection: local
          tasks:
            - ansible.builtin.include_role:  # main: its argument spec is validated
                name: lcfg.xen.guest
                public: true
              vars:
                guest_specs: []
            - ansible.builtin.copy:
                dest: "{{ out }}"
                content: "{{ {'dirs': guest_storage_dirs, 'boot': guest_allowed_boot_paths,
                              'block': guest_allowed_block_devices, 'all': guest_allow_host_resources,
                              'xml': guest_trusted_extra_xml} | to_json }}"
              delegate_to: localhost
              check_mode: false
        """)
    )
    out = tmp_path / "vars.json"
    proc = run_playbook(playbook, "--check", inventory=config, extra_vars={"out": str(out)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(out.read_text()) == {
        "dirs": ["/srv/lcfgt-access"],
        "boot": ["/usr/local/bin/mygrub"],
        "block": ["/dev/vg_lcfgt"],
        "all": False,
        "xml": False,
    }
    proc = run_playbook(
        playbook, "--check", inventory=config, extra_vars={"out": str(out), "guest_allowed_boot_paths": []}
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(out.read_text())["boot"] == []
    # without the option: the modules' defaults
    plain = write_config(tmp_path, [str(tmp_path / "profiles")], name="plain.lcfg.yml")
    (tmp_path / "profiles" / "lcfgt-access-hv").write_text("!profile.components mADD(xen)\n")
    proc = run_playbook(playbook, "--check", inventory=plain, extra_vars={"out": str(out)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(out.read_text()) == {"dirs": [], "boot": [], "block": [], "all": False, "xml": False}
