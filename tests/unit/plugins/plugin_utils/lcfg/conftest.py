"""Every LCFG reader test starts and ends with an empty per-process header cache."""

from __future__ import annotations

import pytest

from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg import cpp as _cpp


@pytest.fixture(autouse=True)
def _fresh_cache():
    _cpp.clear_cache()
    yield
    _cpp.clear_cache()
