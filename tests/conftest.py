"""pytest set-up shared by every test directory; the helpers live in tests/support.py."""

from __future__ import annotations

import support  # noqa: F401  (puts the checkout's .collections on sys.path for every test)
