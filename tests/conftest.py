"""pytest set-up shared by every test directory; the helpers live in tests/support.py."""

from __future__ import annotations

import os

import pytest

# support puts the checkout's .collections on sys.path for every test.
import support

# Same default as scripts/test.sh, for pytest started directly: libguestfs's KVM attempt
# can spin without end under nested virtualisation.
os.environ.setdefault("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg")


def pytest_collection_modifyitems(items):
    """Under ``pytest -n 2 --dist loadgroup`` (scripts/test.sh): the integration tests share
    the host's libvirtd, networks and storage directories, so they run one at a time on one
    worker; the unit tests and the Xen lab (a VM of its own) run on the other meanwhile."""
    for item in items:
        shares_the_host = "integration" in item.path.relative_to(support.ROOT / "tests").parts[:1]
        item.add_marker(pytest.mark.xdist_group("host" if shares_the_host else "unit-and-xen-lab"))
