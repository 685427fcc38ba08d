/* LCFG option header: make this machine a Xen (or KVM) hypervisor host.
 * Adds the xen component and the component's own network defaults. */
#ifndef LCFG_OPTIONS_XEN_HOST
#define LCFG_OPTIONS_XEN_HOST
!profile.components    mADD(xen)
!xen.xendconfbridgenet mSET(on)
!xen.xendconfnatnet    mSET(off)
#endif
