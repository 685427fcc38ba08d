"""Run the ansible-test style integration targets with ansible-playbook on localhost.

Each target's tasks/main.yml asserts its own outcomes (check -> apply -> check -> apply);
here we only run it and require a clean recap.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from support import run_playbook

TARGETS_DIR = Path(__file__).parent / "targets"
TARGETS = sorted(
    p.name
    for p in TARGETS_DIR.iterdir()
    if (p / "tasks" / "main.yml").is_file() and not p.name.startswith(("setup_", "prepare_"))
)


@pytest.mark.integration
@pytest.mark.parametrize("target", TARGETS)
def test_target(target: str, tmp_path: Path) -> None:
    aliases = (TARGETS_DIR / target / "aliases").read_text().split()
    if "disabled" in aliases or "unsupported" in aliases:
        pytest.skip(f"target {target} is marked {aliases}")
    playbook = tmp_path / "run.yml"
    playbook.write_text(f"- hosts: localhost\n  gather_facts: false\n  roles:\n    - {TARGETS_DIR / target}\n")
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    proc = run_playbook(playbook, "--diff", inventory=inventory)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    recap = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", proc.stdout)
    assert recap, proc.stdout[-3000:]
    assert int(recap.group(4)) == 0
    assert int(recap.group(2)) > 0, "a target must change something on its first steps"
