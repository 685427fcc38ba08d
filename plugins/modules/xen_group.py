#!/usr/bin/python
# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Apply a virtual group's settings to its member guests, live where possible."""

from __future__ import annotations

DOCUMENTATION = r"""
module: xen_group
short_description: Apply a virtual group's hardware and network settings to its member guests
version_added: 0.1.0
description:
  - A virtual group (LCFG C(xen.virtualgroup)) gives its members common hardware and network
    settings - memory, maximum memory, VCPUs, CPU pinning, and the network type, bridge and vif script
    of their vifs. This module applies them to all the members on one hypervisor in one task and
    reports, per member, what changed.
  - "Precedence is the inventory's: a member's own value (given in O(members)) wins; the group's
    value fills in what the member leaves unset; a field that neither sets is left as it is."
  - Running members change live where the hypervisor allows it, without a restart - memory up to
    the guest's maximum memory, VCPUs up to its maximum VCPUs, CPU pinning. Every change is also
    saved to the persistent definition. What cannot change live (maximum memory, maximum VCPUs,
    network settings) waits for the member's next restart and is listed in
    RV(results[].pending_restart_fields); the module never restarts, starts or stops a member.
  - Every member must already be defined (M(lcfg.xen.xen_domain), M(lcfg.xen.xen_guests) or the
    C(lcfg.xen.guest) role create them). All members are validated and planned before any changes,
    so a bad value for one member changes nothing.
  - Only domains lcfg.xen defined (their definition carries its metadata element, namespace
    C(urn:lcfg:xen:guest:1)) are changed; a member that names a domain made by hand or by another
    tool fails the task, naming it. Adopt such a domain once with M(lcfg.xen.xen_domain) or
    M(lcfg.xen.xen_guests) (option C(adopt)) first.
author:
  - lcfg.xen contributors (!UNKNOWN)
options:
  name:
    description:
      - Name of the virtual group (the inventory group of the same name). Used in messages and results.
    type: str
    required: true
  members:
    description:
      - The member guests - names, or dicts holding a C(name) and the member's own values, which win
        over the group's.
      - "A dict may set C(memory), C(maxmem), C(vcpus), C(maxvcpus), C(cpus) and C(vifs): a list of
        C({mac or tag, nettype, bridge, network, script}) for the member's own vif values (matched to
        the guest's vifs by MAC, else by tag)."
      - The C(xen_domain) hostvar of an inventory guest can be passed as it is; its keys that a group does
        not set (C(uuid), C(disks), C(autostart), ...) are ignored, any other key is an error.
    type: list
    elements: raw
    required: true
  memory:
    description: Memory of every member in MiB (LCFG C(groupmemory_<group>)). Changes live up to the member's maximum
      memory.
    type: int
  maxmem:
    description: Maximum memory in MiB (C(groupmaxmem_<group>)). Applies at the member's next restart.
    type: int
  vcpus:
    description: Number of VCPUs (C(groupvcpus_<group>)). Changes live up to the member's maximum VCPUs.
    type: int
  maxvcpus:
    description: Maximum number of VCPUs (C(groupmaxvcpus_<group>)). Applies at the member's next restart.
    type: int
  cpus:
    description:
      - Physical CPUs the members' VCPUs are pinned to, as a cpuset (C(groupcpus_<group>)), for example
        V(0,1) or V(2-3). V("") removes the pinning. Changes live.
    type: str
  nettype:
    description: Network type of every vif (C(groupnettype_<group>)). Applies at the member's next restart.
    type: str
    choices: [bridge, nat, route]
  bridge:
    description: Host bridge of every bridged vif (C(groupbridge_<group>)). Applies at the member's next restart.
    type: str
  network:
    description:
      - libvirt network of every vif of type nat or route. Defaults to V(lcfg-nat) or V(lcfg-route)
        when a vif changes to that type.
    type: str
  script:
    description:
      - Vif script of every vif (C(groupscript_<group>)). Xen only.
      - Xen runs it in dom0, so it must be a name from Xen's scripts directory (C(vif-bridge),
        C(vif-nat), ...), like the vif scripts of M(lcfg.xen.xen_domain); a path is refused unless
        O(allow_host_resources) is set. The members' own C(vifs[].script) follow the same rule.
    type: str
  allow_host_resources:
    description:
      - Let the group's and members' values reach the host without the host-access checks of
        M(lcfg.xen.xen_domain) (a vif script given as a path). A play option, for values trusted like
        root on the hypervisor; LCFG profiles are not.
    type: bool
    default: false
  owner:
    description:
      - The site (inventory, play) the members belong to, as O(lcfg.xen.xen_guests#module:owner) records it on
        the guests it defines. A member recorded for another owner fails before any change, naming it; members
        recorded with no owner, or any member when O(owner) is unset, are changed as before.
      - "1-128 letters, digits and C(. _ : @ / -), starting with a letter or digit. A play setting, never a profile's
        (C(playbooks/rolling.yml) passes the hypervisor's C(guest_owner), by default its inventory name)."
    type: str
    version_added: 0.2.0
extends_documentation_fragment:
  - lcfg.xen.live_wait
  - lcfg.xen.connection
  - lcfg.xen.lock
  - lcfg.xen.connection.attributes
attributes:
  check_mode:
    details: Check mode reads every member and reports exactly the changes, actions and diff a real run would make,
      without making them.
  diff_mode:
    details: The diff shows, per member, the group fields and vifs before and after in the module's option vocabulary
      (not raw XML).
  idempotent:
    details: A second run with the same group and members reports no change.
notes:
  - On KVM/QEMU, a memory change reaches the guest through its balloon driver; a guest without one
    keeps its memory until it restarts, although the new value is set and saved.
  - The O(uri) connection is opened once for all members.
requirements:
  - libvirt-python and lxml on the managed host
seealso:
  - module: lcfg.xen.xen_domain
  - module: lcfg.xen.xen_guests
"""

