#!/usr/bin/python
# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: xen_esx_guest
short_description: Converge one guest on a VMware ESX host from the same guest options
version_added: 0.4.0
description:
  - Creates, reconfigures, powers and removes one virtual machine on a VMware ESX host (or a
    vCenter in front of it) through the vSphere API (pyvmomi), from the guest options of
    M(lcfg.xen.xen_domain) - the C(xen_domain) variable the P(lcfg.xen.lcfg#inventory)
    inventory gives each guest. What the LCFG talk's slide did by hand (hardware described in the
    profile, the VM made by hand, then a PXE install) is one task.
  - O(memory) (MiB) and O(vcpus) become the VM's memory and CPUs; O(disks) become thin virtual
    disks of their C(size_gb) (8 GiB when unset) on O(datastore); O(vifs) become vmxnet3 NICs on
    the port group named by each vif's C(bridge) (or O(port_groups) of it), with the vif's MAC when
    given; O(autostart) is the host's autostart entry; O(state) the power state.
  - Checked by the same rules as M(lcfg.xen.xen_domain) first, then by ESX's - nothing is changed when
    any fails - a vif of nettype nat or route (ESX has no libvirt network), a port group the host
    lacks, more memory than the host has, and options ESX cannot take (kernel, ramdisk,
    bootloader, cmdline, cdrom, cpus, firmware uefi, type pvh or container) are refused naming
    the option.
  - Idempotent. A running VM takes more memory and VCPUs live (the module enables hot-add on the
    VMs it creates); a decrease, or any change of a VM without hot-add, needs the VM stopped and is
    reported in RV(not_applied) with a warning, not made. Disks are added and grown, never
    shrunk or removed; NICs follow the list (matched by MAC, else by position).
  - A VM this module did not create (it marks its own with the C(extraConfig) key
    C(lcfg.xen.managed)) is never changed unless O(adopt=true).
  - With O(state=absent) the VM is powered off and unregistered; its disks stay on the datastore
    unless O(remove_disks=true).
author:
  - lcfg.xen contributors (!UNKNOWN)
requirements:
  - pyvmomi (the vSphere API for Python) on the host that runs the module
options:
  hostname:
    description:
      - The ESX host or vCenter to talk to. Default from the environment variable C(VMWARE_HOST).
    type: str
    required: true
  port:
    description: The API port. Default from C(VMWARE_PORT), else 443.
    type: int
    default: 443
  username:
    description: The API user. Default from C(VMWARE_USER).
    type: str
    required: true
  password:
    description: The API user's password. Default from C(VMWARE_PASSWORD).
    type: str
    required: true
  protocol:
    description:
      - V(https), or V(http) for a plain-HTTP endpoint such as VMware's simulator (vcsim) in tests.
    type: str
    choices: [https, http]
    default: https
  validate_certs:
    description:
      - Check the host's TLS certificate. Default from C(VMWARE_VALIDATE_CERTS), else V(true).
    type: bool
    default: true
  esx_host:
    description:
      - The ESX host (its name in the inventory of vCenter) the VM runs on. Default the first host
        the connection shows (an ESX host shows itself).
    type: str
  datastore:
    description: Where a new VM's files and disks go. Default the host's first datastore.
    type: str
  guest_id:
    description: The vSphere guest OS identifier of a new VM.
    type: str
    default: otherLinux64Guest
  port_groups:
    description:
      - The port group each profile bridge name stands for on ESX, for example C(xenbr0) mapped
        to C(VM Network). A bridge not listed is a port group of the same name.
      - A play's setting, never a profile's.
    type: dict
    default: {}
  adopt:
    description:
      - Let this play take over a VM of this name that lcfg.xen did not create; it is then managed
        like its own (it is not re-marked).
    type: bool
    default: false
  guest:
    description:
      - The whole guest as one dict instead of the separate guest options - the inventory's
        C(xen_domain) variable as it is (C(guest="{{ xen_domain }}")). Checked like an item of
        M(lcfg.xen.xen_guests) (keys that are unset, C(null), or for disk handling are fine);
        errors name C(guest.<key>). O(state), O(shutdown_timeout), O(force_stop) and
        O(remove_disks) stay module options.
      - Exactly one of O(name) and O(guest).
    type: dict
  name:
    description:
      - Name of the VM. Exactly one of O(name) and O(guest).
    type: str
    required: false
extends_documentation_fragment:
  - lcfg.xen.guest
attributes:
  check_mode:
    support: full
    description: A check run reads the VM and its host and predicts the same actions and diff.
  diff_mode:
    support: full
    description: The VM before and after, in the view RV(vm) shows.
