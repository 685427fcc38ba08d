# Copyright: lcfg.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write the rollout benchmark's LCFG inventory: H hypervisor profiles with N guests each.

    python make_inventory.py OUTDIR [--guests 50] [--hypervisors 1] [--uri qemu:///system]

Guests are named lcfgbench-NN (one hypervisor) or lcfgbench-HH-NN (several: every
"hypervisor" is this machine's libvirtd, so the names are disjoint), 64 MiB, 1 VCPU, HVM,
marked to boot, no disks or NICs (the benchmark measures definition, autostart and start,
not image copies).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

PROFILE_HEAD = """/* rollout benchmark: {n} guests on this machine */
!profile.components mADD(xen)
!xen.xendconfbridgenet mSET(off)
!xen.virtualmachines mADD({tags})
"""
GUEST = """!xen.name_{tag} mSET(lcfgbench-{prefix}{i:02d})
!xen.type_{tag} mSET(hvm)
!xen.memory_{tag} mSET(64)
!xen.vcpus_{tag} mSET(1)
!xen.boot_{tag} mSET(yes)
"""
EXTRA = "!xen.extra_{tag} mSET(domain_type={domain_type})\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir")
    parser.add_argument("--guests", type=int, default=50, help="guests per hypervisor")
    parser.add_argument("--hypervisors", type=int, default=1, help="hypervisor profiles, all on --uri")
    parser.add_argument("--uri", default="qemu:///system")
    parser.add_argument(
        "--domain-type",
        choices=("auto", "kvm", "qemu"),
        default="auto",
        help="auto leaves the choice to lcfg.xen (kvm when it works, else qemu)",
    )
    args = parser.parse_args()
    out = Path(args.outdir)
    if (out / "profiles").exists():
        shutil.rmtree(out / "profiles")  # a run with fewer hypervisors leaves none behind
    (out / "profiles").mkdir(parents=True)
    (out / "group_vars").mkdir(exist_ok=True)
    tags = [f"b{i:02d}" for i in range(1, args.guests + 1)]
    for hv in range(1, args.hypervisors + 1):
        prefix = f"{hv:02d}-" if args.hypervisors > 1 else ""
        text = PROFILE_HEAD.format(n=args.guests, tags=" ".join(tags))
        for i, tag in enumerate(tags, 1):
            text += GUEST.format(tag=tag, i=i, prefix=prefix)
            if args.domain_type != "auto":
                text += EXTRA.format(tag=tag, domain_type=args.domain_type)
        name = f"lcfgbench-hv{hv:02d}" if args.hypervisors > 1 else "lcfgbench-hv"
        (out / "profiles" / name).write_text(text)
    (out / "group_vars" / "xen_hypervisors.yml").write_text(f"ansible_connection: local\nxen_uri: {args.uri}\n")
    (out / "bench.lcfg.yml").write_text("plugin: lcfg.xen.lcfg\nsources: [profiles]\nstrict: true\n")


if __name__ == "__main__":
    main()
