# Copyright: lcfg.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The benchmarks' new cases run (a short run each; no timing is asserted here: the numbers
live in the benchmarks' own output and the README)."""

from __future__ import annotations

import json
import subprocess
import sys

from support import ROOT, ansible_env


def run_inventory_benchmark(script: str, tmp_path, report, *args: str) -> subprocess.CompletedProcess:
    """A short run (one repetition) of benchmarks/inventory/<script>, its results in ``report``."""
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "inventory" / script),
            *args,
            *("--runs", "1", "--out", str(tmp_path / "out"), "--json", str(report)),
        ],
        capture_output=True,
        text=True,
        env=ansible_env(),
        timeout=600,
        check=False,
    )


def test_inventory_over_http_smoke(tmp_path):
    report = tmp_path / "http.json"
    proc = run_inventory_benchmark("over_http.py", tmp_path, report, "--hosts", "30")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(report.read_text())
    # what the server answered: all in full, then one 304 each, then one profile in full
    assert result["first"]["answers"] == {"200": 30, "304": 0}
    assert result["unchanged"]["answers"] == {"200": 0, "304": 30}
    assert result["one_changed"]["answers"] == {"200": 1, "304": 29}
    assert result["first"]["inventory_hosts"] == 30 + 3 * 10


def test_inventory_limit_smoke(tmp_path):
    report = tmp_path / "limit.json"
    proc = run_inventory_benchmark("limit.py", tmp_path, report, "--hosts", "20")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(report.read_text())
    assert result["inventory_hosts"] == 20 * 11
    assert {"lcfg", "only", "bare"} <= result.keys() and result["lcfg"]["maxrss_mb"] > 0
    assert result["only"]["ratio_to_bare"] > 0


def test_rollout_on_many_hypervisors_smoke(tmp_path):
    """Two hypervisor profiles of two guests each, define + autostart, every tool once."""
    env = ansible_env()
    env.update(BENCH_HYPERVISORS="2", BENCH_START="0", BENCH_REPEAT="1")
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "rollout" / "run.sh"), "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=1500,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((ROOT / "benchmarks" / "output" / "rollout-2x2.json").read_text())
    assert (result["guests"], result["hypervisors"]) == (4, 2)
    assert [row["run"] for row in result["results"]] == ["first", "rerun"]
    specs = json.loads((ROOT / "benchmarks" / "output" / "rollout" / "specs.json").read_text())
    assert [spec["name"] for spec in specs] == [
        "lcfgbench-01-01",
        "lcfgbench-01-02",
        "lcfgbench-02-01",
        "lcfgbench-02-02",
    ]
