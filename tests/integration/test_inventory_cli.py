"""The real ``ansible-inventory`` CLI on the example profiles of tests/fixtures and the example site.

Every fact of tests/fixtures/profiles/README.md is checked from ``--list`` JSON; strict
true/false is checked on a profile carrying the seed's 13-digit UUID.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from support import PROFILES, ROOT, ansible_env, run_playbook, untrusted

pytestmark = pytest.mark.integration

BAD_UUID = "26d1876a-85fc-49a4-9a5b-929570e18bb65"


def run_inventory(config: Path, *args: str) -> subprocess.CompletedProcess:
    env = ansible_env()
    env["ANSIBLE_INVENTORY_UNPARSED_FAILED"] = "true"
    cmd = [str(Path(sys.executable).with_name("ansible-inventory")), "-i", str(config)]
    return subprocess.run(
        cmd + list(args or ["--list"]), capture_output=True, text=True, env=env, timeout=300, check=False
    )


def inventory(config: Path) -> dict:
    proc = run_inventory(config)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    data = json.loads(proc.stdout)
    # profile values are untrusted data: --list prints them wrapped, never as plain templates
    assert data["_meta"]["hostvars"] == {} or "__ansible_unsafe" in proc.stdout
    return untrusted(data)


def write_config(tmp_path: Path, sources: list[str], name: str = "site.lcfg.yml", **extra: object) -> Path:
    config = tmp_path / name
    data = {"plugin": "lcfg.xen.lcfg", "sources": sources, "include_path": [str(PROFILES / "include")], **extra}
    config.write_text(json.dumps(data))  # JSON is YAML
    return config


def hosts_of(data: dict, group: str) -> list[str]:
    return data.get(group, {}).get("hosts", [])


def check_single(data: dict, host: str) -> None:
    hv = data["_meta"]["hostvars"]
    assert hosts_of(data, "xen_hypervisors") == [host]
    assert hosts_of(data, "xen_guests") == ["profiledev"]
    dom = hv["profiledev"]["xen_domain"]
    assert hv["profiledev"]["xen_hypervisor"] == host
    assert (dom["type"], dom["memory"], dom["maxmem"], dom["vcpus"]) == ("hvm", 256, 512, 1)
    assert [(d["path"], d["size_gb"]) for d in dom["disks"]] == [("/guests/profiledev.img", 12)]
    assert [v["mac"] for v in dom["vifs"]] == ["00:15:17:96:40:03"]
    assert dom["template"] == "/guests/lcfg_temp.img"
    assert dom["partition"] == 5
    assert dom["autostart"] is False
    assert dom["uuid"] == "bbdda922-8ee3-4ff8-874e-7c4e712dc4c7"
    assert hv[host]["xen_host"]["guests"] == ["profiledev"]
    assert hv[host]["lcfg_resources"]["xen"]["memory_profiledev"] == "256"


def test_source_directory_is_one_site(tmp_path):
    data = inventory(write_config(tmp_path, [str(PROFILES / "source")]))
    hv = data["_meta"]["hostvars"]
    assert sorted(hosts_of(data, "xen_hypervisors")) == ["xen-cluster", "xen-groups", "xen-networks", "xen-single"]
    assert len(hosts_of(data, "xen_guests")) == 17

    # xen-single
    dom = hv["profiledev"]["xen_domain"]
    assert (dom["type"], dom["memory"], dom["maxmem"], dom["vcpus"]) == ("hvm", 256, 512, 1)
    assert [(d["path"], d["size_gb"]) for d in dom["disks"]] == [("/guests/profiledev.img", 12)]
    assert [v["mac"] for v in dom["vifs"]] == ["00:15:17:96:40:03"]
    assert (dom["template"], dom["partition"], dom["autostart"]) == ("/guests/lcfg_temp.img", 5, False)

    # xen-cluster
    for n in range(1, 9):
        dom = hv[f"node{n}"]["xen_domain"]
        assert hv[f"node{n}"]["xen_hypervisor"] == "xen-cluster"
        assert (dom["type"], dom["memory"], dom["maxmem"], dom["vcpus"]) == ("pv", 1930, 1930, 4)
        assert dom["cpus"] == ("0,1,2,3" if n <= 4 else "4,5,6,7")
        assert [(v["nettype"], v["ip"]) for v in dom["vifs"]] == [("nat", f"10.0.0.{n}")]
        assert dom["autostart"] is False
    cluster = hv["xen-cluster"]["xen_host"]
    assert (cluster["nat_network"], cluster["bridge_network"]) == (True, False)

    # xen-groups
    assert hosts_of(data, "cluster1") == ["gnode1", "gnode2", "gnode3"]
    assert hosts_of(data, "cluster2") == ["gnode4", "gnode5"]
    assert hosts_of(data, "cluster3") == ["gnode6", "gnode7", "gnode8"]
    for n in (1, 2, 3):
        dom = hv[f"gnode{n}"]["xen_domain"]
        assert (dom["memory"], dom["maxmem"], dom["vcpus"], dom["cpus"]) == (1024, 2048, 4, "3")
        assert [v["bridge"] for v in dom["vifs"]] == ["xenbr0"]
        assert dom["name"] == f"gnode{n}"
    for n in (4, 5):
        dom = hv[f"gnode{n}"]["xen_domain"]
        assert (dom["vcpus"], dom["cpus"]) == (2, "2")
        assert [v["bridge"] for v in dom["vifs"]] == ["xenbr1"]
    for n in (6, 7, 8):
        dom = hv[f"gnode{n}"]["xen_domain"]
        assert dom["cpus"] == "2"
        assert [(v["nettype"], v["script"]) for v in dom["vifs"]] == [("nat", "vif-nat")]

    # xen-networks
    net = hv["xen-networks"]["xen_host"]
    assert [(b["netdev"], b["bridge"], b["vifnum"]) for b in net["bridges"]] == [
        ("eth0", "xenbr0", 0),
        ("eth1", "xenbr1", 1),
        ("eth2", "xenbr2", 2),
    ]
    assert net["custom_bridge"] == "my-network-bridge"
    assert (net["nat_network"], net["bridge_network"]) == (True, True)


GROUPS_PLAY = """- name: What the inventory holds, whatever --limit selects
  hosts: all
  gather_facts: false
  tasks:
    - name: Print the hypervisors and guests the inventory holds
      run_once: true
      ansible.builtin.debug:
        msg: "HOLDS {{ groups['xen_hypervisors'] | sort | join(',') }} / {{ groups['xen_guests'] | length }}"
