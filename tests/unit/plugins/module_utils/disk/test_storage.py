"""Unit tests for plugins/module_utils/disk/storage.py with a stand-in libvirt connection."""

from __future__ import annotations

import pytest

from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import LibvirtFailure
from ansible_collections.lcfg.xen.plugins.module_utils.common.libvirt import libvirt
from ansible_collections.lcfg.xen.plugins.module_utils.disk.storage import domains_using

pytestmark = pytest.mark.skipif(libvirt is None, reason="libvirt-python is not installed")

XML = "<domain><devices><disk><source file='/guests/{name}.img'/></disk></devices></domain>"


def libvirt_error(code):
    exc = libvirt.libvirtError("stand-in")
    exc.err = (code, 0, "stand-in error", 0, "", None, None, 0, 0)
    return exc


class Domain:
    def __init__(self, name, error=None):
        self._name, self.error = name, error

    def name(self):
        return self._name

    def XMLDesc(self, flags):  # noqa: N802 - libvirt's name
        if self.error is not None:
            raise self.error
        return XML.format(name=self._name)

    def isActive(self):  # noqa: N802 - libvirt's name
        return True


class Conn:
    def __init__(self, domains):
        self.domains = domains

    def listAllDomains(self, flags):  # noqa: N802 - libvirt's name
        return self.domains


def test_a_domain_undefined_while_listing_uses_nothing():
    gone = Domain("gone", libvirt_error(libvirt.VIR_ERR_NO_DOMAIN))
    assert domains_using(Conn([gone, Domain("n1")])) == {"/guests/n1.img": [{"name": "n1", "active": True}]}


def test_another_libvirt_error_names_the_domain():
    broken = Domain("n2", libvirt_error(libvirt.VIR_ERR_INTERNAL_ERROR))
    with pytest.raises(LibvirtFailure, match="definition of domain n2"):
        domains_using(Conn([broken]))