notes:
  - Tested against VMware's simulator (govmomi's vcsim) by the collection's integration tests,
    not against a real ESX host; see the collection's docs/hypervisors.md.
seealso:
  - module: lcfg.xen.xen_domain
"""

EXAMPLES = r"""
- name: The profile's guest as an ESX VM, its vifs on the port group of each bridge
  lcfg.xen.xen_esx_guest:
    hostname: esx1.example.org
    username: "{{ vault_esx_user }}"
    password: "{{ vault_esx_password }}"
    datastore: datastore1
    port_groups:
      xenbr0: VM Network
    guest: "{{ xen_domain }}"
    state: running

- name: The same, option by option
  lcfg.xen.xen_esx_guest:
    hostname: esx1.example.org
    username: "{{ vault_esx_user }}"
    password: "{{ vault_esx_password }}"
    name: web1
    memory: 1024
    vcpus: 2
    disks:
      - {path: /guests/web1.img, size_gb: 12}
    vifs:
      - {bridge: xenbr0, mac: "00:50:56:00:00:01"}
    port_groups:
      xenbr0: VM Network
    autostart: true
    state: running

- name: Stop a VM, forcing it off when VMware Tools do not answer within 60 s
  lcfg.xen.xen_esx_guest:
    hostname: esx1.example.org
    username: "{{ vault_esx_user }}"
    password: "{{ vault_esx_password }}"
    name: web1
    state: stopped
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
  description: The VM's name (O(name)).
  returned: always
  type: str
  sample: web1
esx_host:
  description: The ESX host the VM is on.
  returned: always
  type: str
  sample: esx1.example.org
actions:
  description:
    - What was done (or would be in check mode), in order. Values are V(create), V(power_off),
      V(set_memory), V(set_vcpus), V(set_add_disks), V(set_grow_disks), V(set_nics), V(remove),
      V(power_on) and V(set_autostart).
  returned: always
  type: list
  elements: str
  sample: [create, power_on, set_autostart]
not_applied:
  description: The fields that differ but could not change now (a running VM); each has a warning.
  returned: always
  type: list
  elements: str
  sample: [memory]
vm:
  description:
    - The VM read back from the host after the run (not in check mode, not when removed).
  returned: when the VM exists after a real run
  type: dict
  sample:
    name: web1
    memory: 1024
    vcpus: 2
    memory_hot_add: true
    vcpus_hot_add: true
    disks: [{size_gb: 12.0}]
    vifs: [{mac: "00:50:56:00:00:01", port_group: VM Network}]
    autostart: true
    state: running
"""

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.lcfg.xen.plugins.module_utils.common.module import AnsibleModule, run_module
from ansible_collections.lcfg.xen.plugins.module_utils.esx.client import PYVMOMI_ERROR
from ansible_collections.lcfg.xen.plugins.module_utils.esx.engine import converge_esx_guest
from ansible_collections.lcfg.xen.plugins.module_utils.spec.argspec import guest_module_argspec

CONNECTION_ARGSPEC = {
    "hostname": {"type": "str", "required": True, "fallback": (env_fallback, ["VMWARE_HOST"])},
    "port": {"type": "int", "default": 443, "fallback": (env_fallback, ["VMWARE_PORT"])},
    "username": {"type": "str", "required": True, "fallback": (env_fallback, ["VMWARE_USER"])},
    "password": {"type": "str", "required": True, "no_log": True, "fallback": (env_fallback, ["VMWARE_PASSWORD"])},
    "protocol": {"type": "str", "choices": ["https", "http"], "default": "https"},
    "validate_certs": {"type": "bool", "default": True, "fallback": (env_fallback, ["VMWARE_VALIDATE_CERTS"])},
    "esx_host": {"type": "str"},
    "datastore": {"type": "str"},
    "guest_id": {"type": "str", "default": "otherLinux64Guest"},
    "port_groups": {"type": "dict", "default": {}},
    "adopt": {"type": "bool", "default": False},
}


def main() -> None:
    guest = dict(guest_module_argspec(), name={"type": "str"})  # or the whole guest in O(guest)
    module = AnsibleModule(
        argument_spec=dict(guest, guest={"type": "dict"}, **CONNECTION_ARGSPEC),
        required_one_of=[("name", "guest")],
        mutually_exclusive=[("name", "guest")],
        supports_check_mode=True,
    )
    if PYVMOMI_ERROR is not None:
        module.fail_json(msg=missing_required_lib("pyvmomi"), exception=str(PYVMOMI_ERROR))
    run_module(module, lambda: converge_esx_guest(module.params, check_mode=module.check_mode))


if __name__ == "__main__":
    main()