EXAMPLES = r"""
- name: Give every member of cluster1 1 GiB and 2 VCPUs pinned to CPUs 2-3, live
  lcfg.xen.xen_group:
    uri: xen:///system
    name: cluster1
    members: [node1, node2, node3]
    memory: 1024
    vcpus: 2
    cpus: "2-3"
  register: cluster1

- name: Say which members wait for a restart, and why
  ansible.builtin.debug:
    msg: "restart {{ item.name }} to apply {{ item.pending_restart_fields | join(', ') }}"
  loop: "{{ cluster1.results | selectattr('pending_restart') | list }}"
  loop_control:
    label: "{{ item.name }}"

- name: The group from the LCFG inventory, on a hypervisor (its xen_host.groups)
  lcfg.xen.xen_group:
    uri: "{{ xen_uri | default('qemu:///system') }}"
    name: "{{ item.key }}"
    members: "{{ item.value.members }}"
    memory: "{{ item.value.memory }}"
    maxmem: "{{ item.value.maxmem }}"
    vcpus: "{{ item.value.vcpus }}"
    maxvcpus: "{{ item.value.maxvcpus }}"
    cpus: "{{ item.value.cpus }}"
    bridge: "{{ item.value.bridge }}"
    nettype: "{{ item.value.nettype }}"
  loop: "{{ xen_host.groups | dict2items }}"
  loop_control:
    label: "{{ item.key }}"

- name: One member with its own memory, which wins over the group's
  lcfg.xen.xen_group:
    name: cluster2
    members:
      - node4
      - name: node5
        memory: 2048
    memory: 512
"""

