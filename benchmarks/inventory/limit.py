"""Benchmark: a one-task play limited to one hypervisor on a 2,000-profile site (issue 14).

Every ``ansible-playbook`` run builds the whole inventory before ``--limit`` picks its hosts,
so a big site's inventory cost is paid by every run, even one touching a single hypervisor.
This times ``ansible-playbook --limit h00000`` of a one-task play (``ansible.builtin.debug``,
no connection) over:

  1. the lcfg.xen.lcfg plugin on the synthetic site of run.py (default 2,000 host profiles
     with 10 guests each: 22,000 inventory hosts), with a warm jsonfile cache;
  2. a bare inventory script that lists the same 22,000 host names without any variable:
     ansible-core's own cost of an inventory that size.

Medians of --runs repetitions, the cases interleaved; peak resident memory of each
``ansible-playbook`` process. Targets: (1) <= 2 s, <= 3 x (2), peak memory <= 256 MB.

    .venv/bin/python benchmarks/inventory/limit.py              # 2,000 profiles
    .venv/bin/python benchmarks/inventory/limit.py --hosts 50   # smoke run
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (benchmarks/inventory/run.py: the synthetic site)

OUT = run.ROOT / "benchmarks" / "output" / "inventory-limit"

PLAY = """- name: One task on the limited hosts
  hosts: all
  gather_facts: false
  tasks:
    - name: Say which hypervisor this is
      ansible.builtin.debug:
        msg: "{{ inventory_hostname }}"
"""

BARE_SCRIPT = """#!{python}
# The site's host names, no variables: ansible-core's own cost of an inventory this size.
import json, sys
hosts = json.load(open({names!r}))
if "--host" in sys.argv:
    print("{{}}")
else:
    print(json.dumps({{"all": {{"hosts": hosts}}, "_meta": {{"hostvars": {{}}}}}}))
"""


def write_bare_inventory(out: Path, hosts: int, guests: int) -> Path:
    names = [f"h{index:05d}" + suffix for index in range(hosts) for suffix in ["", *(f"-g{n}" for n in range(guests))]]
    (out / "names.json").write_text(json.dumps(names))
    script = out / "bare.py"
    script.write_text(BARE_SCRIPT.format(python=sys.executable, names=str(out / "names.json")))
    script.chmod(0o755)
    return script


def play_once(inventory: Path, play: Path, limit: str, extra_env: dict | None = None) -> tuple[float, float, float]:
    """Wall-clock seconds, peak resident MB and CPU seconds (user + system, with the forked
    workers) of one ``ansible-playbook --limit`` run."""
    start = time.perf_counter()
    with open(os.devnull, "w") as null:
        proc = subprocess.Popen(
            [str(run.BIN / "ansible-playbook"), "-i", str(inventory), "--limit", limit, str(play)],
            stdout=null,
            stderr=subprocess.PIPE,
            env=dict(run.env(), **(extra_env or {})),
        )
        stderr = proc.stderr.read().decode(errors="replace")
        _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or "WARNING" in stderr:
        raise SystemExit(f"ansible-playbook failed or warned on {inventory}:\n{stderr[-3000:]}")
    return elapsed, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def main() -> int:
    args = run.site_arguments(__doc__, OUT).parse_args()
    out = args.out.resolve()
    _plain, cached = run.write_site(out, args.hosts, args.guests)
    bare = write_bare_inventory(out, args.hosts, args.guests)
    play = out / "one-task.yml"
    play.write_text(PLAY)
    limit = "h00000"
    play_once(cached, play, limit)  # fills the cache
    only_limited = {"LCFG_XEN_ONLY_LIMITED_PROFILES": "true"}
    cases = {"lcfg": (cached, None), "only": (cached, only_limited), "bare": (bare, None)}
    labels = {
        "lcfg": "lcfg.xen.lcfg, warm cache",
        "only": "  with only_limited_profiles",
        "bare": "bare script, names only",
    }
    samples: dict[str, list[tuple[float, float, float]]] = {case: [] for case in cases}
    for _round in range(args.runs):
        for case, (inventory, extra_env) in cases.items():
            samples[case].append(play_once(inventory, play, limit, extra_env))
    hosts = args.hosts * (args.guests + 1)
    print(f"ansible-playbook --limit {limit}, one task, {hosts} inventory hosts, median of {args.runs}:")
    result: dict = {"hosts": args.hosts, "inventory_hosts": hosts, "runs": args.runs}
    for case, runs in samples.items():
        seconds = statistics.median(wall for wall, _rss, _cpu in runs)
        cpu = statistics.median(cpu for _wall, _rss, cpu in runs)
        peak = max(rss for _wall, rss, _cpu in runs)
        result[case] = {
            "seconds": [round(wall, 3) for wall, _rss, _cpu in runs],
            "median_s": seconds,
            "cpu_median_s": cpu,
            "maxrss_mb": peak,
        }
        print(
            f"  {labels[case]:<30} {seconds:6.2f} s  cpu {cpu:6.2f} s  peak {peak:5.0f} MB  "
            f"runs {result[case]['seconds']}"
        )
    for case in ("lcfg", "only"):
        ratio = result[case]["median_s"] / result["bare"]["median_s"]
        result[case]["ratio_to_bare"] = ratio
        result[case]["cpu_ratio_to_bare"] = result[case]["cpu_median_s"] / result["bare"]["cpu_median_s"]
        print(
            f"  targets, {labels[case].strip()}: <= 2 s ({result[case]['median_s']:.2f}), <= 3 x bare "
            f"({ratio:.2f}; cpu {result[case]['cpu_ratio_to_bare']:.2f}), "
            f"peak <= 256 MB ({result[case]['maxrss_mb']:.0f})"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