"""


@pytest.mark.parametrize(
    ("limit", "only", "holds"),
    [
        ("xen-groups", True, "xen-groups / 8"),  # its guests and virtual groups come with it
        ("gnode4[0]", True, "xen-groups / 8"),  # a guest selects its hypervisor's profile
        ("cluster2", True, "xen-cluster,xen-groups,xen-networks,xen-single / 17"),  # a group: all
        ("node3,profiledev", True, "xen-cluster,xen-single / 9"),
        ("xen_hypervisors", True, "xen-cluster,xen-groups,xen-networks,xen-single / 17"),
        ("xen-groups", False, "xen-cluster,xen-groups,xen-networks,xen-single / 17"),  # the default
    ],
)
def test_only_limited_profiles_loads_what_the_limit_can_select(tmp_path, limit, only, holds):
    config = write_config(tmp_path, [str(PROFILES / "source")], only_limited_profiles=only)
    play = tmp_path / "holds.yml"
    play.write_text(GROUPS_PLAY)
    proc = run_playbook(play, "--limit", limit, inventory=config)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"HOLDS {holds}" in proc.stdout


def test_seed_variant_gives_the_same_facts(tmp_path):
    check_single(inventory(write_config(tmp_path, [str(PROFILES / "variants" / "xen-single-seed")])), "xen-single-seed")


def test_xml_profile_gives_the_same_facts(tmp_path):
    data = inventory(write_config(tmp_path, [str(PROFILES / "xml" / "xen-single.xml")]))
    host = hosts_of(data, "xen_hypervisors")[0]
    check_single(data, host)
    # the empty <xendconfnatnet/> element means unset (the default: off)
    assert "xendconfnatnet" not in data["_meta"]["hostvars"][host]["lcfg_resources"]["xen"]
    assert data["_meta"]["hostvars"][host]["xen_host"]["nat_network"] is False


def bad_site(tmp_path: Path) -> tuple[Path, int]:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    text = (PROFILES / "source" / "xen-cluster").read_text()
    good_uuid = "26d1876a-85fc-49a4-9a5b-929570e18b01"
    assert good_uuid in text
    (profiles / "xen-cluster").write_text(text.replace(good_uuid, BAD_UUID))
    line = text[: text.index(good_uuid)].count("\n") + 1
    (profiles / "xen-single").write_text((PROFILES / "source" / "xen-single").read_text())
    return profiles, line


def test_bad_uuid_not_strict_leaves_the_profile_out_with_a_warning(tmp_path):
    profiles, line = bad_site(tmp_path)
    proc = run_inventory(write_config(tmp_path, [str(profiles)], strict=False))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    data = untrusted(json.loads(proc.stdout))
    assert hosts_of(data, "xen_hypervisors") == ["xen-single"]
    assert hosts_of(data, "xen_guests") == ["profiledev"]
    assert "node1" not in data["_meta"]["hostvars"]
    stderr = " ".join(proc.stderr.split())
    assert f"{profiles / 'xen-cluster'}:{line}: xen.uuid_node1: invalid UUID '{BAD_UUID}'" in stderr


def test_bad_uuid_strict_fails_the_source(tmp_path):
    profiles, line = bad_site(tmp_path)
    proc = run_inventory(write_config(tmp_path, [str(profiles)], strict=True))
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    stderr = " ".join(proc.stderr.split())
    assert f"{profiles / 'xen-cluster'}:{line}: xen.uuid_node1: invalid UUID" in stderr


def test_verify_file_rejects_other_names(tmp_path):
    config = write_config(tmp_path, [str(PROFILES / "source")], name="site.yml")
    proc = run_inventory(config)
    assert proc.returncode != 0
    assert "xen_hypervisors" not in proc.stdout


def test_example_site(tmp_path):
    data = inventory(ROOT / "inventory" / "site.lcfg.yml")
    hv = data["_meta"]["hostvars"]
    hypervisors = hosts_of(data, "xen_hypervisors")
    assert sorted(hypervisors) == ["demo-cluster", "demo-groups", "demo-networks", "demo-single"]
    for host in hypervisors:
        assert hv[host]["ansible_connection"] == "local"
        assert hv[host]["xen_uri"] == "qemu:///system"
        assert hv[host]["ansible_python_interpreter"] == "{{ ansible_playbook_python }}"
    guests = hosts_of(data, "xen_guests")
    assert len(guests) == len(set(guests)) >= 10
    for guest in guests:
        dom = hv[guest]["xen_domain"]
        assert 64 <= dom["memory"] <= dom["maxmem"] <= 256
        assert all(d["path"].startswith("/var/lib/lcfg-xen/guests/") for d in dom["disks"])
        # a container's root filesystem is its template's size
        assert all(d["size_gb"] == (None if dom["type"] == "container" else 1) for d in dom["disks"])
    started = [g for g in guests if hv[g]["xen_domain"]["autostart"]]
    assert 1 <= len(started) <= 4
    single = hv["demo-profiledev"]["xen_domain"]
    assert single["template"] == "/var/lib/lcfg-xen/templates/lcfg_template.img"
    assert single["partition"] == 5 and single["profile_url"].startswith("http")
    assert all(hv[f"demo-node{n}"]["xen_domain"]["cpus"] in ("0", "1") for n in range(1, 5))
    assert [v["nettype"] for v in hv["demo-node1"]["xen_domain"]["vifs"]] == ["nat"]
    for group in ("cluster1", "cluster2", "cluster3"):
        assert hosts_of(data, group)
    assert hv["demo-gnode1"]["xen_domain"]["memory"] == 128  # from group cluster1
    net = hv["demo-networks"]["xen_host"]
    assert [b["bridge"] for b in net["bridges"]] == ["xenbr0", "xenbr1", "xenbr2"]
    assert net["custom_bridge"] and net["nat_network"] and net["bridge_network"]
    assert [v["bridge"] for v in hv["demo-multi"]["xen_domain"]["vifs"]] == [None, "xenbr1", "xenbr2", None]


def test_profile_values_are_never_templated(tmp_path):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "hv1").write_text(
        "!profile.components mADD(xen)\n"
        "!xen.virtualmachines mADD(vm1)\n"
        "!xen.cmdline_vm1 mSET({{ lookup('pipe', 'echo PWNED-$((6*7))') }})\n"
    )
    config = write_config(
        tmp_path,
        [str(profiles)],
        compose={"ansible_connection": "'local'", "ansible_python_interpreter": repr(sys.executable)},
    )
    playbook = tmp_path / "show.yml"
    playbook.write_text(
        json.dumps(
            [
                {
                    "hosts": "hv1",
                    "gather_facts": False,
                    "tasks": [{"ansible.builtin.debug": {"var": "hostvars['vm1'].xen_domain.cmdline"}}],
                }
            ]
        )
    )
    proc = run_playbook(playbook, inventory=config, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "lookup('pipe', 'echo PWNED-$((6*7))')" in proc.stdout
    assert "PWNED-42" not in proc.stdout
