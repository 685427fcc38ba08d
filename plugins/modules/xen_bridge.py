#!/usr/bin/python
# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: xen_bridge
short_description: Host networks for Xen and KVM guests - Linux bridges, NAT and routed networks
version_added: "0.1.0"
description:
  - The host side of the lcfg-xen component's networking (C(xendconfbridgenet), C(bridgeinterfaces),
    C(bridgenetdev_$), C(bridgeif_$), C(xendconfcustombridge), C(xendconfnatnet)).
  - O(mode=bridge) makes a Linux bridge with iproute2, enslaves O(netdev) to it and writes the host's
    own network configuration (ifupdown or systemd-networkd) so the bridge comes back after a reboot.
    Guests attach to it with C(<interface type='bridge'>); on Xen their vifs use the C(vif-bridge) script.
  - O(mode=nat) and O(mode=route) make a persistent, autostarted libvirt network with its own bridge,
    the host's address on it, a DHCP range and DHCP reservations (the guests' MAC/IP pairs).
    Reservations and the DHCP range change live (libvirt's network update, no restart); a change of
    address, bridge, forward device or mode redefines the network and needs a restart (O(restart)).
  - One network per call with O(name), or several with O(networks).
  - See the collection's C(docs/networking.md) for the mapping from LCFG resources and Xen vif scripts.
author:
  - lcfg.xen contributors (!UNKNOWN)
extends_documentation_fragment:
  - lcfg.xen.connection
  - lcfg.xen.lock
  - lcfg.xen.connection.attributes
attributes:
  idempotent:
    details: >-
      A second run with the same options reports no change (a pending libvirt network restart is reported,
      not redone).
options:
  name:
    description:
      - O(mode=bridge) - the Linux bridge's name (at most 15 characters), unless O(bridge) is given,
        in which case O(name) names the libvirt network of O(libvirt_network).
      - O(mode=nat) or O(mode=route) - the libvirt network's name. Guests with nettype C(nat) use
        C(lcfg-nat) by default, nettype C(route) C(lcfg-route).
      - Mutually exclusive with O(networks); one of the two is required.
    type: str
  mode:
    description:
      - V(bridge) a Linux bridge with O(netdev) enslaved, V(nat) a libvirt NAT network (masquerading),
        V(route) a libvirt routed network (no NAT; the LAN needs a route to its subnet).
    type: str
    choices: [bridge, nat, route]
    default: bridge
  state:
    description:
      - V(present) the network exists, is up and (libvirt networks) active.
      - V(absent) the bridge or libvirt network is removed together with its persistence files;
        O(netdev) is left alone unless the module created it (O(create_netdev)).
    type: str
    choices: [present, absent]
    default: present
  bridge:
    description:
      - The Linux bridge device (at most 15 characters).
      - O(mode=bridge) - defaults to O(name).
      - O(mode=nat) or O(mode=route) - the bridge libvirt creates for the network; when unset, an
        existing network keeps its bridge and a new one gets libvirt's next C(virbrN).
    type: str
  netdev:
    description:
      - O(mode=bridge) - the interface enslaved to the bridge (C(bridgenetdev_$), e.g. C(eth0)).
        If it carries addresses, the module refuses unless O(migrate_address=true) (the
        C(lcfg.xen.network) role's C(network_migrate_address)).
        A netdev that does not exist fails, unless O(create_netdev) says to create a stand-in.
        Other ports of the bridge (guests' vifs and taps) are left alone.
      - O(mode=nat) or O(mode=route) - the uplink traffic is forwarded through (libvirt's
        C(<forward dev>)); unset means any interface.
    type: str
  create_netdev:
    description:
      - Create O(netdev) when it is missing, so a demo or test host never touches its real NICs.
      - V(dummy) a dummy interface (needs the kernel's C(dummy) driver), V(veth) a veth pair whose
        other end is called O(netdev) with C(-p) appended (for kernels without C(dummy)).
      - With O(state=absent), a netdev of that kind is deleted too.
    type: str
    choices: [none, dummy, veth]
    default: none
  migrate_address:
    description:
      - Move the addresses and routes of O(netdev) to the bridge when enslaving it (and back when
        O(state=absent)). Without it the module refuses to enslave an interface that carries an
        address, since that is the classic way to cut a host off its own network.
    type: bool
    default: false
  address:
    description:
      - The host's address on the network as C(address/prefix), e.g. C(10.0.0.254/24).
      - O(mode=nat) or O(mode=route) - required when the network is created; also sets the subnet
        DHCP serves.
      - O(mode=bridge) - added to the bridge (other addresses are kept).
    type: str
  dhcp_range:
    description:
      - Addresses DHCP hands out to unknown guests (nat/route only). Unset keeps the current range.
    type: dict
    suboptions:
      start:
        description: First address of the range.
        type: str
        required: true
      end:
        description: Last address of the range.
        type: str
        required: true
  dhcp_hosts:
    description:
      - DHCP reservations (nat/route only), usually the guests' vifs with an C(ip_$) resource.
      - The complete list - reservations not listed are removed. Unset keeps the current ones.
      - A reservation of the network's own O(address) (the guests' gateway) is refused, naming the item.
      - Changed live with libvirt's network update (dnsmasq is reloaded, not restarted).
    type: list
    elements: dict
    suboptions:
      mac:
        description: The guest NIC's MAC address.
        type: str
        required: true
      ip:
        description: The address it gets; inside the subnet of O(address).
        type: str
        required: true
      name:
        description:
          - Host name dnsmasq gives the guest (and resolves), usually the guest's name.
          - A valid guest name that is not a valid DNS host name (with C(_), or a label over 63
            characters) is left out of the reservation, which then holds the MAC and IP only;
            anything else that is not a host name is refused.
        type: str
  tftp_root:
    description:
      - A directory of this host that the network's dnsmasq serves by TFTP to its guests, for
        network boot (PXE) - C(<tftp root=.../>) in the network's C(<ip>) (nat/route only).
      - It must exist when the network starts; everything in it is readable by every guest of the
        network. A play option only, never a profile value.
      - Unset keeps the current one; V('') removes it. A change redefines the network and takes
        effect when it restarts (see O(restart)).
    type: str
    version_added: 0.2.0
  boot_file:
    description:
      - The file DHCP tells guests to boot (C(<dhcp><bootp file=.../></dhcp>)), a path inside
        O(tftp_root), e.g. C(pxelinux.0) (Debian's C(pxelinux)) or an iPXE image; needs O(tftp_root).
      - Unset keeps the current one; V('') removes it. A change takes effect when the network restarts.
    type: str
    version_added: 0.2.0
  autostart:
    description: Start the libvirt network when libvirtd starts.
    type: bool
    default: true
  restart:
    description:
      - When a libvirt network's new definition needs a restart (address, bridge, forward device,
        mode, adding or dropping the DHCP range), restart it now and reattach the running guests'
        interfaces to its bridge (on a local hypervisor).
      - When false, the definition is saved, the running network keeps the old one, a warning says
        so and RV(pending_restart) names the network.
    type: bool
    default: false
  persist:
    description:
      - How a Linux bridge (O(mode=bridge)) survives a reboot; libvirt networks persist by themselves.
      - V(auto) systemd-networkd when it is enabled, else ifupdown when C(/etc/network/interfaces)
        exists, else V(none) with a warning.
      - V(ifupdown) C(/etc/network/interfaces.d/lcfg-xen-<bridge>) (needs bridge-utils).
      - V(networkd) C(/etc/systemd/network/20-lcfg-xen-<bridge>.{netdev,network}) and a
        C(-port.network) for O(netdev).
      - V(none) the live bridge only.
    type: str
    choices: [auto, ifupdown, networkd, none]
    default: auto
  libvirt_network:
    description:
      - O(mode=bridge) - also define a libvirt network named O(name) with C(<forward mode='bridge'>)
        on the bridge, so guests can refer to it by network name.
    type: bool
    default: false
  adopt:
    description:
      - Let this call change or remove an existing libvirt network that lcfg.xen did not create
        (nat, route, or the libvirt network of O(libvirt_network)).
      - xen_bridge records the libvirt networks it creates (their name and UUID) in
        C(/var/lib/lcfg-xen-state/networks.json) (root only). Without O(adopt), a request that would
        change a network not recorded there (libvirt's C(default), an admin's own, one redefined
        by someone else, or one made by a version of the collection before the record existed)
        fails before anything changes, naming the network, also in check mode.
        A request that changes nothing passes.
      - With O(adopt=true) the network is changed and recorded, so later runs need no O(adopt).
      - The same for Linux bridges (O(mode=bridge)) - bridges xen_bridge creates carry the ifalias
        C(lcfg.xen bridge); without O(adopt), a request that would change or delete an existing
        bridge without it (give it a port, bring it up, write its files, delete it) fails before
        anything changes. With O(adopt=true) the bridge is changed and the ifalias set.
      - Without O(adopt), a bridge (or the O(bridge) of a nat or route network) named like the
        host's own (C(virbr*), C(docker*), C(lo)) or like the bridge of a libvirt network lcfg.xen
        did not create is refused.
      - O(adopt) never allows changing an existing libvirt network's O(mode) (nat, route, bridge)
        in place - remove it first (O(state=absent)).
    type: bool
    default: false
  vif_script:
    description:
      - The Xen vif script guests on this network use (C(vif-bridge), C(vif-nat), C(vif-route) by
        mode, or a custom script), returned in RV(results[].vif_script) for the guests' definitions.
      - When O(uri) is a local C(xen://) URI the script must exist in C(/etc/xen/scripts) (or be an
        absolute path that exists).
    type: str
  config_root:
    description:
      - Directory the persistence files are written under, for a chroot or an image being prepared.
    type: path
    default: /
  networks:
    description:
      - Several networks in one call. Each item is a dict of the options above with the same
        meaning, choices and defaults - O(name) (required in an item), O(mode), O(state), O(bridge),
        O(netdev), O(create_netdev), O(migrate_address), O(address), O(dhcp_range), O(dhcp_hosts),
        O(tftp_root), O(boot_file), O(autostart), O(restart), O(persist), O(libvirt_network), O(adopt)
        and O(vif_script). O(uri) and O(config_root) apply to all of them.
      - Items are checked like the options themselves; an unknown key or a wrong value fails,
        naming the item (for example C(networks[1]) or C(networks[1].mode)).
      - All are validated and planned before any is changed.
    type: list
    elements: dict
seealso:
  - module: lcfg.xen.xen_bridge_info
notes:
  - Needs root on the host (iproute2, libvirt's system instance).
  - Reservations are matched by MAC; changing a reservation's IP or name modifies it in place.
"""

EXAMPLES = r"""
- name: Bridge xenbr0 on eth0, moving the host's address from eth0 to the bridge
  lcfg.xen.xen_bridge:
    name: xenbr0
    netdev: eth0
    migrate_address: true

- name: The seed's hosts - three bridges and the NAT network in one call
  lcfg.xen.xen_bridge:
    uri: xen:///system
    networks:
      - {name: xenbr0, netdev: eth0}
      - {name: xenbr1, netdev: eth1}
      - {name: xenbr2, netdev: eth2}
      - name: lcfg-nat
        mode: nat
        bridge: lcfgnat0
        address: 10.0.0.254/24
        dhcp_hosts:
          - {mac: "00:16:2a:24:a3:7c", ip: 10.0.0.1, name: node1}

- name: From the LCFG inventory - every bridge of xen_host, with stand-ins for the NICs on a demo host
  lcfg.xen.xen_bridge:
    name: "{{ item.bridge }}"
    netdev: "{{ item.netdev | default(omit) }}"
    create_netdev: veth
    persist: none
  loop: "{{ xen_host.bridges }}"

- name: A routed network without DHCP
  lcfg.xen.xen_bridge:
    name: lcfg-route
    mode: route
    address: 192.168.50.1/24
    netdev: eth1

- name: A NAT network whose bridge libvirt names; its guests attach to the bridge the result names
  lcfg.xen.xen_bridge:
    name: lcfg-nat
    mode: nat
    address: 10.0.0.254/24
  register: nat

- name: Show where the guests of lcfg-nat attach
  ansible.builtin.debug:
    msg: "bridge {{ nat.results[0].bridge }}, vif script {{ nat.results[0].vif_script }}"

- name: Say which networks wait for a restart
  ansible.builtin.debug:
    msg: "restart {{ nat.pending_restart | join(', ') }} (or set restart: true) to apply their new definition"
  when: nat.pending_restart | length > 0

- name: Network boot (PXE) on a NAT network - Debian's pxelinux.0 served from /srv/tftp
  lcfg.xen.xen_bridge:
    name: lcfg-nat
    mode: nat
    address: 10.0.0.254/24
    tftp_root: /srv/tftp
    boot_file: pxelinux.0
    restart: true

- name: Remove the NAT network
  lcfg.xen.xen_bridge:
    name: lcfg-nat
    mode: nat
    state: absent
"""

RETURN = r"""
changed:
  description: Whether any network was (or, in check mode, would be) changed.
  returned: always
  type: bool
  sample: true
actions:
  description:
    - What was done, or would be done in check mode, in order - every network's RV(results[].actions)
      prefixed with its name.
  returned: always
  type: list
  elements: str
  sample: ["lcfg-nat: define libvirt network lcfg-nat", "lcfg-nat: set autostart on",
           "lcfg-nat: start libvirt network lcfg-nat"]
pending_restart:
  description:
    - Names of the libvirt networks whose saved definition differs from the one they run; it applies
      at their next restart (O(restart=true) restarts them now). Empty when none.
  returned: always
  type: list
  elements: str
  sample: []
results:
  description:
    - One entry per network, in the order of O(networks) (one entry for O(name)); no entry carries
      C(diff) (the top-level RV(diff) holds every network's).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The network's name (O(name)).
      type: str
      sample: lcfg-nat
    changed:
      description: Whether this network was (or would be) changed.
      type: bool
      sample: true
    actions:
      description: What was done to this network, or would be done in check mode, in order.
      type: list
      elements: str
      sample: ["define libvirt network lcfg-nat", "set autostart on", "start libvirt network lcfg-nat"]
    pending_restart:
      description: C([name]) when this libvirt network waits for a restart to apply its saved definition, else C([]).
      type: list
      elements: str
      sample: []
    mode:
      description: The network's O(mode).
      type: str
      sample: nat
    state:
      description: The network's O(state).
      type: str
      sample: present
    bridge:
      description:
        - The Linux bridge device guests attach to. For O(mode=nat) or O(mode=route) the bridge libvirt
          gave the network; null in check mode for a new network without O(bridge).
      type: str
      sample: virbr1
    vif_script:
      description: The Xen vif script for guests on this network.
      type: str
      sample: vif-nat
    persist:
      description: How the bridge is persisted (V(ifupdown), V(networkd) or V(none)).
      returned: O(mode=bridge)
      type: str
      sample: networkd
  sample:
    - name: xenbr0
      changed: true
      actions: ["create bridge xenbr0", "enslave eth0 to xenbr0", "bring xenbr0 up",
                "write /etc/systemd/network/20-lcfg-xen-xenbr0.netdev"]
      pending_restart: []
      mode: bridge
      state: present
      bridge: xenbr0
      vif_script: vif-bridge
      persist: networkd
    - name: lcfg-nat
      changed: false
      actions: []
      pending_restart: []
      mode: nat
      state: present
      bridge: lcfgnat0
      vif_script: vif-nat
diff:
  description:
    - Per network name, C(before) and C(after) - C(bridge) (the Linux bridge - C(name), C(state),
      C(ports), C(addresses), C(persisted)) and C(network) (the libvirt network - C(name), C(mode),
      C(bridge), C(netdev), C(address), C(dhcp_range), C(dhcp_hosts), C(tftp_root), C(boot_file), C(autostart),
      C(active)), null
      for what does not exist.
  returned: in diff mode
  type: dict
  sample:
    before: {lcfg-nat: {network: null}}
    after:
      lcfg-nat:
        network: {name: lcfg-nat, mode: nat, bridge: lcfgnat0, netdev: null, address: 10.0.0.254/24,
                  dhcp_range: null, dhcp_hosts: [], tftp_root: null, boot_file: null, autostart: true,
                  active: true}
lock_waited:
  description: Seconds this call waited for another run's lock on the hypervisor (see O(lock_timeout)).
  returned: when not in check mode
  type: float
  sample: 0.0
"""


from ansible_collections.lcfg.xen.plugins.module_utils.common.argspec import check_items, with_connection
from ansible_collections.lcfg.xen.plugins.module_utils.common.libvirt import open_connection
from ansible_collections.lcfg.xen.plugins.module_utils.common.lock import LOCK_ARGSPEC
from ansible_collections.lcfg.xen.plugins.module_utils.common.module import (
    AnsibleModule,
    require_lxml,
    run_module,
)
from ansible_collections.lcfg.xen.plugins.module_utils.network.engine import reconcile
from ansible_collections.lcfg.xen.plugins.module_utils.network.owner import NETWORK_STATE_FILE
from ansible_collections.lcfg.xen.plugins.module_utils.network.request import normalise_request, normalise_requests

_DHCP_RANGE = {
    "type": "dict",
    "options": {
        "start": {"type": "str", "required": True},
        "end": {"type": "str", "required": True},
    },
}
_DHCP_HOSTS = {
    "type": "list",
    "elements": "dict",
    "options": {
        "mac": {"type": "str", "required": True},
        "ip": {"type": "str", "required": True},
        "name": {"type": "str"},
    },
}


def _network_options(name_required: bool) -> dict:
    return {
        "name": {"type": "str", "required": name_required},
        "mode": {"type": "str", "choices": ["bridge", "nat", "route"], "default": "bridge"},
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        "bridge": {"type": "str"},
        "netdev": {"type": "str"},
        "create_netdev": {"type": "str", "choices": ["none", "dummy", "veth"], "default": "none"},
        "migrate_address": {"type": "bool", "default": False},
        "address": {"type": "str"},
        "dhcp_range": dict(_DHCP_RANGE),
        "dhcp_hosts": dict(_DHCP_HOSTS),
        "tftp_root": {"type": "str"},
        "boot_file": {"type": "str"},
        "autostart": {"type": "bool", "default": True},
        "restart": {"type": "bool", "default": False},
        "persist": {"type": "str", "choices": ["auto", "ifupdown", "networkd", "none"], "default": "auto"},
        "libvirt_network": {"type": "bool", "default": False},
        "adopt": {"type": "bool", "default": False},
        "vif_script": {"type": "str"},
    }


def main() -> None:
    spec = _network_options(name_required=False)
    spec["config_root"] = {"type": "path", "default": "/"}
    spec["networks"] = {"type": "list", "elements": "dict"}  # items: check_items() in the try below
    spec.update(LOCK_ARGSPEC)
    module = AnsibleModule(
        argument_spec=with_connection(spec),
        mutually_exclusive=[("name", "networks")],
        required_one_of=[("name", "networks")],
        supports_check_mode=True,
    )
    require_lxml(module)
    params = module.params
    connection: dict = {"conn": None}

    def run(argv: list) -> tuple:
        return module.run_command(argv, check_rc=False, environ_update={"LC_ALL": "C"})

    def connect():
        if connection["conn"] is None:
            connection["conn"] = open_connection(params["uri"])
        return connection["conn"]

    def converge() -> dict:
        if params["networks"] is not None:
            items = check_items(params["networks"], _network_options(name_required=True), "networks")
            requests = normalise_requests(items)
            prefixes = [f"networks[{index}]." for index in range(len(requests))]
        else:
            requests = [normalise_request(params)]
            prefixes = [""]
        try:
            return reconcile(
                requests,
                run,
                connect,
                params["uri"],
                module.check_mode,
                root=params["config_root"],
                prefixes=prefixes,
                state_file=NETWORK_STATE_FILE,
            )
        finally:
            if connection["conn"] is not None:
                try:
                    connection["conn"].close()
                except Exception:  # pylint: disable=broad-except
                    pass

    # ip link changes this machine whatever the URI: the lock of this machine too
    run_module(module, converge, lock=True, local_commands=True)


if __name__ == "__main__":
    main()
