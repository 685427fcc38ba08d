# -*- coding: utf-8 -*-
# Copyright: lcfg.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""What the readers produce: resources per component, each with its derivation."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Resource", "Profile"]


@dataclass
class Resource:
    value: str
    derivation: str = ""  # "file:line", several separated by spaces after mutations
    context: str | None = None

    @property
    def first_location(self) -> tuple[str | None, int | None]:
        """(file, line) of the last derivation entry: the statement that set the value."""
        if not self.derivation:
            return None, None
        last = self.derivation.split()[-1]
        file, sep, line = last.rpartition(":")
        if sep and line.split(",")[0].isdigit():
            return file, int(line.split(",")[-1])
        return last, None


@dataclass
class Profile:
    name: str  # inventory name of the physical host
    path: str  # file or URL it was read from
    resources: dict[str, dict[str, Resource]] = field(default_factory=dict)

    def get(self, component: str, resource: str) -> Resource | None:
        return self.resources.get(component, {}).get(resource)

    def value(self, component: str, resource: str, default: str | None = None) -> str | None:
        res = self.get(component, resource)
        return default if res is None else res.value

    def plain(self) -> dict[str, dict[str, str]]:
        """``{component: {resource: value}}``: the ``lcfg_resources`` hostvar."""
        return {comp: {name: res.value for name, res in sorted(items.items())}
                for comp, items in sorted(self.resources.items())}
