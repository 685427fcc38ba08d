"""check_items validates every item of a list option against a shared argument spec."""

from __future__ import annotations

import pytest

from ansible_collections.lcfg.xen.plugins.module_utils.common import argspec as _argspec
from ansible_collections.lcfg.xen.plugins.module_utils.common.errors import ValidationError

SPEC = {
    "name": {"type": "str", "required": True},
    "mode": {"type": "str", "choices": ["bridge", "nat"], "default": "bridge"},
    "size": {"type": "int"},
}


def _check(items):
    return _argspec.check_items(items, SPEC, "networks")


def test_items_get_defaults_and_types():
    result = _check([{"name": "a", "size": "3"}])
    assert result[0]["mode"] == "bridge"
    assert result[0]["size"] == 3


@pytest.mark.parametrize(
    "items, fragment",
    [
        ([{"mode": "nat"}], "networks[0]"),
        ([{"name": "a"}, {"name": "b", "mode": "bogus"}], "networks[1]"),
        ([{"name": "a", "zz": 1}], "zz"),
    ],
)
def test_bad_items_name_the_item(items, fragment):
    with pytest.raises(ValidationError) as info:
        _check(items)
    assert fragment in str(info.value)


def test_connection_options_are_merged():
    merged = _argspec.with_connection({"name": {"type": "str"}})
    assert merged["uri"]["default"] == "qemu:///system"
    assert "name" in merged
