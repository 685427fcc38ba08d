#!/usr/bin/python
# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: xen_domain
short_description: Converge one guest (libvirt domain) to a declared spec
version_added: 0.1.0
description:
  - Defines, updates, starts, stops or removes one guest on a Xen, KVM/QEMU or test
    hypervisor through libvirt.
  - The options are named like the keys of the C(xen_domain) variable the
    P(lcfg.xen.lcfg#inventory) inventory plugin gives each guest.
  - Declarative and idempotent. libvirt's normalised persistent definition is read back
    into the option vocabulary and compared with what is asked; options left out are not
    touched, and devices the module does not model stay in the definition. UUID and MACs
    that exist are kept.
  - On a running guest, O(memory) (up to O(maxmem)), O(vcpus) (up to O(maxvcpus)) and O(cpus)
    change live and in the saved definition. Other changes are saved and reported in
    RV(pending_restart_fields); the guest is never restarted by this module for them.
  - To converge all guests of a hypervisor in one call use M(lcfg.xen.xen_guests).
author:
  - lcfg.xen contributors (!UNKNOWN)
options:
  adopt:
    description:
      - Let this play take over an existing domain of this name that lcfg.xen did not define (made by
        hand or by another tool). Without it such a domain is never changed, stopped or removed; the
        task fails naming it, also in check mode and when nothing would change.
      - lcfg.xen recognises its own domains by the metadata element (namespace C(urn:lcfg:xen:guest:1))
        it writes on every define; an adopted domain is redefined once to carry it, so later runs need
        no O(adopt).
    type: bool
    default: false
extends_documentation_fragment:
  - lcfg.xen.live_wait
  - lcfg.xen.live_wait.start
  - lcfg.xen.connection
  - lcfg.xen.guest
  - lcfg.xen.host_access
  - lcfg.xen.lock
  - lcfg.xen.guest.attributes
  - lcfg.xen.connection.attributes
seealso:
  - module: lcfg.xen.xen_guests
  - module: lcfg.xen.xen_domain_info
  - module: lcfg.xen.xen_disk
"""

EXAMPLES = r"""
- name: A small PV guest on Xen, booted directly from a kernel, started at boot
  lcfg.xen.xen_domain:
    uri: xen:///system
    name: web1
    type: pv
    memory: 1024
    maxmem: 2048
    vcpus: 2
    maxvcpus: 4
    kernel: /boot/vmlinuz-guest
    ramdisk: /boot/initrd-guest
    cmdline: root=/dev/xvda1 ro console=hvc0
    disks:
      - path: /var/lib/xen/images/web1.img
        tag: root
    vifs:
      - bridge: xenbr0
        mac: "00:16:3e:00:00:01"
        script: vif-bridge
    autostart: true
    state: running

- name: A KVM guest with virtio devices on the libvirt NAT network
  lcfg.xen.xen_domain:
    uri: qemu:///system
    name: build1
    type: pv
    memory: 512
    disks:
      - path: /var/lib/libvirt/images/build1.qcow2
    vifs:
      - nettype: nat
    extra:
      on_crash: restart
      xml:
        - "<devices><rng model='virtio'><backend model='random'>/dev/urandom</backend></rng></devices>"
    state: present

- name: Install a KVM guest from scratch - UEFI, network boot first, then an installer ISO, then its disk
  lcfg.xen.xen_domain:
    uri: qemu:///system
    name: build1
    type: hvm
    memory: 2048
    firmware: uefi
    boot_order: [network, cdrom, disk]
    cdrom: /var/lib/libvirt/images/debian-12-netinst.iso
    disks:
      - path: /var/lib/libvirt/images/build1.qcow2
    vifs:
      - nettype: nat
    state: running

- name: Give a running guest more CPUs and less memory, live
  lcfg.xen.xen_domain:
    uri: qemu:///system
    name: build1
    vcpus: 2
    memory: 384
  register: build1

- name: Say when a restart is needed
  ansible.builtin.debug:
    msg: "restart build1 to apply {{ build1.pending_restart_fields | join(', ') }}"
  when: build1.pending_restart | length > 0

- name: Remove a guest, powering it off if it ignores the shutdown request for 60 s
  lcfg.xen.xen_domain:
    uri: qemu:///system
    name: build1
    state: absent
    shutdown_timeout: 60
    force_stop: true
"""

RETURN = r"""
changed:
  description: Whether anything was (or, in check mode, would be) changed.
  returned: always
  type: bool
  sample: true
name:
  description: The guest's name (O(name)).
  returned: always
  type: str
  sample: web1
actions:
  description:
    - What was done (or would be done in check mode), in order. Values are V(define),
      V(redefine), V(set_memory_live), V(set_vcpus_live), V(set_cpus_live), V(set_autostart),
      V(start), V(resume), V(stop), V(undefine) and V(remove_disk <path>).
  returned: always
  type: list
  elements: str
  sample: [define, set_autostart, start]
before:
  description:
    - The guest before the run, in the option vocabulary, with C(state) (V(running),
      V(paused), V(stopped) or V(absent)). An absent guest is C({name, state}).
  returned: always
  type: dict
  sample: {"name": "web1", "state": "absent"}
after:
  description:
    - The guest after the run, read back from libvirt (in check mode, the prediction),
      same form as RV(before). Values are the saved definition; live values may differ
      while RV(pending_restart) names the guest.
  returned: always
  type: dict
  sample:
    name: web1
    uuid: 5a0b7c4e-1111-5222-8333-444455556666
    type: pv
    memory: 1024
    maxmem: 2048
    vcpus: 2
    maxvcpus: 4
    cpus: ""
    autostart: true
    disks:
      - {path: /var/lib/xen/images/web1.img, type: image, format: raw, device: xvda, tag: root, name: null}
    vifs:
      - {mac: "00:16:3e:00:00:01", nettype: bridge, bridge: xenbr0, network: null,
         script: vif-bridge, model: null, ip: null, tag: null}
    kernel: /boot/vmlinuz-guest
    ramdisk: /boot/initrd-guest
    cmdline: root=/dev/xvda1 ro console=hvc0
    bootloader: null
    boot_order: null
    firmware: bios
    cdrom: null
    extra: {on_poweroff: destroy, on_reboot: restart, on_crash: destroy, domain_type: xen, xml: []}
    state: running
memory_actual:
  description:
    - The balloon's actual size in MiB of the running guest after the run (libvirt's memory statistics
      C(actual), else the domain info's current memory), beside the target in C(after.memory); null when
      the guest does not run. After a live memory change it is read once the guest followed, or
      O(live_wait) passed.
  returned: always
  type: int
  sample: 256
vcpus_online:
  description:
    - The VCPUs the running guest's operating system has online, from the QEMU guest agent; null when no
      agent answers (unknown). A live VCPU change counts as done only when this (if known) and the
      hypervisor's count match the target.
  returned: always
  type: int
  sample: null
live_not_followed:
  description:
    - Live changes the hypervisor accepted but the guest had not followed after O(live_wait) seconds, in
      words (each also a warning). C([]) when the guest followed every one, or none was made.
  returned: always
  type: list
  elements: str
  sample: ["memory: target 192 MiB, guest still at 256 MiB"]
pending_restart:
  description:
    - The names of the guests whose saved changes wait for their next restart - C([name]) when
      the running guest has such changes (listed in RV(pending_restart_fields)), else C([]).
    - The same list in every changing module of the collection.
  returned: always
  type: list
  elements: str
  sample: [web1]
pending_restart_fields:
  description: The options whose new value applies at the next restart.
  returned: always
  type: list
  elements: str
  sample: [maxmem, vifs]
diff:
  description: The guest before and after (RV(before) and RV(after)).
  returned: in diff mode
  type: dict
  sample: {"before": {"name": "web1", "state": "absent"}, "after": {"name": "web1", "memory": 1024, "state": "stopped"}}
lock_waited:
  description: Seconds this call waited for another run's lock on the hypervisor (see O(lock_timeout)).
  returned: when not in check mode
  type: float
  sample: 0.0
"""


from ansible_collections.lcfg.xen.plugins.module_utils.common.argspec import with_connection
from ansible_collections.lcfg.xen.plugins.module_utils.common.host_access import (
    HOST_ACCESS_ARGSPEC,
    host_access_from_params,
)
from ansible_collections.lcfg.xen.plugins.module_utils.common.lock import LOCK_ARGSPEC
from ansible_collections.lcfg.xen.plugins.module_utils.common.module import (
    AnsibleModule,
    require_lxml,
    run_module,
    with_libvirt,
)
from ansible_collections.lcfg.xen.plugins.module_utils.domain.engine import converge_domain
from ansible_collections.lcfg.xen.plugins.module_utils.spec.argspec import guest_module_argspec

# A play option, never part of a guest spec: whether this play may take over a foreign domain.
ADOPT_ARGSPEC = {"adopt": {"type": "bool", "default": False}}
# Play options: how long to wait for a guest to follow a live change, and to watch a started one
# (no default here: the engine's depends on the driver).
WAIT_ARGSPEC = {"live_wait": {"type": "int", "default": 10}, "start_wait": {"type": "int"}}


def main() -> None:
    module = AnsibleModule(
        argument_spec=with_connection(
            dict(guest_module_argspec(), **ADOPT_ARGSPEC, **WAIT_ARGSPEC, **HOST_ACCESS_ARGSPEC, **LOCK_ARGSPEC)
        ),
        supports_check_mode=True,
    )
    require_lxml(module)
    run_module(
        module,
        lambda: with_libvirt(
            module.params["uri"],
            lambda conn: converge_domain(
                conn, module.params, check_mode=module.check_mode, access=host_access_from_params(module.params)
            ),
        ),
        lock=True,
    )


if __name__ == "__main__":
    main()
