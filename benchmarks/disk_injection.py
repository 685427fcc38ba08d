"""Time the steps of xen_disk on this host: template build, copy, overlay, LCFG injection.

Usage: .venv/bin/python benchmarks/disk_injection.py [--size-gb 1] [--data-mb 16] [--runs 2]
Works in a temporary directory under /var/lib/lcfg-xen (removed at the end) and calls the
module_utils functions the module uses. Prints one line per step with wall-clock seconds,
the 1-minute load average before each run and whether libguestfs fell back to TCG.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, ".collections"))

from ansible_collections.lcfg.xen.plugins.module_utils.disk.guestfs import inject_files, make_template  # noqa: E402
from ansible_collections.lcfg.xen.plugins.module_utils.disk.storage import LocalStorage  # noqa: E402


def timed(label: str, func, *args, **kwargs):
    load = os.getloadavg()[0]
    start = time.monotonic()
    value = func(*args, **kwargs)
    print(f"{label:<34} {time.monotonic() - start:8.2f} s   (load {load:.1f})", flush=True)
    return value


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-gb", type=float, default=1.0)
    parser.add_argument("--data-mb", type=int, default=16)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    os.makedirs("/var/lib/lcfg-xen", exist_ok=True)
    work = tempfile.mkdtemp(prefix="test-disk-bench-", dir="/var/lib/lcfg-xen")
    storage = LocalStorage()
    try:
        template = os.path.join(work, "lcfgtest-disk-template.img")
        timed(
            f"make_template {args.size_gb} GiB +{args.data_mb} MiB",
            make_template,
            template,
            int(args.size_gb * 1024**3),
            data_mb=args.data_mb,
        )
        files = {"/etc/lcfg/profile_url": "http://lcfg.example.org/profiles/\n", "/etc/hostname": "bench\n"}
        for run in range(args.runs):
            copy = os.path.join(work, f"lcfgtest-disk-copy{run}.img")
            overlay = os.path.join(work, f"lcfgtest-disk-ov{run}.qcow2")
            timed("qemu-img convert (copy clone)", storage.copy, template, "raw", copy, "raw")
            timed("qemu-img create -b (overlay)", storage.overlay, template, "raw", overlay, 2 * 1024**3)
            result = timed("inject 2 files (libguestfs)", inject_files, copy, "raw", 5, files)
            print(f"    launch {result['launch_seconds']} s; fallback: {'TCG' if result['notes'] else 'none'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
