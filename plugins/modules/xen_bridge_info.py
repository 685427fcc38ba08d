#!/usr/bin/python
# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: xen_bridge_info
short_description: List the host's Linux bridges and libvirt networks
version_added: "0.1.0"
description:
  - Reports every Linux bridge on the host (ports, addresses, state), read with C(ip -j), and every
    libvirt network (mode, bridge, subnet, DHCP range and reservations, active, autostart, persistent),
    in the vocabulary of M(lcfg.xen.xen_bridge).
author:
  - lcfg.xen contributors (!UNKNOWN)
extends_documentation_fragment:
  - lcfg.xen.connection
  - lcfg.xen.connection.read_only
  - lcfg.xen.connection.attributes
options:
  name:
    description:
      - Report only the bridge and/or libvirt network of this name.
    type: str
  libvirt:
    description:
      - Also list libvirt networks (needs a connection to O(uri)). With V(false) only the Linux
        bridges are read.
    type: bool
    default: true
seealso:
  - module: lcfg.xen.xen_bridge
"""

EXAMPLES = r"""
- name: What networks does this hypervisor have?
  lcfg.xen.xen_bridge_info:
  register: nets

- name: Show the NAT network's reservations
  ansible.builtin.debug:
    msg: "{{ (nets.networks | selectattr('name', '==', 'lcfg-nat') | first).dhcp_hosts }}"
"""

RETURN = r"""
bridges:
  description: Linux bridges, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Bridge device.
      type: str
      sample: xenbr0
    state:
      description: Administrative state, V(up) or V(down).
      type: str
      sample: up
    ports:
      description: Interfaces enslaved to the bridge (uplinks and guests' vifs/taps), sorted.
      type: list
      elements: str
      sample: [eth0, vif1.0]
    addresses:
      description: The host's addresses on the bridge (C(ip/prefix)), link-local ones left out.
      type: list
      elements: str
      sample: [192.168.1.10/24]
    stp:
      description: Whether the spanning tree protocol is on.
      type: bool
    mac:
      description: The bridge's MAC address.
      type: str
  sample: [{name: xenbr0, state: up, ports: [eth0], addresses: [], stp: false, mac: "52:54:00:00:00:01"}]
networks:
  description: libvirt networks, sorted by name; empty with O(libvirt=false).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Network name.
      type: str
      sample: lcfg-nat
    mode:
      description: Forward mode (V(nat), V(route), V(bridge), V(open), V(isolated), ...).
      type: str
    bridge:
      description: The network's bridge device (the running one when active).
      type: str
    netdev:
      description: Forward device, if any.
      type: str
    address:
      description: The host's address on the network, C(ip/prefix).
      type: str
      sample: 10.0.0.254/24
    dhcp_range:
      description: C({start, end}) or null.
      type: dict
    dhcp_hosts:
      description: DHCP reservations C({mac, ip, name}), sorted by MAC.
      type: list
      elements: dict
    tftp_root:
      description: The directory dnsmasq serves by TFTP (network boot), or null.
      type: str
      version_added: 0.2.0
    boot_file:
      description: The DHCP boot file (C(<bootp file>)), or null.
      type: str
      version_added: 0.2.0
    active:
      description: Whether the network runs.
      type: bool
    autostart:
      description: Whether it starts with libvirtd.
      type: bool
    persistent:
      description: Whether it is defined (survives its own stop), as opposed to transient.
      type: bool
    uuid:
      description: libvirt's UUID of the network.
      type: str
    vif_script:
      description: The Xen vif script guests on such a network use.
      type: str
"""


from ansible_collections.lcfg.xen.plugins.module_utils.common.argspec import with_connection
from ansible_collections.lcfg.xen.plugins.module_utils.common.module import (
    AnsibleModule,
    require_lxml,
    run_module,
    with_libvirt,
)
from ansible_collections.lcfg.xen.plugins.module_utils.network.iproute import list_bridges
from ansible_collections.lcfg.xen.plugins.module_utils.network.libvirt_network import list_networks


def main() -> None:
    module = AnsibleModule(
        argument_spec=with_connection(
            {
                "name": {"type": "str"},
                "libvirt": {"type": "bool", "default": True},
            }
        ),
        supports_check_mode=True,
    )
    require_lxml(module)
    params = module.params

    def run(argv: list) -> tuple:
        return module.run_command(argv, check_rc=False, environ_update={"LC_ALL": "C"})

    def info() -> dict:
        bridges = list_bridges(run)
        networks = with_libvirt(params["uri"], list_networks) if params["libvirt"] else []
        if params["name"] is not None:
            bridges = [item for item in bridges if item["name"] == params["name"]]
            networks = [item for item in networks if item["name"] == params["name"]]
        return {"changed": False, "bridges": bridges, "networks": networks}

    run_module(module, info)


if __name__ == "__main__":
    main()
