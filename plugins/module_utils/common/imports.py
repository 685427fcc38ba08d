# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Guarded imports of the optional Python bindings (lxml, libvirt, guestfs), written once.

``optional_import(name)`` returns ``(module, None)`` when ``name`` imports and ``(None, error)``
when it does not, so a module util can load without the binding and the modules report the
missing library with ``missing_required_lib``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["optional_import"]


def optional_import(name: str) -> tuple[ModuleType | None, ImportError | None]:
    """Import the module ``name`` (dotted, e.g. ``lxml.etree``); never raise ImportError."""
    try:
        return importlib.import_module(name), None
    except ImportError as exc:  # pragma: no cover - exercised on hosts without the binding
        return None, exc
