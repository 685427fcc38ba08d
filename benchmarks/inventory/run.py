"""Benchmark: the lcfg.xen.lcfg inventory plugin against a static YAML inventory.

Generates a synthetic site under benchmarks/output/inventory/ (default 2,000 host profiles,
10 guests and 2 virtual groups each, shared headers and macros), writes the same hosts,
groups and hostvars as a static YAML inventory, then times ``ansible-inventory --list``
(output to /dev/null, median of N runs, the cases interleaved, same environment) on:

  1. the YAML inventory,
  2. the LCFG profiles (cache off),
  3. the LCFG profiles with a warm jsonfile cache.

Targets: (2) <= 0.5 x (1) and (3) <= 0.1 x (1). Wall-clock and CPU (user + system) time
are both reported: on a shared machine the CPU time is the steadier measure.

    .venv/bin/python benchmarks/inventory/run.py            # full size
    .venv/bin/python benchmarks/inventory/run.py --hosts 50 # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / ".collections"
OUT = ROOT / "benchmarks" / "output" / "inventory"
BIN = Path(sys.executable).parent

HEADER = """/* Site header: every hypervisor of the synthetic site. */
#ifndef SITE_XEN_H
#define SITE_XEN_H
!profile.components    mADD(xen)
!xen.xendconfbridgenet mSET(on)
!xen.xendconfnatnet    mSET(on)
!xen.natsubnet         mSET(10.0.0.0/16)
!xen.bridgeinterfaces  mADD(eth0 eth1)
!xen.bridgenetdev_eth0 mSET(eth0)
!xen.bridgeif_eth0     mSET(xenbr0)
!xen.bridgevifnum_eth0 mSET(0)
!xen.bridgenetdev_eth1 mSET(eth1)
!xen.bridgeif_eth1     mSET(xenbr1)
!xen.bridgevifnum_eth1 mSET(1)
#endif
"""

MACROS = """/* Site macros shared by every profile. */
#ifndef SITE_MACROS_H
#define SITE_MACROS_H
#define GUEST_DIR /var/lib/xen/images
#define SMALL_MEM 512
#define LARGE_MEM 2048
#define DISK_GB 20
#endif
"""

HW = """/* Hardware header. */
!inv.manager     mSET(it-services)
!inv.location    mSET(JCMB-2422)
!profile.comment mSET(synthetic benchmark host)
"""


def profile_text(index: int, guests: int) -> str:
    h = f"h{index:05d}"
    lines = [
        f"/* Synthetic hypervisor {h} */",
        "#include <site/xen.h>",
        "#include <site/macros.h>",
        "#include <hw/generic.h>",
        "",
        f"!inv.sno mSET(SN{index:06d})",
    ]
    tags = [f"g{n}" for n in range(guests)]
    lines.append(f"!xen.virtualmachines mADD({' '.join(tags)})")
    for n, tag in enumerate(tags):
        uid = index * 100 + n
        lines += [
            f"!xen.name_{tag} mSET({h}-{tag})",
            f"!xen.uuid_{tag} mSET({uid:08x}-0000-4000-8000-{uid:012x})",
            f"!xen.type_{tag} mSET({'hvm' if n % 3 == 0 else 'paravm'})",
            f"!xen.disks_{tag} mADD(root)",
            f"!xen.disksize_{tag}_root mSET(DISK_GB)",
            f"!xen.diskpath_{tag}_root mSET(GUEST_DIR)",
            f"!xen.vifs_{tag} mADD(vif1)",
            f"!xen.mac_{tag}_vif1 mSET(00:16:3e:{(uid >> 16) & 255:02x}:{(uid >> 8) & 255:02x}:{uid & 255:02x})",
            f"!xen.ip_{tag}_vif1 mSET(10.{(uid >> 16) & 255}.{(uid >> 8) & 255}.{uid & 255})",
            f"!xen.boot_{tag} mSET({'yes' if n % 2 else 'no'})",
        ]
        if n == 1:  # a guest value equal to its group's: precedence without a warning
            lines.append(f"!xen.memory_{tag} mSET(SMALL_MEM)")
    half = guests // 2
    lines += [
        "!xen.virtualgroup mADD(web db)",
        f"!xen.members_web mADD({' '.join(tags[:half])})",
        "!xen.groupmemory_web mSET(SMALL_MEM)",
        "!xen.groupmaxmem_web mSET(LARGE_MEM)",
        "!xen.groupvcpus_web mSET(2)",
        "!xen.groupbridge_web mSET(xenbr0)",
        f"!xen.members_db mADD({' '.join(tags[half:])})",
        "!xen.groupmemory_db mSET(LARGE_MEM)",
        "!xen.groupvcpus_db mSET(4)",
        '!xen.groupcpus_db mCONCATQ("0-3")',
        "!xen.groupbridge_db mSET(xenbr1)",
    ]
    return "\n".join(lines) + "\n"


def env() -> dict[str, str]:
    """The measured processes' environment. Without PYTHONDONTWRITEBYTECODE: measured as an
    installed collection runs, with Python's bytecode cache. With the switch set machine-wide,
    every measured process compiles the plugin file again, while ansible-core's files come
    precompiled from pip, so only one side of each comparison would pay for it."""
    e = dict(os.environ)
    e.pop("PYTHONDONTWRITEBYTECODE", None)
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(COLLECTIONS), e.get("PYTHONPATH")]))
    e["ANSIBLE_COLLECTIONS_PATH"] = str(COLLECTIONS)
    e["ANSIBLE_INVENTORY_UNPARSED_WARNING"] = "false"
    e["ANSIBLE_NOCOLOR"] = "1"
    return e


def generate(out: Path, hosts: int, guests: int) -> tuple[Path, Path, Path]:
    plain, cached = write_site(out, hosts, guests)
    yaml_inv = out / "static.yml"
    write_static_yaml(plain, yaml_inv)
    return plain, cached, yaml_inv


def write_site(out: Path, hosts: int, guests: int) -> tuple[Path, Path]:
    """The profiles, headers and two plugin configurations (cache off, jsonfile cache on)."""
    if out.exists():
        shutil.rmtree(out)
    site = out / "site"
    (site / "profiles").mkdir(parents=True)
    for sub, text in (("site/xen.h", HEADER), ("site/macros.h", MACROS), ("hw/generic.h", HW)):
        path = site / "include" / sub
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for index in range(hosts):
        (site / "profiles" / f"h{index:05d}").write_text(profile_text(index, guests))
    base = "plugin: lcfg.xen.lcfg\nsources: [profiles]\ninclude_path: [include]\nstrict: true\n"
    plain = site / "site.lcfg.yml"
    plain.write_text(base)
    cached = site / "cached.lcfg.yml"
    cached.write_text(
        base + "cache: true\ncache_plugin: ansible.builtin.jsonfile\n"
        f"cache_connection: {out / 'cache'}\ncache_timeout: 0\n"
    )
    return plain, cached


def write_static_yaml(config: Path, target: Path) -> None:
    """The same hosts, groups and hostvars as a static YAML inventory (from our own output)."""
    out = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(config), "--list"],
        capture_output=True,
        text=True,
        env=env(),
        check=True,
    )
    data = json.loads(out.stdout)
    hostvars = data.pop("_meta")["hostvars"]
    groups: dict = {}
    for name, entry in data.items():
        if name in ("all", "ungrouped"):
            continue
        groups[name] = {
            "hosts": {
                h: (hostvars.get(h) if name in ("xen_hypervisors", "xen_guests") else None)
                for h in entry.get("hosts", [])
            }
        }
    # hosts that only sit in virtual groups still get their vars once, via xen_guests
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    with open(target, "w") as handle:
        yaml.dump({"all": {"children": groups}}, handle, Dumper=dumper, default_flow_style=False, sort_keys=False)


def time_list(source: Path, runs: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU (user + system) seconds of each ``ansible-inventory --list`` run."""
    walls, cpus = [], []
    for _run in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        with open(os.devnull, "w") as null:
            proc = subprocess.run(
                [str(BIN / "ansible-inventory"), "-i", str(source), "--list"],
                stdout=null,
                stderr=subprocess.PIPE,
                text=True,
                env=env(),
                check=False,
            )
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0 or "WARNING" in proc.stderr:
            raise SystemExit(f"ansible-inventory failed or warned on {source}:\n{proc.stderr}")
        walls.append(elapsed)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return walls, cpus


