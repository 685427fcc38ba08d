# Copyright: lcfg.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The floor of the rollout benchmark: plain libvirt-python doing the necessary calls.

    python floor.py SPECS.json [--uri qemu:///system] [--no-start] [--domain-type kvm|qemu]
                       [--parallel N]
    python floor.py --cleanup [--uri ...]                 destroy and undefine lcfgbench-* guests

SPECS.json is a list of xen_domain specs. One connection; one listAllDomains; then per
guest only what is missing: defineXML (the same XML as domain.xml.j2), setAutostart,
and create. A no-change re-run makes no calls beyond the listing and state reads.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor

import libvirt
from lxml import etree

PREFIX = "lcfgbench-"


def domain_xml(spec: dict, domain_type: str = "kvm") -> str:
    root = etree.Element("domain", type=domain_type)
    etree.SubElement(root, "name").text = spec["name"]
    etree.SubElement(root, "memory", unit="MiB").text = str(spec["maxmem"])
    etree.SubElement(root, "currentMemory", unit="MiB").text = str(spec["memory"])
    etree.SubElement(root, "vcpu", current=str(spec["vcpus"])).text = str(spec["maxvcpus"])
    os_el = etree.SubElement(root, "os")
    etree.SubElement(os_el, "type", arch="x86_64").text = "hvm"
    etree.SubElement(os_el, "boot", dev="hd")
    features = etree.SubElement(root, "features")
    etree.SubElement(features, "acpi")
    etree.SubElement(features, "apic")
    devices = etree.SubElement(root, "devices")
    etree.SubElement(devices, "serial", type="pty")
    etree.SubElement(devices, "console", type="pty")
    return etree.tostring(root, encoding="unicode")


def rollout(conn, specs: list[dict], start: bool = True, domain_type: str = "kvm", parallel: int = 1) -> int:
    calls = 0
    doms = {d.name(): d for d in conn.listAllDomains(0)}
    for spec in specs:
        dom = doms.get(spec["name"])
        if dom is None:
            dom = conn.defineXML(domain_xml(spec, domain_type))
            calls += 1
        if spec["autostart"] and not dom.autostart():
            dom.setAutostart(1)
            calls += 1
        doms[spec["name"]] = dom
    to_start = [doms[spec["name"]] for spec in specs if start and spec["autostart"]]
    to_start = [dom for dom in to_start if not dom.isActive()]
    # libvirt-python drops the GIL during calls, so threads start QEMUs concurrently.
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(lambda dom: dom.create(), to_start))
    return calls + len(to_start)


def cleanup(conn) -> int:
    def remove(dom) -> None:
        if dom.isActive():
            dom.destroy()
        dom.undefine()

    doomed = [dom for dom in conn.listAllDomains(0) if dom.name().startswith(PREFIX)]
    # A destroy waits about 2 s for QEMU to exit here; doing them together saves minutes.
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(remove, doomed))
    return len(doomed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="?")
    parser.add_argument("--uri", default="qemu:///system")
    parser.add_argument("--cleanup", action="store_true")
    parser.add_argument("--no-start", action="store_true", help="define and autostart only")
    parser.add_argument("--domain-type", choices=("kvm", "qemu"), default="kvm")
    parser.add_argument("--parallel", type=int, default=1, help="guests started at the same time")
    args = parser.parse_args()
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    conn = libvirt.open(args.uri)
    try:
        if args.cleanup:
            print(f"removed {cleanup(conn)} {PREFIX}* guests")
            return 0
        with open(args.specs, encoding="utf-8") as handle:
            specs = json.load(handle)
        calls = rollout(conn, specs, start=not args.no_start, domain_type=args.domain_type, parallel=args.parallel)
        print(f"{calls} changing calls")
        return 0
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(main())
