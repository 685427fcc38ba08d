#!/usr/bin/python
# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: xen_guests
short_description: Converge all guests of one hypervisor in one call
version_added: 0.1.0
description:
  - Takes the list of guests of one hypervisor, each a dict with the options of
    M(lcfg.xen.xen_domain), and converges every one of them through one libvirt
    connection, with the same semantics (idempotent, live changes, check and diff mode per
    guest).
  - Every guest is validated and compared with libvirt before the first change, so an
    invalid entry anywhere in the list fails the task without changing anything.
  - Made for the C(xen_domain) variables of the P(lcfg.xen.lcfg#inventory) inventory plugin, which
    can be passed unchanged (see the examples).
author:
  - lcfg.xen contributors (!UNKNOWN)
extends_documentation_fragment:
  - lcfg.xen.live_wait
  - lcfg.xen.live_wait.start
  - lcfg.xen.connection
  - lcfg.xen.host_access
  - lcfg.xen.lock
  - lcfg.xen.guest.attributes
  - lcfg.xen.connection.attributes
options:
  guests:
    description:
      - The guests, each a dict with the options of M(lcfg.xen.xen_domain) (C(name)
        required; C(uuid), C(type), C(memory), C(maxmem), C(vcpus), C(maxvcpus), C(cpus),
        C(autostart), C(disks), C(vifs), C(kernel), C(ramdisk), C(cmdline), C(bootloader),
        C(boot_order), C(firmware), C(cdrom), C(extra), C(state), C(shutdown_timeout), C(force_stop),
        C(remove_disks)), with the same meaning and defaults.
      - C(extra) may also be text (as the LCFG C(extra_$) resource gives it) - XML fragments,
        a JSON object or C(key=value) pairs; see the O(lcfg.xen.xen_domain#module:extra) option.
      - The keys C(template), C(profile_url), C(partition) and C(groups) of the
        C(xen_domain) inventory variable are accepted and B(ignored) here (they are for
        M(lcfg.xen.xen_disk) and the inventory); any other unknown key fails, naming it.
      - Guests of the hypervisor that are not in the list are left alone, unless O(prune) is set; the
        ones lcfg.xen defined (for O(owner)) are reported in RV(stale).
      - What a guest may reach on the host (its C(extra.xml), bootloader, kernel, ramdisk,
        CD-ROM image, disk paths) is limited by the play options O(storage_dirs), O(trusted_extra_xml),
        O(allowed_boot_paths), O(allowed_block_devices) and O(allow_host_resources), which a
        guest dict cannot set.
    type: list
    elements: dict
    required: true
  parallel:
    description:
      - How many guests are changed at the same time (all on the one libvirt connection).
        Starting a guest mostly waits for the hypervisor, so a rollout of many guests is
        much faster in parallel. V(1) changes them one after another.
      - Validation and comparison always cover every guest before the first change.
    type: int
    default: 8
  adopt:
    description:
      - Names of existing domains that lcfg.xen did not define (made by hand or by another tool) which
        this play may take over. Without it such a domain is never changed, stopped or removed; a guest
        of that name fails, naming the domain, also in check mode and when nothing would change.
      - lcfg.xen recognises its own domains by the metadata element (namespace C(urn:lcfg:xen:guest:1))
        it writes on every define; an adopted domain is redefined once to carry it, so later runs need no
        O(adopt). Names not in O(guests) are ignored. A play option, never a profile value.
    type: list
    elements: str
    default: []
  prune:
    description:
      - Remove the stale guests (RV(stale)) - the guests lcfg.xen defined for this O(owner) that O(guests) no
        longer lists, since no profile names them any more. Each is shut down gracefully (ACPI/PV shutdown,
        waiting O(prune_timeout) seconds; powered off afterwards only with O(prune_force)) and undefined
        (with its NVRAM, managed save image and snapshot metadata); its disk images are kept unless
        O(prune_disks).
      - Only domains carrying lcfg.xen's metadata element (namespace C(urn:lcfg:xen:guest:1)) with this
        O(owner) are candidates; a domain defined by hand or by another tool, or another site's guest, is
        never touched. The listed guests are converged first; bad input anywhere fails before either.
      - A play setting, never a profile's. Run with C(--check --diff) first to see what would go.
    type: bool
    default: false
  prune_timeout:
    description: Seconds a running stale guest is given to shut down when O(prune) removes it.
    type: float
    default: 120
  prune_force:
    description:
      - Power off (destroy) a stale guest that did not shut down within O(prune_timeout). Without it such a
        guest fails the task, naming it; it stays defined and running.
    type: bool
    default: false
  prune_disks:
    description:
      - With O(prune), also delete the stale guests' disk image files - only regular files inside the
        storage directories (O(storage_dirs), resolved paths), never block devices, symbolic links, a
        clone's template or an image another guest (defined or listed) uses; those are kept and reported.
    type: bool
    default: false
  owner:
    description:
      - The site (inventory, play) these guests belong to, when several share one hypervisor. Recorded on
        the guests this call defines or redefines (the C(owner) attribute of lcfg.xen's metadata element);
        O(prune) removes only guests recorded for the same owner (unset - only guests recorded with none).
      - A listed guest recorded for another owner fails, naming it, unless O(adopt) names it; a listed guest
        recorded with no owner is claimed (redefined once to record O(owner)). Without O(owner) the call
        changes the listed guests whoever owns them (as M(lcfg.xen.xen_domain) does) and keeps their recorded
        owner; it only never prunes an owned guest.
      - "1-128 letters, digits and C(. _ : @ / -), starting with a letter or digit. A play setting, never a profile's."
    type: str
  default_bridge:
    description:
      - Bridge for interfaces with C(nettype=bridge) that name no C(bridge) (the inventory
        leaves it null to mean the host's default bridge, which it gives as
        C(xen_host.default_bridge)).
    type: str
seealso:
  - module: lcfg.xen.xen_domain
  - module: lcfg.xen.xen_domain_info
"""

EXAMPLES = r"""
# In a play over the hypervisors of the lcfg inventory (hosts: xen_hypervisors)
- name: Define every guest of this hypervisor from the LCFG inventory (autostart as the profiles say)
  lcfg.xen.xen_guests:
    uri: xen:///system
    default_bridge: "{{ xen_host.default_bridge }}"
    guests: "{{ xen_host.guests | map('extract', hostvars, 'xen_domain') | list }}"

- name: Start them
  lcfg.xen.xen_guests:
    uri: xen:///system
    default_bridge: "{{ xen_host.default_bridge }}"
    guests: >-
      {{ xen_host.guests | map('extract', hostvars, 'xen_domain')
         | map('combine', {'state': 'running'}) | list }}
  register: started

- name: Remove the guests of this site that no profile lists any more (keeps their disk images)
  lcfg.xen.xen_guests:
    uri: xen:///system
    owner: edinburgh-site
    default_bridge: "{{ xen_host.default_bridge }}"
    guests: "{{ xen_host.guests | map('extract', hostvars, 'xen_domain') | list }}"
    prune: true
    prune_timeout: 60
  register: converged

- name: Say what was pruned
  ansible.builtin.debug:
    msg: "pruned {{ converged.pruned | map(attribute='name') | join(', ') }}"
  when: converged.pruned | length > 0

- name: Say which guests wait for a restart
  ansible.builtin.debug:
    msg: "restart {{ started.pending_restart | join(', ') }} to apply saved changes"
  when: started.pending_restart | length > 0

- name: Two guests on libvirt's test driver
  lcfg.xen.xen_guests:
    uri: test:///default
    guests:
      - name: demo1
        memory: 128
        vcpus: 1
      - name: demo2
        type: hvm
        memory: 256
        state: running
"""

RETURN = r"""
changed:
  description: Whether any guest was (or, in check mode, would be) changed.
  returned: always
  type: bool
  sample: true
actions:
  description:
    - What was done (or would be done in check mode), guest by guest in the order of O(guests), each
      action prefixed with the guest's name (the actions of M(lcfg.xen.xen_domain)).
  returned: always
  type: list
  elements: str
  sample: ["demo1: define", "demo2: define", "demo2: start"]
results:
  description:
    - One entry per guest, in the order of O(guests), also for one guest; each with the keys
      M(lcfg.xen.xen_domain) returns, except C(diff) (the top-level RV(diff) holds every guest's).
  returned: always
  type: list
  elements: dict
  sample:
    - name: demo1
      changed: true
      actions: [define]
      before: {name: demo1, state: absent}
      after: {name: demo1, type: pv, memory: 128, state: stopped}
      pending_restart: []
      pending_restart_fields: []
  contains:
    name:
      description: The guest's name.
      type: str
    changed:
      description: Whether the guest changed.
      type: bool
    actions:
      description: What was done to the guest, as M(lcfg.xen.xen_domain) reports it.
      type: list
      elements: str
    before:
      description: The guest before the run, in the option vocabulary, with C(state).
      type: dict
    after:
      description: The guest after the run (in check mode, the prediction).
      type: dict
    pending_restart:
      description: C([name]) when the guest's saved changes wait for its next restart, else C([]).
      type: list
      elements: str
    pending_restart_fields:
      description: The options whose new value applies at the guest's next restart.
      type: list
      elements: str
    memory_actual:
      description: The balloon's actual size in MiB of the running guest, beside the target C(after.memory)
        (RV(lcfg.xen.xen_domain#module:memory_actual)); null when it does not run.
      type: int
    vcpus_online:
      description:
        - VCPUs the guest's operating system has online, as its guest agent reports them; null when no agent
          answers (unknown).
      type: int
    live_not_followed:
      description:
        - Live changes the guest did not follow within O(live_wait) seconds, in words; each is a warning too.
      type: list
      elements: str
failed_guests:
  description:
    - On failure, the names of the guests that could not be converged (the others were; their entries
      are in RV(results), and RV(changed), RV(actions) and RV(pending_restart) cover them), or, when the
      listed guests converged and pruning failed, of the stale guests that could not be pruned (the
      others are in RV(pruned)).
  returned: failure
  type: list
  elements: str
  sample: [web2]
pending_restart:
  description: Names of the guests whose saved changes wait for a restart.
  returned: always
  type: list
  elements: str
  sample: [web1]
diff:
  description: Per guest name, the guest before and after.
  returned: in diff mode
  type: dict
  sample: {"before": {"demo1": {"name": "demo1", "state": "absent"}}, "after": {"demo1": {"name": "demo1",
    "state": "stopped"}}}
stale:
  description:
    - Names of the guests lcfg.xen defined for O(owner) that O(guests) does not list (sorted), with or
      without O(prune). With O(prune) they are the ones removed (or, in check mode, that would be).
  returned: always
  type: list
  elements: str
  sample: [web3]
pruned:
  description:
    - With O(prune), one entry per stale guest removed (in check mode, that would be removed), sorted by
      name, with the keys of RV(results) (C(actions) such as C(stop), C(undefine), C(remove_disk PATH)).
      Their actions are also in RV(actions) and their before/after in RV(diff). Empty without O(prune).
  returned: always
  type: list
  elements: dict
  sample:
    - name: web3
      changed: true
      actions: [stop, undefine]
      before: {name: web3, state: running}
      after: {name: web3, state: absent}
      pending_restart: []
      pending_restart_fields: []
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
from ansible_collections.lcfg.xen.plugins.module_utils.domain.engine import converge_guests


def main() -> None:
    module = AnsibleModule(
        argument_spec=with_connection(
            {
                "guests": {"type": "list", "elements": "dict", "required": True},
                "default_bridge": {"type": "str"},
                "parallel": {"type": "int", "default": 8},
                "adopt": {"type": "list", "elements": "str", "default": []},
                "prune": {"type": "bool", "default": False},
                "prune_timeout": {"type": "float", "default": 120},
                "prune_force": {"type": "bool", "default": False},
                "prune_disks": {"type": "bool", "default": False},
                "owner": {"type": "str"},
                "live_wait": {"type": "int", "default": 10},
                "start_wait": {"type": "int"},
                **HOST_ACCESS_ARGSPEC,
                **LOCK_ARGSPEC,
            }
        ),
        supports_check_mode=True,
    )
    require_lxml(module)
    params = module.params

    def converge(conn) -> dict:
        return converge_guests(
            conn,
            params["guests"],
            check_mode=module.check_mode,
            default_bridge=params["default_bridge"],
            parallel=params["parallel"],
            access=host_access_from_params(params),
            adopt=params["adopt"],
            prune=params["prune"],
            prune_timeout=params["prune_timeout"],
            prune_force=params["prune_force"],
            prune_disks=params["prune_disks"],
            owner=params["owner"],
            live_wait=params["live_wait"],
            start_wait=params["start_wait"],
        )

    run_module(module, lambda: with_libvirt(params["uri"], converge), lock=True)


if __name__ == "__main__":
    main()
