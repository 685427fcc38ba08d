"""pytest set-up shared by every test directory; the helpers live in tests/support.py."""

from __future__ import annotations

import os

# support puts the checkout's .collections on sys.path for every test.
import support  # noqa: F401  # pylint: disable=unused-import

# Same default as scripts/test.sh, for pytest started directly: libguestfs's KVM attempt
# can spin without end under nested virtualisation.
os.environ.setdefault("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg")