def site_arguments(doc: str, out: Path) -> argparse.ArgumentParser:
    """The options of a benchmark over the synthetic site (this one and limit.py)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--hosts", type=int, default=2000, help="host profiles (default 2000)")
    parser.add_argument("--guests", type=int, default=10, help="guests per host (default 10)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per case (median)")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    parser.add_argument("--out", type=Path, default=out, help=f"directory for the generated files (default {out})")
    return parser


def main() -> int:
    parser = site_arguments(__doc__, OUT)
    parser.add_argument(
        "--cases", default="yaml,lcfg,warm", help="comma-separated subset of yaml,lcfg,warm (default all)"
    )
    parser.add_argument(
        "--reuse", action="store_true", help="keep the site generated by the previous run (same --hosts/--guests)"
    )
    args = parser.parse_args()
    out = args.out.resolve()

    t0 = time.perf_counter()
    if args.reuse and (out / "static.yml").exists():
        site = out / "site"
        plain, cached, yaml_inv = site / "site.lcfg.yml", site / "cached.lcfg.yml", out / "static.yml"
        print(f"reusing the site under {out}")
    else:
        plain, cached, yaml_inv = generate(out, args.hosts, args.guests)
        print(
            f"generated {args.hosts} profiles x {args.guests} guests + static YAML in "
            f"{time.perf_counter() - t0:.1f}s under {out}"
        )
    print(
        f"static YAML inventory: {yaml_inv.stat().st_size / 1e6:.1f} MB; "
        f"ansible-inventory --list, median of {args.runs}:",
        flush=True,
    )

    cases = {"yaml": yaml_inv, "lcfg": plain, "warm": cached}
    labels = {"yaml": "static YAML", "lcfg": "lcfg (no cache)", "warm": "lcfg (warm cache)"}
    result: dict = {
        "hosts": args.hosts,
        "guests_per_host": args.guests,
        "runs": args.runs,
        "inventory_hosts": args.hosts * (args.guests + 1),
    }
    chosen = args.cases.split(",")
    if "warm" in chosen:
        time_list(cached, 1)  # fill the cache
    # interleave the cases so that a change in machine load hits all of them alike
    samples: dict[str, tuple[list[float], list[float]]] = {c: ([], []) for c in chosen}
    for _round in range(args.runs):
        for case in chosen:
            walls, cpus = time_list(cases[case], 1)
            samples[case][0].extend(walls)
            samples[case][1].extend(cpus)
    for case in chosen:
        walls, cpus = samples[case]
        result[case] = {
            "wall_s": walls,
            "cpu_s": cpus,
            "wall_median_s": statistics.median(walls),
            "cpu_median_s": statistics.median(cpus),
        }
        print(
            f"  {labels[case]:<20} wall {statistics.median(walls):8.2f} s  cpu "
            f"{statistics.median(cpus):8.2f} s   runs {[round(t, 2) for t in walls]}",
            flush=True,
        )
    if "yaml" in result:
        base = result["yaml"]
        for case, target in (("lcfg", 0.5), ("warm", 0.1)):
            if case in result:
                wall = result[case]["wall_median_s"] / base["wall_median_s"]
                cpu = result[case]["cpu_median_s"] / base["cpu_median_s"]
                result[case]["ratio_wall"], result[case]["ratio_cpu"] = wall, cpu
                print(f"  {labels[case]:<20} / YAML: wall {wall:.3f}, cpu {cpu:.3f} (target <= {target})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