RETURN = r"""
changed:
  description: Whether any member was (or, in check mode, would be) changed.
  returned: always
  type: bool
  sample: true
group:
  description: The group's name (O(name)).
  returned: always
  type: str
  sample: cluster1
actions:
  description:
    - What was done (in check mode, would be done), member by member in the order of O(members), each
      action prefixed with the member's name.
  returned: always
  type: list
  elements: str
  sample: ["node1: redefine", "node1: set_memory_live"]
results:
  description:
    - One entry per member, in the order of O(members), also for one member; no entry carries C(diff)
      (the top-level RV(diff) holds every member's).
  returned: always
  type: list
  elements: dict
  sample:
    - name: node1
      changed: true
      changed_fields: [memory]
      actions: [redefine, set_memory_live]
      live: [memory]
      pending_restart: []
      pending_restart_fields: []
      state: running
      before: {memory: 128, maxmem: 256, vcpus: 2, maxvcpus: 2, cpus: "1", vifs: [], state: running}
      after: {memory: 192, maxmem: 256, vcpus: 2, maxvcpus: 2, cpus: "1", vifs: [], state: running}
  contains:
    name:
      description: The member's name.
      type: str
    changed:
      description: Whether the member changed.
      type: bool
    changed_fields:
      description: Group fields whose value changed.
      type: list
      elements: str
    actions:
      description: Steps taken, such as C(redefine), C(set_memory_live), C(set_vcpus_live), C(set_cpus_live).
      type: list
      elements: str
    live:
      description:
        - Fields changed on the running guest without a restart that the guest followed (or, for VCPUs
          without a guest agent, that the hypervisor reports); a field the guest did not follow within
          O(live_wait) is in C(live_not_followed) instead.
      type: list
      elements: str
    memory_actual:
      description: The balloon's actual size in MiB of the running member, beside the target C(after.memory)
        (RV(lcfg.xen.xen_domain#module:memory_actual)); null when it does not run.
      type: int
      sample: 256
    vcpus_online:
      description: VCPUs the member's operating system has online (guest agent); null when unknown.
      type: int
    live_not_followed:
      description: Live changes the member did not follow within O(live_wait) seconds, in words (also warnings).
      type: list
      elements: str
      sample: ["memory: target 192 MiB, guest still at 256 MiB"]
    pending_restart:
      description: C([name]) when some change waits for the member's next restart, else C([]).
      type: list
      elements: str
    pending_restart_fields:
      description: The fields that wait for the next restart.
      type: list
      elements: str
    state:
      description: Power state (C(running), C(paused), C(stopped)); never changed by this module.
      type: str
    before:
      description: The group fields and vifs (C(tag), C(mac), C(nettype), C(bridge), C(network), C(script)) before
        the run.
      type: dict
    after:
      description: The same after the run (read back from libvirt; in check mode, the prediction).
      type: dict
changed_members:
  description: Names of the members that changed (those of RV(results) with C(changed)).
  returned: always
  type: list
  elements: str
  sample: [node1, node2]
pending_restart:
  description: Names of the members with changes waiting for their next restart.
  returned: always
  type: list
  elements: str
  sample: []
diff:
  description: Per member name, the group fields before and after.
  returned: in diff mode
  type: dict
  sample: {"before": {"node1": {"memory": 128, "state": "running"}}, "after": {"node1": {"memory": 192,
    "state": "running"}}}
lock_waited:
  description: Seconds this call waited for another run's lock on the hypervisor (see O(lock_timeout)).
  returned: when not in check mode
  type: float
  sample: 0.0
"""


from ansible_collections.lcfg.xen.plugins.module_utils.common.argspec import with_connection
from ansible_collections.lcfg.xen.plugins.module_utils.common.host_access import HostAccess
from ansible_collections.lcfg.xen.plugins.module_utils.common.lock import LOCK_ARGSPEC
from ansible_collections.lcfg.xen.plugins.module_utils.common.module import (
    AnsibleModule,
    require_lxml,
    run_module,
    with_libvirt,
)
from ansible_collections.lcfg.xen.plugins.module_utils.domain.group import (
    apply_group,
    plan_group,
    validate_members,
    validate_settings,
)

ARGUMENT_SPEC = with_connection(
    {
        "name": {"type": "str", "required": True},
        "members": {"type": "list", "elements": "raw", "required": True},
        "live_wait": {"type": "int", "default": 10},
        "memory": {"type": "int"},
        "maxmem": {"type": "int"},
        "vcpus": {"type": "int"},
        "maxvcpus": {"type": "int"},
        "cpus": {"type": "str"},
        "nettype": {"type": "str", "choices": ["bridge", "nat", "route"]},
        "bridge": {"type": "str"},
        "network": {"type": "str"},
        "script": {"type": "str"},
        "allow_host_resources": {"type": "bool", "default": False},
        "owner": {"type": "str"},
        **LOCK_ARGSPEC,
    }
)


def run_group(params: dict, check_mode: bool) -> dict:
    """Validate everything, plan every member, then apply (or predict) in member order."""
    settings = validate_settings(params)
    members = validate_members(params["members"])
    access = HostAccess(allow_host_resources=params["allow_host_resources"])
    result = with_libvirt(
        params["uri"],
        lambda conn: apply_group(
            conn,
            plan_group(conn, settings, members, group=params["name"], access=access, owner=params["owner"]),
            check_mode=check_mode,
            live_wait=params["live_wait"],
        ),
    )
    result["group"] = params["name"]
    return result


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    require_lxml(module)
    # domain.group names the group in its messages already.
    run_module(module, lambda: run_group(module.params, module.check_mode), lock=True)


if __name__ == "__main__":
    main()
