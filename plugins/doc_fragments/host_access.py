# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Documentation fragment for the play options that let guest specs reach host resources
(xen_domain, xen_guests); declared in plugins/module_utils/common/host_access.py."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  storage_dirs:
    description:
      - Directories the guests' disk images, kernels and ramdisks must lie in (checked on the
        resolved path when the module runs on the hypervisor, so a symbolic link cannot lead out).
      - Default the collection's list of storage directories (the default of M(lcfg.xen.xen_disk)).
      - A play option; the guest specs (LCFG profiles) cannot change it.
    type: list
    elements: path
  allow_host_resources:
    description:
      - Let the guest specs reach the host without any of the checks below - O(trusted_extra_xml),
        any bootloader, kernel and ramdisk, bootloader arguments, disk images anywhere and every
        block device.
      - It also lets guests share images - a disk, kernel or ramdisk that another defined guest
        uses as a disk, a disk another guest uses, one disk for two guests of one call, a clone's
        template - and allows the C(coredump-*) lifecycle actions (C(extra.on_crash), ...),
        which have the host write the guest's memory to its dump directory on every crash.
        Without it these are refused; kernels and ramdisks may always be shared with other
        guests' kernels and ramdisks.
      - Only for guest specs the person running the play trusts as much as root on the hypervisor;
        LCFG profiles are not such specs.
    type: bool
    default: false
  allow_containers:
    description:
      - Let guest specs of type V(container) run (libvirt's LXC driver). A container runs
        privileged - libvirt loop-mounts its root filesystem, which cannot be done in a user
        namespace - so its root user is root on the host, held in only by namespaces and the
        capabilities libvirt drops. That is no boundary against whoever controls the guest, as a
        VM's hypervisor is; without this option a container spec is refused, naming its C(type).
      - Only where the profiles' authors may be trusted with the host. Implied by
        O(allow_host_resources).
    type: bool
    default: false
  trusted_extra_xml:
    description:
      - Merge C(extra.xml) fragments verbatim, with any element (C(<hostdev>), C(<disk>),
        C(<filesystem>), C(<graphics>), C(<qemu:commandline>), ...).
      - When V(false) a fragment may only hold guest-side elements - C(<features>) (not
        C(<xen>)), C(<clock>), C(<cpu>), C(<on_poweroff>), C(<on_reboot>), C(<on_crash>), C(<pm>),
        C(<description>), C(<title>), C(<sysinfo type='smbios'>) and C(<devices>) with C(<rng>)
        (virtio, backend C(/dev/urandom) or C(/dev/random)), C(<watchdog>), C(<memballoon>),
        C(<video>), C(<input>) (mouse, tablet, keyboard), C(<sound>), C(<serial>) and
        C(<console>) of type C(pty), C(<channel>) (pty, or a unix guest-agent channel whose
        socket libvirt places, its target name one plain file name), C(<controller>), C(<panic>),
        C(<hub>), C(<iommu>) and C(<tpm>) with the emulator backend - and anything else fails
        naming the parameter and the element (see C(docs/domains.md)).
      - No attribute value may hold a C(/) (libvirt joins some to its own directories), except
        C(<clock timezone>); C(<watchdog action='dump'>), C(coredump-*) lifecycle actions and
        C(<features><tcg>) are refused (host disk and memory).
    type: bool
    default: false
  allowed_boot_paths:
    description:
      - Bootloaders, kernels and ramdisks the guest specs may name besides the defaults, each
        a file or a directory (everything below it).
      - The defaults - bootloader V(pygrub), C(/usr/bin/pygrub), C(/usr/lib/xen-<version>/bin/pygrub)
        (Debian's xen-utils), C(/usr/lib/xen/bin/pygrub), C(/usr/local/lib/xen/bin/pygrub),
        C(/usr/libexec/xen/bin/pygrub); kernels and ramdisks inside O(storage_dirs), and the
        PV-GRUB2 kernels C(/usr/lib/grub-xen/grub-*-xen*.bin).
    type: list
    elements: path
    default: []
  allowed_block_devices:
    description:
      - Host block devices (disks of C(type=phy)) the guests may use, each a device or a
        directory of devices (for example C(/dev/vg_guests)). None by default.
    type: list
    elements: path
    default: []
"""
