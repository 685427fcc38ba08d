# -*- coding: utf-8 -*-
# Copyright: lcfg.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The end of every module's main(), written once.

``require_lxml(module)``: fail with ``missing_required_lib("lxml")`` when lxml does not import.
``with_libvirt(uri, func)``: open a libvirt connection, return ``func(conn)``, close it.
``run_module(module, func, prefix="")``: call ``func()``; a XenError becomes ``fail_json``
(message prefixed with ``prefix``, the error's result fields kept); otherwise the result's
``warnings`` become module warnings, its ``diff`` is dropped unless diff mode is on, and the
result is returned with ``exit_json``.
"""

from __future__ import annotations

from typing import Any, Callable

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.lcfg.xen.plugins.module_utils._errors import XenError
from ansible_collections.lcfg.xen.plugins.module_utils._imports import optional_import
from ansible_collections.lcfg.xen.plugins.module_utils._libvirt import open_connection

__all__ = ["require_lxml", "with_libvirt", "run_module"]


def require_lxml(module: Any) -> None:
    """Fail the module, naming the library, when lxml is missing on the managed host."""
    etree, error = optional_import("lxml.etree")
    if etree is None:
        module.fail_json(msg=missing_required_lib("lxml"), exception=str(error))


def with_libvirt(uri: str, func: Callable[[Any], Any]) -> Any:
    """Open a connection to ``uri``, return ``func(conn)`` and close the connection."""
    conn = open_connection(uri)
    try:
        return func(conn)
    finally:
        conn.close()


def run_module(module: Any, func: Callable[[], dict], prefix: str = "") -> None:
    """Run ``func`` and end the module with its result (see the module docstring)."""
    try:
        result = func()
    except XenError as exc:
        module.fail_json(msg=f"{prefix}{exc.message}", **exc.result)
    for warning in result.pop("warnings", None) or []:
        module.warn(warning)
    if not module._diff:  # pylint: disable=protected-access
        result.pop("diff", None)
    module.exit_json(**result)
