# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Documentation fragments for the guest options (xen_domain; the items of xen_guests) and the
attributes of the modules that converge guests (xen_domain, xen_guests)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  name:
    description:
      - Name of the guest (libvirt domain).
      - Letters, digits, V(_), V(.) and V(-), starting with a letter or digit (also after each
        V(.), so that the name is a valid host name), at most 64 characters.
    type: str
    required: true
  uuid:
    description:
      - UUID of the guest.
      - When left out, an existing guest keeps its UUID and a new guest gets a UUID derived
        from its name (stable, so check mode can predict it).
      - The UUID of an existing guest cannot be changed in place; the module fails and
        says so (remove the guest with O(state=absent) first).
    type: str
  type:
    description:
      - Virtualisation type.
      - On Xen (C(uri=xen:///system)) V(pv) is a paravirtualised guest (direct kernel boot
        or a bootloader such as pygrub, C(xvd*) disks on the xen bus), V(hvm) a fully
        virtualised guest (hvmloader), V(pvh) a PVH guest.
      - On KVM/QEMU V(pv) means paravirtual devices (virtio disks and NICs, virtio
        balloon) in a normal guest; V(hvm) means emulated devices (SATA disks, e1000
        NICs). V(pvh) is Xen only.
      - V(paravm) and V(para) are accepted for V(pv) (LCFG spelling).
      - V(container) (also V(lxc)) is a Linux container on libvirt's LXC driver
        (C(uri=lxc:///system)). Its first and only disk is a raw image holding the root
        filesystem (loop-mounted), it runs C(/sbin/init) from it, O(memory) is its memory
        limit and O(vcpus) its CPU quota (O(vcpus) CPUs' worth of time); both change live.
        O(cpus) applies at its next start. See the collection's docs/hypervisors.md.
      - Default for a new guest V(pv). Changing the type of an existing guest rewrites its
        definition (UUID and MACs kept) and applies at the next restart.
    type: str
    choices: [pv, hvm, pvh, paravm, para, container, lxc]
  memory:
    description:
      - Memory in MiB the guest runs with (libvirt C(currentMemory)).
      - On a running guest a new value up to O(maxmem) is applied live (balloon) and saved.
      - Default for a new guest O(maxmem), or 512 when neither is set.
      - From 16 to 16777216 (16 TiB).
    type: int
  maxmem:
    description:
      - Maximum memory in MiB (libvirt C(memory)); the ceiling for live memory changes.
      - A change on a running guest applies at the next restart (RV(lcfg.xen.xen_domain#module:pending_restart)).
      - Default for a new guest O(memory). From 16 to 16777216 (16 TiB).
    type: int
  vcpus:
    description:
      - Number of virtual CPUs online.
      - On a running guest a new value up to O(maxvcpus) is applied live (hotplug) and saved.
      - From 1 to 4096.
    type: int
  maxvcpus:
    description:
      - Maximum number of virtual CPUs; the ceiling for live vcpu changes.
      - Default for a new guest O(vcpus). A change on a running guest applies at the next restart.
      - From 1 to 4096.
    type: int
  cpus:
    description:
      - Physical CPUs every vcpu may run on (pinning), in libvirt cpuset syntax such as
        V(0,1,2,3), V(2-3) or V(0-7,^4).
      - The empty string removes the pinning. Applied live on a running guest.
    type: str
  autostart:
    description:
      - Start the guest when the hypervisor boots. Applied with every O(state) except V(absent).
    type: bool
  disks:
    description:
      - The guest's disks, in order. When given, the list is the complete set of disks
        (disks not listed are detached from the definition; their images are kept).
        CD-ROM and floppy devices are not touched.
      - This module does not create images; use M(lcfg.xen.xen_disk) for that.
      - A change on a running guest applies at the next restart.
      - At most 702 disks (target devices run from C(xvda) to C(xvdzz)).
    type: list
    elements: dict
    suboptions:
      path:
        description: Absolute path of the image file or block device.
        type: str
        required: true
      tag:
        description: LCFG tag of the disk; kept in the domain's metadata and reported back.
        type: str
      name:
        description: LCFG disk name; kept in the domain's metadata and reported back.
        type: str
      type:
        description: V(image) for a file, V(phy) for a block device.
        type: str
        choices: [image, phy]
        default: image
      format:
        description:
          - Image format. When left out, it is the format M(lcfg.xen.xen_disk) recorded when
            it created the image (on the managed host), else the existing definition's
            format is kept, else V(raw). It is never guessed from the image's contents
            (the guest writes them), and the domain XML always names it explicitly.
        type: str
        choices: [raw, qcow2]
      device:
        description:
          - Target device name, for example V(xvda), V(vda), V(sda), V(hda); the prefix picks
            the bus (xen, virtio, sata, ide).
          - Default C(xvd*) on Xen and the test driver, C(vd*) for V(pv) and C(sd*) for V(hvm)
            guests on KVM/QEMU, lettered in order.
        type: str
      size_gb:
        description:
          - Accepted so that disk entries of the C(xen_domain) inventory variable can be
            passed unchanged, and B(ignored) by this module; M(lcfg.xen.xen_disk) creates
            and sizes images.
        type: float
  vifs:
    description:
      - The guest's network interfaces, in order. When given, the list is complete
        (interfaces not listed are removed from the definition).
      - A change on a running guest applies at the next restart (changes of O(vifs[].tag)
        alone apply immediately, they are metadata).
    type: list
    elements: dict
    suboptions:
      mac:
        description:
          - MAC address. When left out, the MAC of the existing interface at the same
            position is kept; a new interface gets a stable MAC derived from the guest
            name (prefix 00:16:3e on Xen, 52:54:00 elsewhere).
        type: str
      tag:
        description: LCFG tag of the interface; kept in the domain's metadata.
        type: str
      ip:
        description:
          - IP address of the guest on this interface. On Xen it is passed to the vif
            script (libvirt C(<ip>)); on other hypervisors it is recorded in the domain's
            metadata only.
        type: str
      nettype:
        description:
          - V(bridge) joins a host bridge (O(vifs[].bridge)); V(nat) and V(route) attach to
            a libvirt network (O(vifs[].network)).
        type: str
        choices: [bridge, nat, route]
        default: bridge
      bridge:
        description:
          - Host bridge for O(vifs[].nettype=bridge). Required for a new interface.
        type: str
      network:
        description:
          - libvirt network for O(vifs[].nettype=nat) or O(vifs[].nettype=route); default
            V(lcfg-nat) or V(lcfg-route).
        type: str
      script:
        description:
          - Xen vif hotplug script, for example V(vif-bridge).
          - Other hypervisors cannot run vif scripts; there it is recorded in the domain's
            metadata only (so LCFG profiles written for Xen still converge), and the module
            warns whenever it writes one.
        type: str
      model:
        description:
          - NIC model. Default V(virtio) for V(pv) and V(e1000) for V(hvm) guests on
            KVM/QEMU, the hypervisor's default on Xen.
        type: str
  kernel:
    description:
      - Kernel for direct boot (V(pv)/V(pvh) guests), an absolute path on the hypervisor host.
      - Must lie inside O(lcfg.xen.xen_domain#module:storage_dirs) (or be a PV-GRUB2 kernel)
        unless the play allows it with O(lcfg.xen.xen_domain#module:allowed_boot_paths) or
        O(lcfg.xen.xen_domain#module:allow_host_resources).
      - The empty string removes it.
    type: str
  ramdisk:
    description:
      - Initial ramdisk for direct kernel boot. The empty string removes it.
      - Must lie inside O(lcfg.xen.xen_domain#module:storage_dirs) unless the play allows it
        with O(lcfg.xen.xen_domain#module:allowed_boot_paths) or
        O(lcfg.xen.xen_domain#module:allow_host_resources).
    type: str
  cmdline:
    description:
      - Kernel command line (with O(kernel)), or the bootloader arguments (with O(bootloader)).
      - As bootloader arguments only C(--entry=), C(--kernel=), C(--ramdisk=), C(--args=) (one word
        each) and C(-q) are accepted, unless O(lcfg.xen.xen_domain#module:allow_host_resources).
    type: str
  bootloader:
    description:
      - Host-side bootloader for Xen PV guests, for example V(pygrub). Xen only.
      - It runs in dom0, so only the known pygrub paths are accepted (V(pygrub), C(/usr/bin/pygrub),
        C(/usr/lib/xen-<version>/bin/pygrub), ...) unless the play allows another with
        O(lcfg.xen.xen_domain#module:allowed_boot_paths) or
        O(lcfg.xen.xen_domain#module:allow_host_resources).
    type: str
  boot_order:
    description:
      - The devices the guest's firmware boots from, in order - V(network) (PXE from the first
        vif), V(disk) (the first disk), V(cdrom) (the O(cdrom) image). Each at most once.
      - From the LCFG resource C(bootorder_$), blank-separated (C(network disk cdrom)).
      - Rendered as C(<os><boot dev=.../>) for QEMU/KVM guests of every type and Xen HVM guests;
        a Xen PV or PVH guest boots without firmware and is refused. Not with O(kernel) or
        O(bootloader), which boot directly.
      - Default (left out for a new guest) - the disks only.
    type: list
    elements: str
    version_added: 0.2.0
  firmware:
    description:
      - The guest's firmware - V(bios) (SeaBIOS on QEMU, hvmloader on Xen) or V(uefi) (OVMF, from
        Debian's C(ovmf) package, which the P(lcfg.xen.hypervisor#role) role installs).
      - From the LCFG resource C(firmware_$).
      - V(uefi) is rendered as libvirt's firmware autoselection C(<os firmware='efi'>) - QEMU takes
        OVMF from its firmware descriptors and keeps the guest's UEFI variables in
        C(/var/lib/libvirt/qemu/nvram/); libxl loads its OVMF for a Xen HVM guest. A Xen PV or PVH
        guest is refused.
      - Default (left out for a new guest) - V(bios).
    type: str
    choices: [bios, uefi]
    version_added: 0.2.0
  cdrom:
    description:
      - An ISO image given to the guest as a read-only IDE CD-ROM (target C(hdc)), for example an
        installer to boot with O(boot_order) V(cdrom) first. V('') removes it.
      - From the LCFG resource C(cdrom_$).
      - The host reads it into the guest, so it must lie inside the storage directories
        (O(lcfg.xen.xen_domain#module:storage_dirs)), compared with symlinks resolved; a path
        outside them is refused unless the play allows host resources
        (O(lcfg.xen.xen_domain#module:allow_host_resources)). Several guests may share one
        image, but never another guest's disk image.
      - A Xen PV or PVH guest is refused (use O(type=hvm)).
    type: str
    version_added: 0.2.0
  extra:
    description:
      - The escape hatch for hypervisor settings this module does not model.
      - In the items of M(lcfg.xen.xen_guests) (which receive the LCFG C(extra_$) resource as
        text) it may also be a string - XML fragments when it starts with C(<), a JSON
        object when it starts with C({), else C(key=value) pairs separated by commas or
        blanks. Here, Ansible reads C(key=value) strings itself.
      - Knobs left out keep their current value (V(destroy), V(restart), V(destroy) for a
        new guest). Changes apply at the next restart of a running guest.
      - Reported back (C(after.extra) of M(lcfg.xen.xen_domain), C(config.extra) of M(lcfg.xen.xen_domain_info)) with
        the libvirt domain
        type in C(domain_type) (V(xen), V(kvm), V(qemu), V(test)).
    type: dict
    suboptions:
      on_poweroff:
        description: What the hypervisor does when the guest powers off.
        type: str
        choices: [destroy, restart, preserve, rename-restart, coredump-destroy, coredump-restart]
      on_reboot:
        description: What the hypervisor does when the guest reboots.
        type: str
        choices: [destroy, restart, preserve, rename-restart, coredump-destroy, coredump-restart]
      on_crash:
        description: What the hypervisor does when the guest crashes.
        type: str
        choices: [destroy, restart, preserve, rename-restart, coredump-destroy, coredump-restart]
      domain_type:
        description:
          - The libvirt domain type. On KVM/QEMU V(kvm) (hardware virtualisation) or V(qemu)
            (TCG emulation); on Xen only V(xen), on LXC only V(lxc), on the test driver only V(test) (accepted so
            that RV(lcfg.xen.xen_domain_info#module:guests[].config) can be fed back).
          - Default for a new guest V(kvm) when the hypervisor offers it and C(/dev/kvm) can
            be opened on the managed host, else V(qemu). An existing guest keeps its type.
          - Useful where KVM is offered but unusable or very slow (nested virtualisation).
        type: str
        choices: [kvm, qemu, xen, lxc, test]
      xml:
        description:
          - libvirt domain XML fragments merged into the definition, each one element.
          - A C(<devices>) fragment adds each of its children unless an equal device exists;
            any other element (for example C(<features>), C(<cpu>), C(<clock>)) replaces
            the element of the same name.
          - A fragment counts as applied when all its attributes, text and children are
            found in the definition (libvirt may add defaults), so re-runs are idempotent.
          - Elements managed by other options (C(name), C(uuid), C(memory), C(currentMemory),
            C(vcpu), C(os), C(metadata)) are refused.
          - Unless the play sets O(lcfg.xen.xen_domain#module:trusted_extra_xml) (or
            O(lcfg.xen.xen_domain#module:allow_host_resources)), only guest-side elements are
            accepted (see O(lcfg.xen.xen_domain#module:trusted_extra_xml) and C(docs/domains.md));
            anything that reaches the host (C(<disk>), C(<hostdev>), C(<qemu:commandline>), file chardevs, ...)
            fails naming the parameter and the element.
        type: list
        elements: str
  state:
    description:
      - V(present) the guest is defined; its power state is not touched.
      - V(running) defined and running (started if needed; a paused guest is resumed).
      - V(stopped) defined and shut off. A running guest is asked to shut down and waited
        for up to O(shutdown_timeout) seconds.
      - V(absent) not defined. A running guest is shut down first like for V(stopped); the
        definition is removed with its NVRAM, managed save image and snapshot metadata.
        Disk images are kept unless O(remove_disks=true). Only O(name) is needed.
    type: str
    choices: [present, running, stopped, absent]
    default: present
  shutdown_timeout:
    description: Seconds to wait for a graceful shutdown (O(state=stopped) or O(state=absent)).
    type: int
    default: 120
  force_stop:
    description:
      - When a guest has not shut down after O(shutdown_timeout) seconds, power it off
        (libvirt C(destroy)) if V(true); if V(false) the module fails and leaves it running.
    type: bool
    default: false
  remove_disks:
    description:
      - With O(state=absent), also delete the guest's disk image files (through the libvirt
        storage pool that holds them, else the file). Block devices are never touched.
      - Only image files inside the storage directories (the play's C(storage_dirs)) are deleted,
        checked on resolved paths; an image elsewhere, or a symbolic link, is kept and a warning
        names it.
      - Refused with any other O(state).
    type: bool
    default: false
"""

    # Only the details: list it before lcfg.xen.connection.attributes (which gives the
    # descriptions and support levels), since an earlier fragment wins over a later one.
    ATTRIBUTES = r"""
attributes:
  check_mode:
    details: Check mode reads the guests and reports exactly the changes, actions and diff a real run would make,
      without making them.
  diff_mode:
    details: The diff shows each guest's normalised configuration and power state before and after, in the module's
      option vocabulary (not raw XML).
"""
