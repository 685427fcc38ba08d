/* Demo site header: every demo hypervisor runs on the same test machine, so they
 * all declare the same NAT network and the same two shared bridges (defining the
 * same object twice on one machine is a no-op). Sizes fit a 2-core machine. */
#ifndef DEMO_HYPERVISOR_H
#define DEMO_HYPERVISOR_H
#include <lcfg/options/xen-host.h>

#define DEMO_GUESTS    /var/lib/lcfg-xen/guests
#define DEMO_TEMPLATES /var/lib/lcfg-xen/templates

/* NAT network: a libvirt network with DHCP and masquerading. */
!xen.natnetwork        mSET(lcfg-nat)
!xen.natsubnet         mSET(10.0.0.0/24)

/* Shared bridges. On a real hypervisor each bridge enslaves a physical NIC
 * (bridgenetdev_$); the demo machine's eth0 is its only uplink, so the demo
 * bridges stay host-only unless the site defines REAL_UPLINKS. */
!xen.bridgeinterfaces  mADD(eth0 eth1)
!xen.bridgeif_eth0     mSET(xenbr0)
!xen.bridgevifnum_eth0 mSET(0)
!xen.bridgeif_eth1     mSET(xenbr1)
!xen.bridgevifnum_eth1 mSET(1)
#ifdef REAL_UPLINKS
!xen.bridgenetdev_eth0 mSET(eth0)
!xen.bridgenetdev_eth1 mSET(eth1)
#endif
#endif
