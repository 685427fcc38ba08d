"""Molecule scenarios of the roles (delegated driver on this host), from the test command.

Each scenario converges its role against this machine, checks idempotence (a second
converge must change nothing), verifies the outcome and destroys what it created
(objects named lcfgmol*/lcfgtest-mol-*).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import ROOT, ansible_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROLES = sorted(p.parent.parent.parent.name for p in (ROOT / "roles").glob("*/molecule/default/molecule.yml"))


@pytest.mark.parametrize("role", ROLES)
def test_molecule_default_scenario(role: str) -> None:
    env = ansible_env()
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["NO_COLOR"] = "1"
    env["ANSIBLE_NOCOLOR"] = "1"
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("molecule")), "test", "-s", "default"],
        cwd=ROOT / "roles" / role,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-5000:]
    assert "idempotence" in output
