"""Parse speed of the LCFG source/XML profile readers on a synthetic site.

Usage: .venv/bin/python benchmarks/lcfg_reader.py [profiles] [guests] [source|xml]
Writes a site of N source profiles (each including shared headers, G guests with
disks and vifs) or the equivalent compiled XML profiles to a temporary directory,
then times load_profiles() over it (wall clock and CPU time of this process).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, ".collections"))

from lxml import etree  # noqa: E402

from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg import cpp  # noqa: E402 as _cpp  # noqa: E402
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.loader import load_profiles  # noqa: E402

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


NS = "http://www.lcfg.org/namespace/profile-1.1"
CFG = "http://www.lcfg.org/namespace/cfg-1.0"


def xml_profile(host: int, guests: int) -> bytes:
    """The compiled XML profile equivalent to the source profile of ``host``."""
    def el(parent, tag_name, text=None, **cfg):
        e = etree.SubElement(parent, f"{{{NS}}}{tag_name}")
        for k, v in cfg.items():
            e.set(f"{{{CFG}}}{k}", v)
        if text is not None:
            e.text = text
        return e
    root = etree.Element(f"{{{NS}}}profile", nsmap={None: NS, "cfg": CFG})
    lcfg = el(root, "lcfg")
    comps = el(lcfg, "components")
    prof = el(comps, "profile")
    el(prof, "components", "client auth updaterpms xen")
    auth = el(comps, "auth")
    for i in range(40):
        el(auth, f"res{i}", f"value {i} of the base header", derivation=f"/h/base.h:{i + 5}")
    xen = el(comps, "xen")
    el(xen, "xendconfbridgenet", "yes", type="boolean")
    vms = el(xen, "virtualmachines", template="name_$ type_$ memory_$ maxmem_$ vcpus_$ cpus_$ "
             "disks_$ vifs_$ boot_$")
    for g in range(guests):
        tag = f"h{host}g{g}"
        rec = el(vms, "virtualmachines_RECORD", name=tag)
        for k, v in (("name", tag), ("type", "pv"), ("memory", "1024"), ("maxmem", "2048"),
                     ("vcpus", "2"), ("cpus", "0,1")):
            el(rec, k, v, derivation=f"/src/xenhost{host}:{g * 17 + 3}")
        disks = el(rec, "disks", template="diskname_$_$ disksize_$_$ diskpath_$_$")
        for d, size in (("root", "20"), ("swap", "2")):
            drec = el(disks, "disks_RECORD", name=d)
            el(drec, "disksize", size)
            if d == "root":
                el(drec, "diskname", tag)
                el(drec, "diskpath", "/data/guests")
        vifs = el(rec, "vifs", template="mac_$_$ ip_$_$")
        vrec = el(vifs, "vifs_RECORD", name="vif1")
        el(vrec, "mac", f"00:16:3e:{host // 256:02x}:{host % 256:02x}:{g:02x}")
        el(vrec, "ip", f"10.{host // 256}.{host % 256}.{g + 1}")
        el(rec, "boot", "yes", type="boolean")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    guests = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    kind = sys.argv[3] if len(sys.argv) > 3 else "source"
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
            if kind == "xml":
                data = xml_profile(h, guests)
                lines += len(data)
                with open(os.path.join(src, f"xenhost{h:05d}.xml"), "wb") as fh:
                    fh.write(data)
                continue
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
        size = f"{lines // 1024} KiB" if kind == "xml" else f"{lines} lines + headers"
        print(f"{kind}: {len(results)} profiles ({size}, {vms} guests) in {dt:.2f}s: "
              f"{len(results) / dt:.0f} profiles/s; CPU {cpu:.2f}s: {len(results) / cpu:.0f} profiles/s; "
              f"{len(errors)} errors")


if __name__ == "__main__":
    main()
