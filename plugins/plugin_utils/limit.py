# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Which profiles a ``--limit`` can select (the inventory option ``only_limited_profiles``).

ansible-core builds the whole inventory before it applies ``--limit``: on a site of 2,000
profiles that is 22,000 hosts for a run touching one hypervisor. A profile (a host with its
guests and virtual groups) that no term of the limit can match need not be added at all.

The answer errs towards loading: any term this source cannot judge (a name it does not know,
which may be another source's or a constructed group, ``all``, this plugin's two groups, a
glob when constructed groups exist) loads every profile. Terms are matched as ansible-core's
inventory manager matches them: ``~regex`` with ``re.match``, anything else through
``fnmatch.translate``, against host and group names.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# "name[0]", "name[1:3]", "name[-1]": a subscript narrows a group's hosts, never widens them
_SUBSCRIPT = re.compile(r"^(.+)\[(?:-?[0-9]+|[0-9]+[:-][0-9]*)\]$")
_GLOB_CHARS = ("?", "*", "[")


@dataclass(frozen=True)
class Unit:
    """One profile as the inventory adds it: its host, guests and virtual groups."""

    host: str
    guests: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    def names(self) -> Iterable[str]:
        yield self.host
        yield from self.guests
        yield from self.groups


def split_limit(limit: str) -> list[str]:
    """The terms of a ``--limit`` value: comma-separated, or colon-separated when no comma
    is present (ansible-core's own rule, which also keeps IPv6 addresses whole)."""
    from ansible.inventory.manager import split_host_pattern  # pylint: disable=import-outside-toplevel

    return [term for term in split_host_pattern(limit) if term]


def positive_terms(terms: Sequence[str], read_file=None) -> list[str] | None:
    """The terms that add hosts (not ``!`` exclusions or ``&`` intersections, which only
    remove), subscripts dropped, ``@file`` expanded with ``read_file(path)`` (its lines, as
    ansible-core reads a retry file). None when there are none: the limit then starts from
    every host."""
    found: list[str] = []
    for term in terms:
        if term.startswith(("!", "&")):
            continue
        if term.startswith("@"):
            if read_file is None:
                return None
            try:
                lines = read_file(term[1:])
            except OSError:
                return None  # ansible-core reports it; loading everything changes nothing
            found.extend(line.strip() for line in lines if line.strip())
            continue
        match = _SUBSCRIPT.match(term)
        found.append(match.group(1) if match else term)
    return found or None


def _matcher(term: str):
    try:
        return re.compile(term[1:] if term.startswith("~") else fnmatch.translate(term)).match
    except re.error:
        return None


def selected_units(
    limit: str | None,
    units: Sequence[Unit],
    site_groups: Iterable[str],
    constructed_groups: bool,
    read_file=None,
) -> set[int] | None:
    """Indexes of ``units`` a ``--limit`` of ``limit`` can select; None for all of them.

    ``site_groups`` are the groups holding every profile's hosts (``xen_hypervisors``,
    ``xen_guests``, plus ``all`` and ``ungrouped``); ``constructed_groups`` whether the
    configuration makes groups by template (``groups``, ``keyed_groups``), whose names are
    known only after every host is added: then only terms naming one host or guest exactly
    are judged (a constructed group may share a glob's match or a virtual group's name)."""
    if not limit:
        return None
    terms = positive_terms(split_limit(limit), read_file)
    if terms is None:
        return None
    wide = set(site_groups)
    selected: set[int] = set()
    for term in terms:
        match = _matcher(term)
        if match is None or any(match(name) for name in wide):
            return None
        if constructed_groups:
            if term.startswith("~") or any(c in term for c in _GLOB_CHARS):
                return None
            hits = {index for index, unit in enumerate(units) if term == unit.host or term in unit.guests}
        else:
            hits = {index for index, unit in enumerate(units) if any(match(name) for name in unit.names())}
        if not hits:
            return None  # another source's or a constructed group, localhost, a typo: load all
        selected |= hits
    return selected
