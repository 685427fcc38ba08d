"""Hostile profiles through the real ``ansible-inventory --list`` (issue 9 §5).

One site directory holds a good hypervisor profile and one profile per attack. With
strict false every attack is a warning naming file:line and the good profile still loads;
with strict true the source fails with the same errors. Never a traceback, never a line of
the file outside the site, and the run stays inside a memory limit and a few seconds.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import ansible_env, trickle_server, untrusted

pytestmark = pytest.mark.integration

SECRET = "root:$6$lcfgt-inv-SECRET-HASH:19000:0:99999:7:::"
MEMORY_LIMIT = 1536 * 1024 * 1024  # address space of ansible-inventory: the attacks wanted GBs

GOOD = "!profile.components mADD(xen)\n!xen.virtualmachines mADD(lcfgt_inv_vm)\n"
XEN = "!profile.components mADD(xen)\n"
#: profile file name -> (text, expected "file:line" suffix, expected problem)
ATTACKS = {
    "incl-relative": ('#include "../../secret/shadow"\n', ":1", "outside the include path"),
    "incl-absolute": ("#include <{secret}>\n", ":1", "outside the include path"),
    "incl-symlink": ("#include <innocent.h>\n", ":1", "symlinks resolved"),
    "ungrouped": (XEN, "", "is a group name"),
    "all": (XEN, "", "is a group name"),
    "guest-as-group": (XEN + "!xen.virtualmachines mADD(xen_hypervisors)\n", ":2", "is a group name"),
    # the 10 KB profile: each line appends a 200,000-character macro (100 MB in all)
    "concat-macro": (
        "#define A0 "
        + "x" * 1000
        + "\n#define A1"
        + " A0" * 10
        + "\n#define A2"
        + " A1" * 10
        + "\n#define A3 A2 A2\n"
        + "!xen.x mCONCAT(A3)\n" * 500,
        ":5",
        "longer than the limit",
    ),
    "if-overflow": ("#if 1" + "0" * 400 + " / 3 > 1\n#endif\n", ":1", "integer constant too large"),
    "cpus-huge": (
        XEN + "!xen.virtualmachines mADD(lcfgtinvcpu)\n!xen.cpus_lcfgtinvcpu mSET(0-9999999)\n",
        ":3",
        "out of range",
    ),
}


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_inventory(config: Path, timeout: float = 120) -> tuple[subprocess.CompletedProcess, float]:
    env = ansible_env()
    env["ANSIBLE_INVENTORY_UNPARSED_FAILED"] = "true"
    env["ANSIBLE_INVENTORY_ENABLED"] = "lcfg.xen.lcfg"
    cmd = [str(Path(sys.executable).with_name("ansible-inventory")), "-i", str(config), "--list"]
    start = time.monotonic()
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False, preexec_fn=_limit_memory
    )
    return proc, time.monotonic() - start


@pytest.fixture
def hostile_site(tmp_path):
    (tmp_path / "secret").mkdir()
    shadow = tmp_path / "secret" / "shadow"
    shadow.write_text(SECRET + "\n")
    src = tmp_path / "site" / "profiles"
    inc = tmp_path / "site" / "include"
    src.mkdir(parents=True)
    inc.mkdir()
    os.symlink(shadow, inc / "innocent.h")
    (src / "lcfgt-inv-good").write_text(GOOD)
    for name, (text, _line, _problem) in ATTACKS.items():
        (src / name).write_text(text.format(secret=shadow) if "{secret}" in text else text)
    return tmp_path / "site"


def write_config(site: Path, **extra: object) -> Path:
    config = site / "site.lcfg.yml"
    config.write_text(
        json.dumps({"plugin": "lcfg.xen.lcfg", "sources": ["profiles"], "include_path": ["include"], **extra})
    )
    return config


def assert_clean(proc: subprocess.CompletedProcess, elapsed: float) -> None:
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out
    assert "lcfgt-inv-SECRET" not in out  # nothing of the file outside the site
    assert elapsed < 15  # before the budgets, the mCONCAT profile alone took 20 s


def test_each_attack_is_a_warning_naming_file_and_line_and_the_site_still_loads(hostile_site):
    proc, elapsed = run_inventory(write_config(hostile_site))
    assert proc.returncode == 0, proc.stderr
    assert_clean(proc, elapsed)
    warnings = " ".join(proc.stderr.split())  # ansible may wrap long warnings
    for name, (_text, line, problem) in ATTACKS.items():
        where = f"{hostile_site / 'profiles' / name}{line}: "
        assert where in warnings and problem in warnings, (name, proc.stderr)
    data = untrusted(json.loads(proc.stdout))
    assert data["xen_hypervisors"]["hosts"] == ["lcfgt-inv-good"]
    assert data["xen_guests"]["hosts"] == ["lcfgt_inv_vm"]
    assert set(data["_meta"]["hostvars"]) == {"lcfgt-inv-good", "lcfgt_inv_vm"}


def test_strict_fails_the_source_cleanly(hostile_site):
    proc, elapsed = run_inventory(write_config(hostile_site, strict=True))
    assert proc.returncode != 0
    assert_clean(proc, elapsed)
    errors = " ".join(proc.stderr.split())
    assert "LCFG profile errors (strict_profiles: true)" in errors
    assert f"{hostile_site / 'profiles' / 'incl-relative'}:1: " in errors
    assert f"{hostile_site / 'profiles' / 'if-overflow'}:1: " in errors


def test_a_server_sending_one_byte_a_second_fails_within_the_deadline(hostile_site):
    with trickle_server(b"<profile>" + b" " * 200 + b"</profile>") as base:
        url = f"{base}/lcfgt-inv/XML/profile.xml"
        config = hostile_site / "http.lcfg.yml"
        config.write_text(
            json.dumps({"plugin": "lcfg.xen.lcfg", "timeout": 3, "sources": ["profiles/lcfgt-inv-good", url]})
        )
        proc, elapsed = run_inventory(config)
    assert proc.returncode == 0, proc.stderr
    assert_clean(proc, elapsed)
    assert elapsed < 15  # 3 s deadline + ansible's start-up; per-read timeouts would take 200 s
    assert f"{url}: cannot fetch: no complete answer within the timeout of 3 s" in " ".join(proc.stderr.split())
    data = untrusted(json.loads(proc.stdout))
    assert data.get("xen_hypervisors", {}).get("hosts") == ["lcfgt-inv-good"], proc.stdout + proc.stderr
