# Copyright: lcfg.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The benchmarks' new cases run (a short run each; no timing is asserted here: the numbers
live in the benchmarks' own output and the README)."""

from __future__ import annotations

import json
import subprocess
import sys

from support import ROOT, ansible_env


def test_inventory_over_http_smoke(tmp_path):
    report = tmp_path / "http.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "inventory" / "over_http.py"),
            "--hosts",
            "30",
            "--runs",
            "1",
            "--out",
            str(tmp_path / "out"),
            "--json",
            str(report),
        ],
        capture_output=True,
        text=True,
        env=ansible_env(),
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(report.read_text())
    # what the server answered: all in full, then one 304 each, then one profile in full
    assert result["first"]["answers"] == {"200": 30, "304": 0}
    assert result["unchanged"]["answers"] == {"200": 0, "304": 30}
    assert result["one_changed"]["answers"] == {"200": 1, "304": 29}
    assert result["first"]["inventory_hosts"] == 30 + 3 * 10
