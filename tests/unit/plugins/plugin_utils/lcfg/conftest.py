"""Every LCFG reader test starts and ends with an empty per-process header cache."""

from __future__ import annotations

import pytest

from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg import cpp


@pytest.fixture(autouse=True)
def _fresh_cache():
    cpp.clear_cache()
    yield
    cpp.clear_cache()
