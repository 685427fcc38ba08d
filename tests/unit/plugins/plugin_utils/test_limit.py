# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.lcfg.xen.plugins.plugin_utils.limit import Unit, positive_terms, selected_units, split_limit

UNITS = [
    Unit("hv1", ("web1", "web2")),
    Unit("hv2", ("db1",)),
    Unit("ws3"),  # a machine without the xen component
]


def select(limit, read_file=None):
    return selected_units(limit, UNITS, read_file=read_file)


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        ("hv1", {0}),
        ("web2", {0}),  # a guest brings its hypervisor's profile
        ("hv1,ws3", {0, 2}),
        ("hv1:db1", {0, 1}),
        ("hv1[0]", {0}),
        ("web1[0:1]", {0}),
        ("hv1,!web1", {0}),
        ("hv2,&db1", {1}),
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
        "hv*",  # a glob could also match another source's group with other members
        "~hv",
        "webfarm",  # a virtual group: another source may add hosts to a group of that name
        "HV1",  # names are case-sensitive, as in ansible-core: not this source's host
        "!hv1",  # exclusions only start from every host
        "&hv1",
        "hv1,edinburgh",  # edinburgh may be another source's group
        "localhost",
        "~a{99999999999}",
    ],
)
def test_limits_that_load_everything(limit):
    assert select(limit) is None


def test_retry_file_lines_are_terms_too():
    assert select("@retry", read_file=lambda path: ["db1", "", "  ws3 ", "!hv1"]) == {1, 2}
    assert select("@retry", read_file=lambda path: ["hv*[0]"]) is None  # a glob, as on the command line
    assert select("@retry", read_file=lambda path: ["web1[1:2]"]) == {0}
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
