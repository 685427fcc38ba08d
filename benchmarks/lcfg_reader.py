"""Parse speed of the LCFG source/XML profile readers on a synthetic site.

Usage: .venv/bin/python benchmarks/lcfg_reader.py [profiles] [guests]
Writes a site of N source profiles (each including shared headers, G guests with
disks and vifs) to a temporary directory, then times load_profiles() over it.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, ".collections"))

from ansible_collections.lcfg.xen.plugins.module_utils.lcfg import _cpp  # noqa: E402
from ansible_collections.lcfg.xen.plugins.module_utils.lcfg._loader import load_profiles  # noqa: E402

HEADER = """/* LCFG option header: make this machine a Xen hypervisor host. */
#ifndef LCFG_OPTIONS_XEN_HOST
#define LCFG_OPTIONS_XEN_HOST
#include <lcfg/os/base.h>
!profile.components    mADD(xen)
!xen.xendconfbridgenet mSET(on)
!xen.xendconfnatnet    mSET(off)
#define XEN_DISKPATH /data/guests
#endif
"""

BASE = """#ifndef LCFG_OS_BASE
#define LCFG_OS_BASE
/* a typical OS header: a few dozen resources of other components */
!profile.components mADD(client auth updaterpms)
""" + "".join(f"auth.res{i}   value {i} of the base header\n" for i in range(40)) + "#endif\n"


def guest(host: int, g: int) -> str:
    tag = f"h{host}g{g}"
    return f"""
!xen.virtualmachines       mADD({tag})
!xen.name_{tag}            mSET({tag})
!xen.type_{tag}            mSET(pv)
!xen.memory_{tag}          mSET(1024)
!xen.maxmem_{tag}          mSET(2048)
!xen.vcpus_{tag}           mSET(2)
!xen.cpus_{tag}            mCONCATQ ("0,1")
!xen.disks_{tag}           mADD(root swap)
!xen.diskname_{tag}_root   mSET({tag})
!xen.disksize_{tag}_root   mSET(20)
!xen.diskpath_{tag}_root   mSET(XEN_DISKPATH)
!xen.disksize_{tag}_swap   mSET(2)
!xen.vifs_{tag}            mADD(vif1)
!xen.mac_{tag}_vif1        mSET(00:16:3e:{host // 256:02x}:{host % 256:02x}:{g:02x})
!xen.ip_{tag}_vif1         mSET(10.{host // 256}.{host % 256}.{g + 1})
!xen.boot_{tag}            mSET(yes)   /* start at boot */
"""


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    guests = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    with tempfile.TemporaryDirectory() as tmp:
        inc = os.path.join(tmp, "include")
        os.makedirs(os.path.join(inc, "lcfg", "options"))
        os.makedirs(os.path.join(inc, "lcfg", "os"))
        with open(os.path.join(inc, "lcfg", "options", "xen-host.h"), "w") as fh:
            fh.write(HEADER)
        with open(os.path.join(inc, "lcfg", "os", "base.h"), "w") as fh:
            fh.write(BASE)
        src = os.path.join(tmp, "source")
        os.makedirs(src)
        lines = 0
        for h in range(n):
            text = f"/* host {h} */\n#include <lcfg/options/xen-host.h>\n" + "".join(
                guest(h, g) for g in range(guests))
            lines += text.count("\n")
            with open(os.path.join(src, f"xenhost{h:05d}"), "w") as fh:
                fh.write(text)
        _cpp.clear_cache()
        t0, c0 = time.perf_counter(), time.process_time()
        results = load_profiles(["source"], tmp, include_path=["include"])
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        errors = [r for r in results if r.error]
        vms = sum(len(r.profile.value("xen", "virtualmachines", "").split())
                  for r in results if r.profile)
        print(f"{len(results)} profiles ({lines} lines + headers, {vms} guests) in {dt:.2f}s: "
              f"{len(results) / dt:.0f} profiles/s; CPU {cpu:.2f}s: {len(results) / cpu:.0f} profiles/s; "
              f"{len(errors)} errors")


if __name__ == "__main__":
    main()
