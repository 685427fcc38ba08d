# Copyright: lcfg.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build a small LCFG-style template image for lcfg.xen's demos and tests.

    .venv/bin/python scripts/make-template.py PATH [--size-gb 1] [--data-mb 0]

Raw, sparse; msdos partition table with partition 1 (primary, 100 MiB, empty),
partition 2 (extended) and partition 5 (logical) holding an ext4 filesystem
labelled lcfgroot with /etc/hostname and /etc/lcfg/. --data-mb adds that many
MiB of random bytes in /var/lib/template-data. Built with libguestfs under a
temporary name and renamed; an existing PATH is left alone (exit 0).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / ".collections"))

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import XenError  # noqa: E402
from ansible_collections.lcfg.xen.plugins.module_utils.disk.guestfs import make_template  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("path", help="image file to create (left alone when it exists)")
    parser.add_argument("--size-gb", type=float, default=1.0, help="virtual size in GiB (default 1)")
    parser.add_argument("--data-mb", type=int, default=0, help="MiB of random data to store (default 0)")
    args = parser.parse_args(argv)
    path = os.path.abspath(args.path)
    if not os.path.isdir(os.path.dirname(path)):
        parser.error(f"directory {os.path.dirname(path)} does not exist")
    start = time.monotonic()
    try:
        built = make_template(path, int(args.size_gb * 1024**3) // 512 * 512, data_mb=args.data_mb)
    except XenError as exc:
        print(f"make-template: {exc.message}", file=sys.stderr)
        return 1
    if built:
        print(f"built {path} in {time.monotonic() - start:.1f}s")
    else:
        print(f"{path} exists; left alone")
    return 0


if __name__ == "__main__":
    sys.exit(main())
