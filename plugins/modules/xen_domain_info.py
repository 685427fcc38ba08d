#!/usr/bin/python
# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: xen_domain_info
short_description: List guests with their state, live values and saved configuration
version_added: 0.1.0
description:
  - Lists every guest of a hypervisor, running or only defined, or the one named by O(name).
  - The saved configuration is reported in the vocabulary M(lcfg.xen.xen_domain) accepts,
    so it can be fed back to it.
author:
  - lcfg.xen contributors (!UNKNOWN)
extends_documentation_fragment:
  - lcfg.xen.connection
  - lcfg.xen.connection.read_only
  - lcfg.xen.connection.attributes
options:
  name:
    description:
      - Report only this guest. A name that does not exist gives an empty RV(guests) list.
    type: str
  console_lines:
    description:
      - How many of the last lines of each guest's console log RV(guests[].console_log) holds.
        V(0) gives only the path.
    type: int
    default: 20
  wait_for_address:
    description:
      - Wait up to this many seconds until the guest O(name) has an address (of O(address_family)) on any
        of its vifs, polling every 2 seconds; then return as without waiting. When none comes, the task
        fails, naming the guest, its state, the address sources that failed and its console's last lines.
      - Needs O(name). V(0) (the default) does not wait.
    type: int
    default: 0
  address_family:
    description: The address family O(wait_for_address) waits for.
    type: str
    choices: [ipv4, ipv6, any]
    default: ipv4
