"""The hypervisor role converges on the lab's running Xen dom0, and a second run changes nothing.

The dom0 image already carries the role's packages (the lab has no name service, so apt
cannot download): the role's install tasks find nothing missing. python3-guestfs (a full
libguestfs appliance) is left out with ``hypervisor_guestfs: false``.
"""

from __future__ import annotations

import pytest
from xenlab import URI

pytestmark = pytest.mark.xen

ROLE = {"role": "lcfg.xen.hypervisor", "vars": {"hypervisor_uri": URI, "hypervisor_guestfs": False}}


def test_hypervisor_role_converges(xen_lab):
    first = xen_lab.play([], roles=[ROLE])
    assert first.rc == 0, first.output
    assert not [e for e in first.results if e["status"] in ("failed", "unreachable")]

    second = xen_lab.play([], roles=[ROLE])
    assert second.rc == 0, second.output
    changed = [e["task"] for e in second.results if e["status"] == "changed"]
    assert changed == [], f"second run changed: {changed}"

    # What the role set up, read back in dom0.
    xl_conf = xen_lab.ssh("cat /etc/xen/xl.conf").stdout
    assert 'autoballoon="off"' in xl_conf.splitlines()
    grub = xen_lab.ssh("cat /etc/default/grub.d/zz-lcfg-xen.cfg").stdout
    assert "dom0_mem=1024M,max:1024M" in grub
    assert xen_lab.ssh("systemctl is-enabled xendomains", check=False).stdout.strip() == "enabled"
    assert xen_lab.ssh("systemctl is-active libvirtd").stdout.strip() == "active"
    assert xen_lab.ssh(f"virsh -c {URI} uri").stdout.strip() == URI
