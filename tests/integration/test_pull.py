# Copyright: lcfg.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pull mode: ansible-pull from a site repository (a local git repository here), whose
inventory is this machine's own XML profile served over HTTP on the loopback
(LCFG_XEN_SOURCES), converges the guests of that profile on the real libvirtd; a second run
changes nothing."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from http_serving import serving
from support import ROOT, ansible_env, remove_domains

pytestmark = [pytest.mark.integration, pytest.mark.slow]

libvirt = pytest.importorskip("libvirt")

URI = "qemu:///system"
PREFIX = "i14pull-"


def _profile(node: str) -> bytes:
    guests = "".join(
        f"<virtualmachines_RECORD cfg:name='{tag}'><name>{PREFIX}{tag}</name><memory>64</memory>"
        f"<vcpus>1</vcpus><boot>no</boot></virtualmachines_RECORD>"
        for tag in ("a", "b")
    )
    return (
        "<?xml version='1.0'?>"
        "<profile xmlns:cfg='http://www.lcfg.org/namespace/cfg-1.0'><lcfg><components>"
        f"<profile><node>{node}</node><components>client profile xen</components></profile>"
        "<xen><xendconfbridgenet>no</xendconfbridgenet><xendconfnatnet>no</xendconfnatnet>"
        "<virtualmachines cfg:template='name_$ memory_$ vcpus_$ boot_$'>"
        f"{guests}</virtualmachines></xen>"
        "</components></lcfg></profile>"
    ).encode()


def _site_repository(path: Path) -> Path:
    """What a site keeps in git for pull mode: a playbook importing lcfg.xen.pull and the
    collection's inventory-pull/."""
    path.mkdir()
    (path / "pull.yml").write_text("---\n- name: Pull\n  ansible.builtin.import_playbook: lcfg.xen.pull\n")
    shutil.copytree(ROOT / "inventory-pull", path / "inventory-pull")
    for args in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "site"]):
        subprocess.run(["git", *args], cwd=path, check=True)
    return path


def _pull(repo: Path, checkout: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-pull"),
            "-U",
            f"file://{repo}",
            "-d",
            str(checkout),
            "-i",
            "inventory-pull/pull.lcfg.yml",
            "pull.yml",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )


def _recap(output: str, host: str) -> dict[str, int]:
    match = re.search(rf"^{re.escape(host)}\s+:\s+(.*)$", output, re.MULTILINE)
    assert match, output[-3000:]
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}


def test_ansible_pull_converges_this_hypervisor_from_its_own_profile(tmp_path):
    node = socket.gethostname().split(".")[0]  # an LCFG profile is named after its machine
    remove_domains(URI, PREFIX)
    repo = _site_repository(tmp_path / "site")
    try:
        asked = []

        def answer(handler):
            # an LCFG server's answer with an ETag: the second run costs a 304
            asked.append(handler.headers.get("If-None-Match"))
            if handler.headers.get("If-None-Match") == '"p1"':
                return 304, {"ETag": '"p1"'}, b""
            return 200, {"ETag": '"p1"'}, _profile(node)

        with serving(answer) as base:
            env = ansible_env()
            env["LCFG_XEN_SOURCES"] = f"{base}/{node}/XML/profile.xml"
            first = _pull(repo, tmp_path / "checkout", env)
            assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-3000:]
            assert _recap(first.stdout, node)["failed"] == 0
            conn = libvirt.open(URI)
            try:
                for tag in ("a", "b"):
                    dom = conn.lookupByName(f"{PREFIX}{tag}")
                    assert dom.info()[1] == 64 * 1024 and not dom.isActive()
                    assert f'owner="{node}"' in dom.XMLDesc(0)  # recorded for this hypervisor
            finally:
                conn.close()
            second = _pull(repo, tmp_path / "checkout", env)
            assert second.returncode == 0, second.stdout[-6000:] + second.stderr[-3000:]
            assert _recap(second.stdout, node)["changed"] == 0, second.stdout[-6000:]
            assert asked[0] is None and asked[-1] == '"p1"'  # the store made the later reads conditional
    finally:
        remove_domains(URI, PREFIX)
