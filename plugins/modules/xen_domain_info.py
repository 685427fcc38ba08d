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
from ansible_collections.lcfg.xen.plugins.module_utils.domain.engine import domain_info


def main() -> None:
    module = AnsibleModule(argument_spec=with_connection({"name": {"type": "str"}}), supports_check_mode=True)
    require_lxml(module)
    run_module(
        module,
        lambda: {
            "changed": False,
            "guests": with_libvirt(module.params["uri"], lambda conn: domain_info(conn, module.params["name"])),
        },
    )


if __name__ == "__main__":
    main()
