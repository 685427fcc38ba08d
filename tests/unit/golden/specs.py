"""Specs and driver capabilities behind the golden domain XML files (one file per case).

Regenerate after an intended renderer change with
``python -m tests.unit.golden.specs`` from the repository root (review the git diff!).
"""

from __future__ import annotations

BASE = {
    "name": "lcfgtest-dom-golden",
    "uuid": "0b2c4d6e-8f10-4a12-9c14-16e18a20c222",
    "memory": 256,
    "maxmem": 512,
    "vcpus": 1,
    "maxvcpus": 2,
    "cpus": "0-1",
    "autostart": False,
    "disks": [
        {
            "path": "/var/lib/libvirt/images/golden.qcow2",
            "type": "image",
            "format": "qcow2",
            "tag": "root",
            "name": "golden",
        },
        {"path": "/dev/vg0/golden-data", "type": "phy", "format": "raw", "tag": "data", "name": None},
    ],
    "vifs": [
        {"mac": "00:16:3e:00:00:01", "nettype": "bridge", "bridge": "xenbr0", "tag": "eth0", "ip": "192.0.2.10"},
        {"mac": "00:16:3e:00:00:02", "nettype": "nat", "tag": "eth1"},
    ],
    "kernel": None,
    "ramdisk": None,
    "cmdline": None,
    "bootloader": None,
    "extra": {
        "on_crash": "preserve",
        "xml": ["<devices><rng model='virtio'><backend model='random'>/dev/urandom</backend></rng></devices>"],
    },
}

PV_BOOT = {"kernel": "/boot/vmlinuz-guest", "ramdisk": "/boot/initrd-guest", "cmdline": "root=/dev/xvda ro"}

BOOT_OPTIONS = {
    "boot_order": ["network", "cdrom", "disk"],
    "firmware": "uefi",
    "cdrom": "/var/lib/libvirt/images/installer.iso",
}

CASES = {
    "xen-pv": (
        {"type": "pv", **PV_BOOT, "vifs": [dict(BASE["vifs"][0], script="vif-bridge"), BASE["vifs"][1]]},
        {"driver": "xen"},
    ),
    "xen-pv-pygrub": ({"type": "pv", "bootloader": "pygrub"}, {"driver": "xen"}),
    "xen-hvm": ({"type": "hvm"}, {"driver": "xen", "loader": "/usr/lib/xen/boot/hvmloader"}),
    "xen-pvh": ({"type": "pvh", **PV_BOOT}, {"driver": "xen"}),
    "kvm-pv": ({"type": "pv", **PV_BOOT}, {"driver": "qemu", "domain_type": "kvm", "arch": "x86_64"}),
    "kvm-hvm": ({"type": "hvm"}, {"driver": "qemu", "domain_type": "kvm", "arch": "x86_64"}),
    "qemu-pv": ({"type": "pv"}, {"driver": "qemu", "domain_type": "qemu", "arch": "x86_64"}),
    "test-pv": ({"type": "pv", **PV_BOOT}, {"driver": "test"}),
    "test-hvm": ({"type": "hvm"}, {"driver": "test"}),
    # boot options (issue 13): UEFI, an install ISO and network boot first
    "kvm-hvm-uefi-boot": (
        {"type": "hvm", **BOOT_OPTIONS},
        {"driver": "qemu", "domain_type": "kvm", "arch": "x86_64"},
    ),
    "qemu-pv-netboot": ({"type": "pv", "boot_order": ["network", "disk"]}, {"driver": "qemu", "domain_type": "qemu"}),
    "xen-hvm-uefi-boot": ({"type": "hvm", **BOOT_OPTIONS}, {"driver": "xen", "loader": "/usr/lib/xen/boot/hvmloader"}),
    "xen-hvm-bios-cdrom": (
        {"type": "hvm", "boot_order": ["cdrom", "disk"], "cdrom": BOOT_OPTIONS["cdrom"]},
        {"driver": "xen", "loader": "/usr/lib/xen/boot/hvmloader"},
    ),
}


def case_spec(case: str) -> tuple[dict, dict]:
    """(user parameters, caps) of a golden case."""
    overrides, caps = CASES[case]
    params = dict(BASE)
    params.update(overrides)
    return params, caps


def render_case(case: str) -> str:
    from ansible_collections.lcfg.xen.plugins.module_utils.domain.desired import complete_spec, validate_spec
    from ansible_collections.lcfg.xen.plugins.module_utils.domain.render import render_domain

    params, caps = case_spec(case)
    spec = validate_spec(params)
    if caps["driver"] != "xen":
        for vif in spec["vifs"]:
            vif["mac"] = "52:54:00" + vif["mac"][8:]
    full = complete_spec(spec, None, caps["driver"], domain_type=caps.get("domain_type"))
    return render_domain(full, caps)


def canonical_xml(xml: str) -> str:
    """Whitespace-insensitive canonical text (C14N) of an XML document, for the golden tests."""
    from lxml import etree

    parser = etree.XMLParser(remove_blank_text=True)
    root = etree.fromstring(xml.encode(), parser)
    for element in root.iter():
        if isinstance(element.tag, str) and element.text is not None and not element.text.strip():
            element.text = None
        if element.tail is not None and not element.tail.strip():
            element.tail = None
    return etree.tostring(root, method="c14n").decode()


if __name__ == "__main__":  # pragma: no cover - maintenance entry point
    import pathlib
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3] / ".collections"))
    here = pathlib.Path(__file__).resolve().parent
    for name in CASES:
        (here / f"{name}.xml").write_text(render_case(name))
        print("wrote", name)
