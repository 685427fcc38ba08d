# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.lcfg.xen.plugins.plugin_utils.limit import Unit, positive_terms, selected_units, split_limit

SITE_GROUPS = ["all", "ungrouped", "xen_hypervisors", "xen_guests"]
UNITS = [
    Unit("hv1", ("web1", "web2"), ("webfarm",)),
    Unit("hv2", ("db1",), ("databases",)),
    Unit("ws3"),  # a machine without the xen component
]


def select(limit, constructed=False, read_file=None):
    return selected_units(limit, UNITS, SITE_GROUPS, constructed, read_file=read_file)


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        ("hv1", {0}),
        ("web2", {0}),  # a guest brings its hypervisor's profile
        ("databases", {1}),
        ("hv1,ws3", {0, 2}),
        ("hv1:db1", {0, 1}),
        ("hv*", {0, 1}),
        ("~^d", {1}),  # re.match, as ansible-core: anchored at the start
        ("~b1", None),  # matches nothing at the start of a name: could be another source's
        ("hv1[0]", {0}),
        ("webfarm[1:2]", {0}),
        ("hv1,!web1", {0}),
        ("hv2,&databases", {1}),
    ],
)
def test_selected_units(limit, expected):
    assert select(limit) == expected


@pytest.mark.parametrize(
    "limit",
    [
        None,
        "",
        "all",
        "xen_hypervisors",
        "xen_*",  # matches this plugin's own groups
        "*",
        "!hv1",  # exclusions only start from every host
        "&hv1",
        "hv1,edinburgh",  # edinburgh may be another source's group
        "localhost",
        "~(",  # not a regex ansible-core can use either
    ],
)
def test_limits_that_load_everything(limit):
    assert select(limit) is None


def test_constructed_groups_judge_exact_host_names_only():
    assert select("hv1", constructed=True) == {0}
    assert select("db1", constructed=True) == {1}
    assert select("webfarm", constructed=True) is None
    assert select("hv*", constructed=True) is None
    assert select("~hv", constructed=True) is None


def test_retry_file_names_the_hosts():
    assert select("@retry", read_file=lambda path: ["db1", "", "  ws3 "]) == {1, 2}
    assert select("@retry") is None  # no reader


def test_unreadable_retry_file_loads_everything():
    def fail(path):
        raise OSError(path)

    assert select("@missing", read_file=fail) is None


def test_split_limit_keeps_ansible_rules():
    assert split_limit("a,b:c") == ["a", "b:c"]
    assert split_limit("a:b") == ["a", "b"]
    assert positive_terms(["!a", "&b"]) is None
    # ansible-core reads "[0-9]" at the end as a range subscript too
    assert positive_terms(["g[-1]", "h[2:]", "h0000[0-9]"]) == ["g", "h", "h0000"]
