# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Which profiles a ``--limit`` can select (the inventory option ``only_limited_profiles``).

ansible-core builds the whole inventory before it applies ``--limit``: on a site of 2,000
profiles that is 22,000 hosts for a run touching one hypervisor. A profile (a host with its
guests and virtual groups) that the limit cannot select need not be added at all.

Only terms naming one of this source's hosts or guests exactly are judged. Any other term
loads every profile: a glob, a regex or a group name could also match a group that another
inventory source (read before or after this one) or a constructed group gives other members,
which this source cannot see. Erring towards loading costs time; erring the other way would
leave hosts out of a run silently.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ansible.inventory.manager import PATTERN_WITH_SUBSCRIPT, split_host_pattern


@dataclass(frozen=True)
class Unit:
    """One profile as the inventory adds it: its host and its guests."""

    host: str
    guests: tuple[str, ...] = ()


def split_limit(limit: str) -> list[str]:
    """The terms of a ``--limit`` value: comma-separated, or colon-separated when no comma
    is present (ansible-core's own rule, which also keeps IPv6 addresses whole)."""

    return [term for term in split_host_pattern(limit) if term]


def positive_terms(terms: Sequence[str], read_file: Callable[[str], list[str]] | None = None) -> list[str] | None:
    """The terms that add hosts (not ``!`` exclusions or ``&`` intersections, which only
    remove), subscripts dropped; the lines of an ``@file`` (ansible-core's retry file) are
    terms too. None when there are none: the limit then starts from every host."""
    found: list[str] = []
    for term in terms:
        if term.startswith("@"):
            if read_file is None:
                return None
            try:
                lines = [line.strip() for line in read_file(term[1:])]
            except (OSError, ValueError):
                return None  # ansible-core reports it; loading everything changes nothing
            more = positive_terms([line for line in lines if line])
            if more is None:
                return None
            found.extend(more)
            continue
        if term.startswith(("!", "&")):
            continue
        # "name[0]", "name[1:3]": a subscript narrows what a name selects, never widens it
        match = PATTERN_WITH_SUBSCRIPT.match(term)
        found.append(match.group(1) if match else term)
    return found or None


def selected_units(
    limit: str | None, units: Sequence[Unit], read_file: Callable[[str], list[str]] | None = None
) -> set[int] | None:
    """Indexes of ``units`` a ``--limit`` of ``limit`` can select; None for all of them (a
    term that does not name one of their hosts or guests exactly)."""
    if not limit:
        return None
    terms = positive_terms(split_limit(limit), read_file)
    if terms is None:
        return None
    owner = {name: index for index, unit in enumerate(units) for name in (unit.host, *unit.guests)}
    selected: set[int] = set()
    for term in terms:
        if term not in owner:
            return None
        selected.add(owner[term])
    return selected