notes:
  - Addresses come from libvirt's three sources, each tried on its own, so one that fails (no guest
    agent, a network without DHCP) does not hide the others - V(lease) (the DHCP leases of libvirt's
    network, for vifs on a libvirt network), V(agent) (the QEMU guest agent, asked only when its
    channel is connected) and V(arp) (the hypervisor's ARP table, for bridged guests once they have
    sent traffic). On Xen, whose libvirt driver has neither lease nor ARP source, the network's leases
    and the host's ARP table are read directly (ARP only when the hypervisor is this host).
  - "Console logs are kept by the collection, at paths it derives from the guest's name - on QEMU/KVM
    C(/var/log/libvirt/qemu/<name>.console), written by virtlogd (bounded by its C(max_size) and
    C(max_backups), truncated at each start of the guest); on Xen C(/var/log/xen/console/guest-<name>.log),
    written by xenconsoled when the P(lcfg.xen.hypervisor#role) role has set it up. The lines are read on
    the hypervisor (the module runs there); with a remote O(uri) only the path is given."
seealso:
  - module: lcfg.xen.xen_domain
"""

EXAMPLES = r"""
- name: All guests of the hypervisor
  lcfg.xen.xen_domain_info:
    uri: qemu:///system
  register: info

- name: Names of the guests that are not running
  ansible.builtin.debug:
    msg: "{{ info.guests | rejectattr('state', 'equalto', 'running') | map(attribute='name') | list }}"

- name: One guest
  lcfg.xen.xen_domain_info:
    uri: xen:///system
    name: web1
  register: web1

- name: Wait up to 5 minutes for a new guest's IPv4 address (from its DHCP lease, agent or ARP)
  lcfg.xen.xen_domain_info:
    uri: qemu:///system
    name: build1
    wait_for_address: 300
  register: build1_info

- name: Reach it by that address
  ansible.builtin.add_host:
    name: build1
    ansible_host: "{{ build1_info.guests[0].addresses[0] }}"

- name: The same wait as a retry loop (the task itself never fails for a missing address)
  lcfg.xen.xen_domain_info:
    uri: qemu:///system
    name: build1
  register: build1_info
  until: build1_info.guests[0].addresses | length > 0
  retries: 60
  delay: 5

- name: Show why a guest does not come up (the last 40 lines of its serial console)
  lcfg.xen.xen_domain_info:
    uri: qemu:///system
    name: build1
    console_lines: 40
  register: build1_console

- name: Print them
  ansible.builtin.debug:
    msg: "{{ build1_console.guests[0].console_log.lines }}"

- name: Guests whose balloon did not follow their memory target
  ansible.builtin.debug:
    msg: "{{ item.name }}: target {{ item.config.memory }} MiB, balloon {{ item.memory_actual }} MiB"
  loop: "{{ info.guests | selectattr('memory_actual') | list }}"
  when: item.memory_actual != item.config.memory
"""

RETURN = r"""
guests:
  description: The guests, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Guest name.
      type: str
    uuid:
      description: Guest UUID.
      type: str
    state:
      description: V(running), V(paused) or V(stopped).
      type: str
    autostart:
      description: Whether the guest starts when the hypervisor boots.
      type: bool
    persistent:
      description: Whether the guest has a saved definition (false for transient guests).
      type: bool
    live:
      description:
        - Live values of a running or paused guest (C(memory) and C(maxmem) in MiB as the
          hypervisor reports them, C(vcpus) online); null for a stopped guest.
      type: dict
      sample: {memory: 512, maxmem: 1024, vcpus: 2}
    interfaces:
      description:
        - Every vif of the guest (of the live definition when it runs), with the addresses found for
          it. A stopped guest's vifs have no addresses.
      type: list
      elements: dict
      contains:
        name:
          description: The vif's device on the hypervisor (C(vnet0), C(vif3.0)); null for a stopped guest.
          type: str
        mac:
          description: MAC address (lower case).
          type: str
        network:
          description: The libvirt network of a network vif, else null.
          type: str
        bridge:
          description: The bridge of a bridge vif, else null.
          type: str
        addresses:
          description:
            - "Each address once: C(address), C(prefix) (null when the source gives none), C(family)
              (V(ipv4) or V(ipv6)) and C(source) (V(lease), V(agent) or V(arp): the first that gave it).
              Link-local and loopback addresses are left out."
          type: list
          elements: dict
      sample:
        - name: vnet3
          mac: "52:54:00:3e:12:01"
          network: lcfg-nat
          bridge: null
          addresses: [{address: 192.168.100.23, prefix: 24, family: ipv4, source: lease}]
    addresses:
      description: Every address of RV(guests[].interfaces), IPv4 first.
      type: list
      elements: str
      sample: [192.168.100.23]
    address_problems:
      description:
        - The address sources that failed for a running guest, with libvirt's message
          (V(agent) is asked only when the guest's agent channel is connected).
      type: list
      elements: str
      sample: ["lease: Requested operation is not valid: network 'lcfg-nat' is not active"]
    console_log:
      description:
        - The guest's console log - C(path) (decided by the collection from the guest name), C(exists)
          (null when the hypervisor is not this host) and C(lines), its last O(console_lines) lines
          (control characters removed). Null on the test driver and for a QEMU/KVM guest whose
          definition does not log its console there (defined by hand, or running since before the
          collection added the log - it logs from its next start).
      type: dict
      sample: {path: /var/log/libvirt/qemu/web1.console, exists: true, lines: ["Booting from ROM..."]}
    memory_actual:
      description:
        - The balloon's actual size in MiB of a running guest (libvirt's memory statistics C(actual),
          else the current memory of the domain info). It differs from C(config.memory), the target,
          while the guest has not followed a change (no balloon driver); null when not running.
      type: int
      sample: 256
    vcpus_online:
      description:
        - The VCPUs the guest's operating system has online, from the QEMU guest agent; null when no
          agent answers (unknown - C(live.vcpus) is what the hypervisor gave the guest).
      type: int
      sample: null
    config:
      description:
        - The saved definition in the options of M(lcfg.xen.xen_domain) (C(name), C(uuid),
          C(type), C(memory), C(maxmem), C(vcpus), C(maxvcpus), C(cpus), C(autostart),
          C(disks), C(vifs), C(kernel), C(ramdisk), C(cmdline), C(bootloader), C(boot_order),
          C(firmware), C(cdrom), C(extra)).
      type: dict
  sample:
    - name: web1
      uuid: 5a0b7c4e-1111-5222-8333-444455556666
      state: stopped
      autostart: false
      persistent: true
      live: null
      interfaces:
        - {name: null, mac: "00:16:3e:00:00:01", network: null, bridge: xenbr0, addresses: []}
      addresses: []
      address_problems: []
      console_log: {path: /var/log/xen/console/guest-web1.log, exists: false, lines: []}
      memory_actual: null
      vcpus_online: null
      config:
        name: web1
        uuid: 5a0b7c4e-1111-5222-8333-444455556666
        type: pv
        memory: 512
        maxmem: 512
        vcpus: 1
        maxvcpus: 1
        cpus: ""
        autostart: false
        disks: []
        vifs: []
        kernel: null
        ramdisk: null
        cmdline: null
        bootloader: null
        boot_order: null
        firmware: bios
        cdrom: null
        extra: {on_poweroff: destroy, on_reboot: restart, on_crash: destroy, domain_type: xen, xml: []}
"""


from ansible_collections.lcfg.xen.plugins.module_utils.common.argspec import with_connection
from ansible_collections.lcfg.xen.plugins.module_utils.common.module import (
    AnsibleModule,
    require_lxml,
    run_module,
    with_libvirt,
)
from ansible_collections.lcfg.xen.plugins.module_utils.domain.engine import guest_info

ARGUMENT_SPEC = with_connection(
    {
        "name": {"type": "str"},
        "console_lines": {"type": "int", "default": 20},
        "wait_for_address": {"type": "int", "default": 0},
        "address_family": {"type": "str", "choices": ["ipv4", "ipv6", "any"], "default": "ipv4"},
    }
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    require_lxml(module)
    run_module(module, lambda: with_libvirt(module.params["uri"], lambda conn: guest_info(conn, module.params)))


if __name__ == "__main__":
    main()
